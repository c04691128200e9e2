"""How long a run has left, from the pace of its iterations (the CLI bar and the napari
status show it)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

#: Iteration durations the pace is the median of (the latest on the current grid).
PACE_WINDOW = 3
#: Cost of an iteration per doubling of the grid: the pixels; measured 4.0 from N = 128 to
#: 256 and from 256 to 512 (benchmarks/results/scale-per-iteration.md).
COST_PER_DOUBLING = 4.0


class RemainingTime:
    """At most how many seconds a run has left, from the pace of its latest iterations.

    Make it when the run starts and call :meth:`update` with every
    :class:`~imaging.run.IterationInfo` as it arrives. It
    returns None until an iteration after a slice's first (which holds the set-up) has
    been timed, then an upper bound: the iterations up to ``max_iter`` at the current
    pace; a stopping rule may end the run sooner. On red-psm's coarse-to-fine start (its
    entries carry ``grid_size``) the iterations still to come on finer grids,
    ``refine_iterations`` on each, are costed at :data:`COST_PER_DOUBLING` times the pace
    per doubling, so the cheap coarse iterations do not promise a quick end. A volume's
    slices to come are costed like the current one.

    Parameters
    ----------
    clock : callable, optional
        Seconds, monotonic (default :func:`time.perf_counter`).
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        # The first slice starts now (its set-up included), each later one when the previous ended.
        self._last_time: float = clock()
        self._slice_index: int | None = None
        self._slice_start = 0.0
        self._grid: int | None = None
        self._durations: list[float] = []
        self._iterations_on_grid = 0
        self._refining = False

    def update(self, info) -> float | None:
        """Seconds left after ``info`` (an :class:`~imaging.run.IterationInfo`), or None."""
        now = self._clock()
        full = int(info.solver.measurements.slice_shape[0])
        grid = int(info.entry.get("grid_size", full))
        if info.slice_index != self._slice_index:  # a new run or slice: its set-up is no pace
            self._slice_index, self._slice_start = info.slice_index, self._last_time
            self._grid, self._durations, self._iterations_on_grid, self._refining = grid, [], 0, False
        else:
            if grid != self._grid:  # handed over to a finer grid: a new pace
                self._grid, self._durations, self._iterations_on_grid, self._refining = grid, [], 0, True
            self._durations.append(now - self._last_time)
        self._iterations_on_grid += 1
        self._last_time = now
        if not self._durations:
            return None
        pace = statistics.median(self._durations[-PACE_WINDOW:])
        refine = int(getattr(info.solver.params, "refine_iterations", 0) or 0)
        finer_levels = max(0, round(math.log2(full / grid))) if grid < full else 0
        if self._refining:
            here = max(0, refine - self._iterations_on_grid)
        else:  # the first grid of the run: the coarser solvers stop refine iterations earlier each
            here = max(0, info.max_iter - finer_levels * refine - info.iteration)
        left = here * pace + sum(refine * pace * COST_PER_DOUBLING**level for level in range(1, finer_levels + 1))
        slices_to_come = info.n_slices - info.slice_index - 1
        return left + slices_to_come * (now - self._slice_start + left)


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"``, ``"1 h 02 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
