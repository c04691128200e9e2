"""Reconstruction methods and the runner that drives them.

``METHODS`` maps the method names of the CLI and the API to solver classes.
"""

from .base import ParameterError, Solver, SolverParams, param
from .runner import IterationInfo, ReconstructionResult, get_solver, iterate, reconstruct

METHODS: dict[str, type[Solver]] = {}


def register(solver_cls: type[Solver]) -> type[Solver]:
    """Add a solver class to :data:`METHODS` under its ``name``."""
    METHODS[solver_cls.name] = solver_cls
    return solver_cls


from . import fbp_window  # noqa: E402,F401  (registers itself)
from . import psm  # noqa: E402,F401  (registers itself)
from . import red_psm  # noqa: E402,F401  (registers itself)
from . import td_dip  # noqa: E402,F401  (registers itself)

__all__ = [
    "METHODS",
    "ParameterError",
    "Solver",
    "SolverParams",
    "param",
    "register",
    "IterationInfo",
    "ReconstructionResult",
    "get_solver",
    "iterate",
    "reconstruct",
]
