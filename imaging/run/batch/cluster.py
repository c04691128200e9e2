"""Where a batch runs: the embedded Dask cluster, and what the batch reads from any cluster."""

from __future__ import annotations

import logging
import os

from .inputs import BatchError


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def total_memory() -> int:
    """This machine's physical memory (bytes)."""
    import psutil

    return int(psutil.virtual_memory().total)


def require_bokeh() -> None:
    """Raise :class:`BatchError` unless bokeh (the dashboard's server) is installed."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        raise BatchError("the dashboard needs bokeh: pip install 'bokeh>=3.1'") from None


def make_local_cluster(n_workers: int, threads_per_worker: int = 1, memory_limit: int | None = None,
                       dashboard: bool = False, allowed_failures: int = 3):
    """An embedded Dask cluster of worker processes that listens on 127.0.0.1 only.

    Parameters
    ----------
    n_workers : int
        Worker processes.
    threads_per_worker : int
        Tasks one worker runs at once.
    memory_limit : int, optional
        Bytes per worker (default: total memory / ``n_workers``); a worker that goes over
        95 % of it is restarted by its nanny.
    dashboard : bool
        Serve the scheduler dashboard on 127.0.0.1:8787 (needs bokeh). Without it the
        scheduler's and workers' HTTP servers answer only ``/health``.
    allowed_failures : int
        Worker deaths a task may cause before it is reported as failed.

    Returns
    -------
    distributed.LocalCluster
    """
    import dask
    from distributed import LocalCluster

    if dashboard:
        require_bokeh()
    memory_limit = memory_limit or total_memory() // n_workers
    health_only = ["distributed.http.health"]
    # Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
    # adaptive mmap threshold: every large tensor is then mapped and faulted in afresh,
    # and a RED-PSM slice took 15.7 s instead of 8.1 s on this 2-core machine.
    config = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    if not dashboard:
        config.update({
            "distributed.scheduler.http.routes": health_only,
            "distributed.worker.http.routes": health_only,
        })
    with dask.config.set(config):
        return LocalCluster(
            # Worker restarts are reported through the tasks' outcomes; the nanny's warnings
            # (e.g. a worker slow to exit while PyTorch unloads) would only clutter the terminal.
            silence_logs=logging.ERROR,
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:8787" if dashboard else None,
            memory_limit=memory_limit,
            # Without a dashboard the scheduler still serves /health; a free port avoids
            # clashing with other clusters on the dashboard's usual 8787.
            scheduler_kwargs={"allowed_failures": allowed_failures,
                              **({} if dashboard else {"dashboard_address": "127.0.0.1:0"})},
        )


def worker_limits(client) -> tuple[int | None, int]:
    """The smallest memory limit (None: unlimited) and the largest thread count of ``client``'s workers."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    threads = max(int(w.get("nthreads") or 1) for w in workers)
    return (min(limits) or None) if all(limits) else None, threads
