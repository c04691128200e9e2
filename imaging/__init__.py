"""imaging: dynamic tomography and dynamic MRI reconstruction with RED-PSM.

Flat public API (docs/design.md, "Python API")::

    import imaging
    m = imaging.load_measurements("walnut.npz")
    result = imaging.reconstruct(m, method="red-psm", callback=None)
    result.reconstruction          # numpy (P, N, N), or (P, Z, N, N) for a volume
"""

import importlib as _importlib
import os as _os
import pkgutil as _pkgutil
import sys as _sys

# PyTorch's OpenMP threads spin between parallel regions by default, stealing the cores
# the tomography thread pool (or another process) needs; waiting passively keeps a run
# from slowing down several-fold under load (imaging/run/threads.py). OpenMP reads this
# once, when PyTorch loads, so it is set before any module of ours imports torch, and
# only where the user has not chosen a policy.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402

# The public names load their modules on first use (PEP 562): ``import imaging.phantoms``
# (napari's File > Open Sample, the phantoms of a script) then takes 0.4-0.5 s instead
# of 1.3 s (python -X importtime): it does not need PyTorch and the solvers.
_EXPORTS = {
    "load_measurements": "io",
    "load_reconstruction": "io",
    "save_measurements": "io",
    "save_reconstruction": "io",
    "MeasurementError": "measurements",
    "Measurements": "measurements",
    "ReconstructionResult": "results",
    "IterationInfo": "run",
    "iterate": "run",
    "reconstruct": "run",
    "METHODS": "solvers",
    "ParameterError": "solvers",
    "get_solver": "solvers",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBPACKAGES:
        value = _importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'imaging' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBPACKAGES))


__all__ = [
    "__version__",
    "Measurements",
    "MeasurementError",
    "ParameterError",
    "METHODS",
    "IterationInfo",
    "ReconstructionResult",
    "get_solver",
    "load_measurements",
    "save_measurements",
    "load_reconstruction",
    "save_reconstruction",
    "iterate",
    "reconstruct",
]

#: The modules and packages of ``imaging`` reachable as attributes (``imaging.solvers``),
#: imported on first access like the names above.
_SUBPACKAGES = frozenset(info.name for info in _pkgutil.iter_modules(__path__) if not info.name.startswith("_"))
