"""Pipeline.predict_many: the library's streaming call with keyword options and progress reporting."""
from __future__ import annotations

import copy
import os
from typing import Any, Callable, Iterable, List, Optional, Union

from . import _medinfer

PathLike = Union[str, "os.PathLike[str]"]
InputLike = Union[PathLike, bytes, "_medinfer.Input", "_medinfer.Image", Any]


def predict_many(self: "_medinfer.Pipeline", inputs: Iterable[InputLike], *, batch_size: Optional[int] = None,
                 workers: Optional[int] = None,
                 progress: Union[bool, Callable[[int, int], None], None] = None,
                 cancel: Optional["_medinfer.CancelToken"] = None,
                 on_outcome: Optional[Callable[["_medinfer.Outcome"], None]] = None,
                 options: Optional["_medinfer.ManyOptions"] = None,
                 ) -> List[Union["_medinfer.Result", "_medinfer.MedinferError"]]:
    """Predicts many inputs in one call (Pipeline::predict_many).

    ``inputs``: paths (``str`` or ``os.PathLike``), DICOM Part 10 objects as ``bytes``, images
    (``medinfer.Image`` or numpy arrays, borrowed without a copy) or ``medinfer.Input`` objects.
    Reading and preprocessing run on ``workers`` threads (0: one per core), overlapped with batched
    inference (``batch_size``); the GIL is released throughout. Returns one item per input, in order:
    its ``Result``, or the exception object for that input (never raised: one bad file does not stop
    the others). ``progress``: a callable ``progress(done, total)`` called after each input, or
    ``True`` for a tqdm bar (when tqdm is importable; else nothing is shown). ``cancel``: a
    ``CancelToken``; inputs not started when it is cancelled end in ``CancelledError``.
    ``on_outcome``: a callable receiving each ``Outcome`` as it is delivered; then nothing is kept and
    ``[]`` is returned (memory stays flat for any number of inputs). ``options``: a ``ManyOptions``
    the keywords given override (it is not modified).
    """
    items = list(inputs)
    many = copy.copy(options) if options is not None else _medinfer.ManyOptions()
    if batch_size is not None:
        many.batch_size = batch_size
    if workers is not None:
        many.workers = workers
    if cancel is not None:
        many.cancel = cancel
    if on_outcome is not None:
        many.on_outcome = on_outcome
    bar = None
    if progress is True:
        try:
            from tqdm import tqdm  # Debian: python3-tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=len(items), unit="file")
            shown = [0]

            def show(done: int, total: int) -> None:
                bar.update(done - shown[0])
                shown[0] = done

            many.progress = show
    elif callable(progress):
        many.progress = progress
    try:
        return self._predict_many(items, many)
    finally:
        if bar is not None:
            bar.close()
