"""imaging: dynamic tomography and dynamic MRI reconstruction with RED-PSM.

Flat public API (DESIGN.md section 6)::

    import imaging
    m = imaging.load_measurements("walnut.npz")
    result = imaging.reconstruct(m, method="red-psm", callback=None)
    result.reconstruction          # numpy (P, N, N)
"""

from .io import load_measurements, load_reconstruction, save_measurements, save_reconstruction
from .measurements import MeasurementError, Measurements
from .solvers import METHODS, ParameterError, ReconstructionResult, iterate, reconstruct

__version__ = "0.1.0"

__all__ = [
    "Measurements",
    "MeasurementError",
    "ParameterError",
    "METHODS",
    "ReconstructionResult",
    "load_measurements",
    "save_measurements",
    "load_reconstruction",
    "save_reconstruction",
    "iterate",
    "reconstruct",
]
