"""One thread budget for a run: PyTorch's threads and the tomography thread pool.

A run's CPU work alternates between PyTorch kernels (denoiser, FFTs, factor updates) on
PyTorch's intra-op threads and the sparse tomography products on the operator's pool,
which uses ``torch.get_num_threads()`` threads. Both therefore follow one number, the
budget set here, and never exceed the cores this process may use.

Two things keep a run from being slower than a single-threaded one when other
processes (a second job, napari's rendering) share the cores:

- the budget defaults to the cores that are idle when the run starts (measured over a
  short window from ``/proc/stat``), at least one and at most the usable cores, and then
  follows the other processes' load: between iterations, at most once a second,
  :class:`ThreadBudget` takes the cores the machine kept busy less this process's own CPU
  time, and sets the budget to the cores they leave (rounded, the same rule as at the
  start). The 50 ms window at the start can catch a passing burst of work, which made a
  whole benchmark run of several minutes single-threaded before the budget followed the
  load;
- OpenMP threads wait passively between parallel regions (``OMP_WAIT_POLICY=PASSIVE``,
  set by ``imaging/__init__.py`` unless the user set it, before PyTorch loads): by
  default they spin for a while, stealing the core from the tomography pool or from
  another process, which made a small run 3-8 times slower under load.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import NamedTuple

import torch


def usable_cores() -> int:
    """The number of cores this process may run on (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_cpus() -> int:
    """The number of CPUs of the machine, the ones ``/proc/stat`` sums over."""
    return os.cpu_count() or usable_cores()


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies summed over all CPUs, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values)


def idle_cores(window: float = 0.05) -> float:
    """Cores left idle by every process during ``window`` seconds (usable cores where unknown)."""
    cores = usable_cores()
    before = _cpu_times()
    if before is None:
        return float(cores)
    time.sleep(window)
    after = _cpu_times()
    total = after[1] - before[1]
    if total <= 0:
        return float(cores)
    fraction_idle = (after[0] - before[0]) / total
    # /proc/stat counts every CPU of the machine; scale to the ones we may use.
    return min(float(cores), fraction_idle * machine_cpus())


def choose_threads(requested: int | None = None) -> int:
    """The thread budget of a run: ``requested``, or the idle cores (rounded), in [1, usable cores].

    Raises
    ------
    ValueError
        For a ``requested`` that is not a positive integer.
    """
    cores = usable_cores()
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive integer, got {requested!r}")
        return min(requested, cores)
    return max(1, min(cores, round(idle_cores())))


#: Least seconds between two checks of the other processes' load (shorter iterations add up).
RECHECK_SECONDS = 1.0


class CpuSample(NamedTuple):
    """What :func:`cores_used_by_others` compares: wall clock, the machine's (idle, total)
    jiffies (None where ``/proc/stat`` is missing), this process's CPU seconds."""

    wall: float
    machine: tuple[int, int] | None
    own_cpu: float


def cpu_sample() -> CpuSample:
    """The machine's and this process's CPU counters now."""
    return CpuSample(time.monotonic(), _cpu_times(), time.process_time())


def cores_used_by_others(before: CpuSample, after: CpuSample) -> float | None:
    """Cores that other processes kept busy between two samples (None where unknown).

    The machine's busy cores (``/proc/stat``, all CPUs) less this process's CPU time per
    second of wall clock, all of its threads included.
    """
    if before.machine is None or after.machine is None:
        return None
    wall = after.wall - before.wall
    total = after.machine[1] - before.machine[1]
    if wall <= 0 or total <= 0:
        return None
    busy_fraction = 1.0 - (after.machine[0] - before.machine[0]) / total
    own_cores = (after.own_cpu - before.own_cpu) / wall
    return max(0.0, busy_fraction * machine_cpus() - own_cores)


class ThreadBudget:
    """The thread budget of one run.

    Parameters
    ----------
    requested : int, optional
        A fixed number of threads (bounded by the usable cores). Default: the idle cores
        when the run starts (:func:`choose_threads`), then, at every :meth:`update`, the
        cores other processes leave to this one.
    """

    def __init__(self, requested: int | None = None):
        self.follows_load = requested is None
        #: The current budget.
        self.threads = choose_threads(requested)
        self._since = cpu_sample()

    def update(self) -> int:
        """Re-check the other processes' load (at most every :data:`RECHECK_SECONDS`) and
        set PyTorch's threads (and so the tomography pool's) to the new budget.

        Returns
        -------
        int
            The budget now.
        """
        if not self.follows_load:
            return self.threads
        # The clock first: /proc/stat is read only when a check is due, not every iteration.
        if time.monotonic() - self._since.wall < RECHECK_SECONDS:
            return self.threads
        now = cpu_sample()
        others = cores_used_by_others(self._since, now)
        self._since = now
        if others is not None:
            # As at the start: the machine's cores the others leave, at most the usable ones
            # (a process bound to some CPUs is not slowed by work on the others).
            cores = usable_cores()
            threads = max(1, min(cores, round(machine_cpus() - others)))
            if threads != self.threads:
                self.threads = threads
                torch.set_num_threads(threads)
        return self.threads


@contextlib.contextmanager
def thread_budget(threads: int) -> Iterator[int]:
    """Run the block with PyTorch (and so the tomography pool) on ``threads`` threads.

    The previous PyTorch setting is restored afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(previous)
