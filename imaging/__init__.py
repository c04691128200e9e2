"""imaging: dynamic tomography and dynamic MRI reconstruction with RED-PSM.

Flat public API (docs/design.md, "Python API")::

    import imaging
    m = imaging.load_measurements("walnut.npz")
    result = imaging.reconstruct(m, method="red-psm", callback=None)
    result.reconstruction          # numpy (P, N, N), or (P, Z, N, N) for a volume
"""

import os as _os
import sys as _sys

# PyTorch's OpenMP threads spin between parallel regions by default, stealing the cores
# the tomography thread pool (or another process) needs; waiting passively keeps a run
# from slowing down several-fold under load (imaging/run/threads.py). OpenMP reads this
# once, when PyTorch loads, so it is set before any module of ours imports torch, and
# only where the user has not chosen a policy.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._version import __version__  # noqa: E402
from .io import load_measurements, load_reconstruction, save_measurements, save_reconstruction  # noqa: E402
from .measurements import MeasurementError, Measurements  # noqa: E402
from .results import ReconstructionResult  # noqa: E402
from .run import IterationInfo, iterate, reconstruct  # noqa: E402
from .solvers import METHODS, ParameterError, get_solver  # noqa: E402


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
