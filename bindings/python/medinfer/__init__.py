"""medinfer: DICOM images to calibrated, audited risk scores.

The Python mirror of the medinfer C++ SDK (docs/python.md). The top level holds the pipeline
(``Pipeline``, ``PipelineOptions``, ``Result``, ``Finding``, ...) and the exceptions (one class per
``ErrorCode``, each also a subclass of the fitting built-in); the submodules follow the C++ headers:
``medinfer.dicom``, ``medinfer.preprocess``, ``medinfer.calibration``, ``medinfer.risk``,
``medinfer.audit``, ``medinfer.package``, ``medinfer.report``.

Python conveniences, each documented as one: paths may be ``str`` or ``os.PathLike``; ``Result.to_dict``
and pickling; ``with Pipeline.open(...) as p:``; specs as dict/list as well as JSON text;
``Pipeline.predict_many`` with an optional tqdm progress bar.
"""
from __future__ import annotations

from . import _medinfer
from ._medinfer import (  # noqa: F401  (the public names, re-exported)
    Arm,
    AuditFailedError,
    BatchingOptions,
    BuildInfo,
    CancelToken,
    CancelledError,
    Deployment,
    Engine,
    EngineOptions,
    ErrorCode,
    Evidence,
    Finding,
    Image,
    Input,
    Inputs,
    InternalError,
    InvalidArgumentError,
    InvalidDicomError,
    IoError,
    LogLevel,
    ManyOptions,
    MedinferError,
    ModelIdentity,
    ModelIntegrityError,
    NotFoundError,
    Outcome,
    OverloadedError,
    PackageOptions,
    Pipeline,
    PipelineOptions,
    PixelType,
    ReadOptions,
    ResolvedInputs,
    ResourceLimitError,
    Result,
    Rule,
    SeriesResult,
    SkippedSeries,
    StudyResult,
    Task,
    UnsupportedError,
    Volume,
    backend_formats,
    build_info,
    bytes_per_sample,
    register_backend,
    routing_bucket,
    set_log_handler,
    version,
)
from . import audit, calibration, dicom, package, preprocess, report, risk  # noqa: F401
from ._many import predict_many as _predict_many

__version__: str = _medinfer.version()

# Pipeline.predict_many: the streaming call with a progress callback and an optional tqdm bar
# (medinfer/_many.py), attached here so it reads as a method like the rest.
Pipeline.predict_many = _predict_many  # type: ignore[method-assign]

__all__ = [
    "Arm", "ErrorCode", "Rule", "Task",
    "AuditFailedError", "BatchingOptions", "CancelledError", "Deployment", "EngineOptions", "Evidence", "Finding",
    "Inputs", "InternalError", "InvalidArgumentError", "InvalidDicomError", "IoError", "MedinferError", "ModelIdentity",
    "ModelIntegrityError", "NotFoundError", "OverloadedError", "PackageOptions", "Pipeline", "PipelineOptions",
    "ReadOptions", "ResolvedInputs", "ResourceLimitError", "Result", "SeriesResult", "SkippedSeries",
    "StudyResult", "UnsupportedError", "audit", "backend_formats", "build_info",
    "calibration", "dicom", "package", "preprocess", "risk", "routing_bucket", "version", "__version__",
]
