"""medinfer.audit: the mirror of the C++ medinfer::audit namespace (see help() of each name)."""
from ._medinfer.audit import *  # noqa: F401,F403
from ._medinfer import audit as _native

__doc__ = _native.__doc__
__all__ = [name for name in dir(_native) if not name.startswith("_")]
