"""The memory guard: refuse, before anything runs, an item whose task cannot fit a worker.

What one slice needs comes from the method itself
(:meth:`imaging.solvers.base.Solver.estimate_bytes`); this module adds what a batch
task holds besides (a volume's other slices) and what the worker process takes before
any task (:data:`WORKER_BASELINE_BYTES`), and compares the sum with the worker's memory
limit. docs/batch.md ("Memory guard") states the model and the measurements behind it.
"""

from __future__ import annotations

import warnings
from typing import Any

#: Resident memory of a worker process before it runs a task (Python, NumPy, PyTorch,
#: ASTRA, distributed and imaging imported); measured 276-290 MiB.
WORKER_BASELINE_BYTES = 320 * 2**20


def task_bytes(measurements, solver_cls, params) -> int:
    """Estimated peak memory (bytes) of one batch task on ``measurements``, beyond the worker's baseline.

    Parameters
    ----------
    measurements : Measurements
        The input file's measurements: one slice, or a volume (a task then reconstructs
        one of its slices).
    solver_cls : type of Solver
        The method (``imaging.solvers.get_solver(method)``).
    params : SolverParams
        The run's parameters.

    Returns
    -------
    int
        ``solver_cls.estimate_bytes`` of one slice; for a volume plus the whole volume's
        arrays (a task reads the file, then reconstructs its slice) and the float32
        (P, 1, N, N) result the runner assembles.
    """
    from ...solvers.base import measurement_bytes

    one_slice = measurements.slice(0)
    need = solver_cls.estimate_bytes(one_slice, params)
    if measurements.is_volume:
        height, width = measurements.slice_shape
        need += measurement_bytes(measurements) + 4 * measurements.n_frames * height * width
    return int(need)


def estimate_task_bytes(measurements, method: str, params: dict[str, Any] | None = None) -> int:
    """Deprecated: ``imaging.solvers.get_solver(method).estimate_bytes(measurements.slice(0), params)``.

    Kept for callers of the old batch API; the memory model now lives in the solvers.
    """
    from ...solvers import get_solver

    warnings.warn(
        "imaging.run.batch.estimate_task_bytes is deprecated; use "
        "imaging.solvers.get_solver(method).estimate_bytes(measurements.slice(0), params)",
        DeprecationWarning,
        stacklevel=2,
    )
    solver_cls = get_solver(method)
    return solver_cls.estimate_bytes(measurements.slice(0), solver_cls.make_params(**(params or {})))


def _terminate_fraction() -> float:
    import dask

    fraction = dask.config.get("distributed.worker.memory.terminate", 0.95)
    return float(fraction) if fraction else 1.0


def memory_refusal(task_bytes: int, threads: int, limit: int | None) -> str | None:
    """Why a worker with memory ``limit`` (bytes, None: unlimited) running ``threads``
    tasks at once cannot run a task of ``task_bytes``; None when it can."""
    if not limit:
        return None
    from dask.utils import format_bytes

    need = WORKER_BASELINE_BYTES + threads * task_bytes
    usable = int(limit * _terminate_fraction())
    if need <= usable:
        return None
    per_thread = f" ({threads} tasks at once)" if threads > 1 else ""
    return (
        f"memory guard: a worker needs about {format_bytes(need)}{per_thread} for this item but its memory "
        f"limit of {format_bytes(limit)} lets it use {format_bytes(usable)}; use fewer workers, fewer "
        "threads per worker or a larger memory limit"
    )
