"""medinfer.report: the mirror of the C++ medinfer::report namespace (see help() of each name)."""
from ._medinfer.report import *  # noqa: F401,F403
from ._medinfer import report as _native

__doc__ = _native.__doc__
__all__ = [name for name in dir(_native) if not name.startswith("_")]
