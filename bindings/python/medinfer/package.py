"""medinfer.package: the mirror of the C++ medinfer::package namespace (see help() of each name)."""
from ._medinfer.package import *  # noqa: F401,F403
from ._medinfer import package as _native

__doc__ = _native.__doc__
__all__ = [name for name in dir(_native) if not name.startswith("_")]
