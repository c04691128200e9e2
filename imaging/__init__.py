"""imaging: dynamic tomography and dynamic MRI reconstruction with RED-PSM.

Flat public API (docs/design.md, "Python API")::

    import imaging
    m = imaging.load_measurements("walnut.npz")
    result = imaging.reconstruct(m, method="red-psm", callback=None)
    result.reconstruction          # numpy (P, N, N), or (P, Z, N, N) for a volume
"""

from ._version import __version__
from .io import load_measurements, load_reconstruction, save_measurements, save_reconstruction
from .measurements import MeasurementError, Measurements
from .results import ReconstructionResult
from .run import IterationInfo, iterate, reconstruct
from .solvers import METHODS, ParameterError, get_solver


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
