"""Pipeline.predict_many: the library's streaming call with progress reporting."""
from __future__ import annotations

import os
from typing import Callable, Iterable, List, Optional, Union

from . import _medinfer

PathLike = Union[str, "os.PathLike[str]"]


def predict_many(self: "_medinfer.Pipeline", paths: Iterable[PathLike], *, batch_size: int = 4, workers: int = 0,
                 progress: Union[bool, Callable[[int, int], None], None] = None
                 ) -> List[Union["_medinfer.Result", "_medinfer.MedinferError"]]:
    """Predicts many DICOM files in one call (Pipeline::predict_many).

    Reading and preprocessing run on ``workers`` threads (0: one per core), overlapped with batched
    inference (``batch_size``); the GIL is released throughout. Returns one item per path, in order:
    its ``Result``, or the exception object for that file (never raised: one bad file does not stop
    the others). ``progress``: a callable ``progress(done, total)`` called after each file, or
    ``True`` for a tqdm bar (when tqdm is importable; else nothing is shown).
    """
    files = [os.fspath(p) for p in paths]
    callback: Optional[Callable[[int, int], None]] = None
    bar = None
    if progress is True:
        try:
            from tqdm import tqdm  # Debian: python3-tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=len(files), unit="file")
            shown = [0]

            def callback(done: int, total: int) -> None:
                bar.update(done - shown[0])
                shown[0] = done
    elif callable(progress):
        callback = progress
    try:
        return self._predict_many(files, batch_size=batch_size, workers=workers, progress=callback)
    finally:
        if bar is not None:
            bar.close()
