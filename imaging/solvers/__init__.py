"""Reconstruction methods (SigPy's ``Alg``): one module per method, registered by name.

``METHODS`` maps the method names of the CLI and the API to solver classes. The loop
that drives a solver (callbacks, checkpoints, volumes) is :mod:`imaging.run`.
"""

from . import fbp_window, psm, red_psm, td_dip  # noqa: F401  (each registers its solver)
from .base import ParameterError, Solver, SolverParams, param
from .._deprecation import moved_attribute
from .registry import METHODS, get_solver, register

# The runner used to be re-exported here; it lives in imaging.run (and imaging) now.
__getattr__ = moved_attribute(
    __name__,
    {
        "IterationInfo": "imaging.run.runner:IterationInfo",
        "ReconstructionResult": "imaging.results:ReconstructionResult",
        "iterate": "imaging.run.runner:iterate",
        "reconstruct": "imaging.run.runner:reconstruct",
    },
)

__all__ = [
    "METHODS",
    "ParameterError",
    "Solver",
    "SolverParams",
    "param",
    "register",
    "get_solver",
]
