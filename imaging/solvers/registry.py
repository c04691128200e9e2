"""The registry of reconstruction methods: name -> solver class.

A new method is a module in :mod:`imaging.solvers` whose :class:`~imaging.solvers.base.Solver`
subclass is decorated with :func:`register` and which :mod:`imaging.solvers` imports;
every front end (API, CLI, napari, batch) then offers it by name.
"""

from __future__ import annotations

from .base import ParameterError, Solver

#: Method name -> solver class, in registration order.
METHODS: dict[str, type[Solver]] = {}


def register(solver_cls: type[Solver]) -> type[Solver]:
    """Add a solver class to :data:`METHODS` under its ``name`` (a class decorator)."""
    if not solver_cls.name:
        raise ValueError(f"{solver_cls.__name__} has no method name")
    METHODS[solver_cls.name] = solver_cls
    return solver_cls


def get_solver(method: str) -> type[Solver]:
    """The solver class registered under ``method``."""
    try:
        return METHODS[method]
    except (KeyError, TypeError):
        raise ParameterError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}") from None
