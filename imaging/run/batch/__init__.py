"""Batch reconstruction on Dask distributed: many measurement files and the slices of volumes.

:func:`reconstruct_many` turns its inputs (files, folders, glob patterns, manifests) into
tasks -- one per 2D measurement file and one per slice of every volume file -- and runs
them on Dask workers: an embedded :class:`distributed.LocalCluster` by default, an
existing cluster given by its scheduler address, or the cluster behind a
:class:`distributed.Client` the caller already holds (notebooks). Every task runs the
runner (:func:`imaging.run.reconstruct`, with ``slices=[z]`` for slice z of a volume),
and a volume's slices are stacked with :func:`imaging.run.assemble_volume`.

The package's modules:

- :mod:`.inputs`: which files a batch reads (:func:`collect_inputs`) and their digests;
- :mod:`.memory`: the memory guard (the method's own
  :meth:`~imaging.solvers.base.Solver.estimate_bytes` against the workers' limits);
- :mod:`.tasks`: the worker side (:class:`TaskSpec`, :func:`run_task`);
- :mod:`.planning`: the client side per item (what is finished, what is left, the
  outcome of each task, the assembly of volumes);
- :mod:`.cluster`: the embedded cluster (:func:`make_local_cluster`);
- :mod:`.summary`: ``batch-summary.json`` and its text table.

Fault tolerance:

- every output is written atomically (:func:`imaging.io.save_reconstruction`), and the
  runner checkpoints every ``checkpoint_every`` iterations into a work folder, so a task
  that is run again resumes instead of starting over;
- a failing item (a corrupt, encrypted or oversized file, impossible parameters, a
  method that does not handle the modality, any error while planning it) is reported
  with its error in the summary and does not stop the others; the summary is written
  even when the batch itself stops (an interrupt, a lost cluster);
- a worker process that dies while running a task is restarted by its nanny and the
  scheduler runs the task again elsewhere (up to ``allowed_failures`` deaths per task);
  other unexpected exceptions are retried ``retries`` times;
- the slices of a volume are written as partial files into
  ``OUTDIR/.imaging-batch/<name>-<digest>/`` and stacked into ``OUTDIR/<name>.npz``
  (P, Z, N, N) once all of them are done;
- running the same batch again skips every output (and every partial slice) that loads,
  has the expected shape, records the same method and parameters and was made from the
  same input file (its SHA-256); anything else is recomputed. Work files are named by the
  input's SHA-256, so a checkpoint of another scan is never resumed.

Security: the embedded cluster listens on 127.0.0.1 only, and its HTTP servers serve
nothing but ``/health`` unless ``dashboard=True`` (then the scheduler dashboard listens on
127.0.0.1:8787). Connecting to another scheduler is explicit (``scheduler=``); see
docs/batch.md for what that exposes. An output folder that holds the inputs is refused
unless ``allow_output_in_input_folder=True``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .cluster import available_cores, make_local_cluster, require_bokeh, total_memory, worker_limits
from .inputs import BatchError, collect_inputs
from .memory import estimate_task_bytes, memory_refusal  # noqa: F401 (deprecated alias)
from .planning import WORK_DIR_NAME, Item, assemble, output_folder_refusal, plan_item, record
from .summary import SUMMARY_NAME, format_summary, write_summary
from .tasks import INPUT_DIGEST_EXTRA, TaskSpec, describe_error, run_task

#: Exit status of ``imaging batch`` when at least one item failed (2 stays for bad input).
EXIT_ITEM_FAILED = 1


def reconstruct_many(
    items: Sequence[str | os.PathLike] | str | os.PathLike,
    method: str = "red-psm",
    *,
    output_dir: str | os.PathLike,
    client=None,
    scheduler: str | None = None,
    n_workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: int | str | None = None,
    preset: str | None = None,
    device: str = "cpu",
    progress: bool = True,
    dashboard: bool = False,
    torch_threads: int | None = None,
    retries: int = 2,
    allowed_failures: int = 3,
    checkpoint_every: int = 10,
    allow_output_in_input_folder: bool = False,
    **params,
) -> list[dict[str, Any]]:
    """Reconstruct many measurement files and volume slices on Dask workers.

    Parameters
    ----------
    items : path, or sequence of paths
        Measurement files, folders, glob patterns or manifests (see
        :func:`collect_inputs`). A 2D file is one task; a volume file is one task per
        slice, assembled into one (P, Z, N, N) output when all its slices are done.
    method : str
        A key of :data:`imaging.solvers.METHODS`.
    output_dir : path
        ``<output_dir>/<input stem>.npz`` per input (created if missing), the summary
        ``batch-summary.json`` and the work folder ``.imaging-batch/``. Paths must be
        valid on the workers too (a shared file system for a remote cluster).
    client : distributed.Client, optional
        Use this client's cluster (e.g. in a notebook); it is left open.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); explicit by design.
    n_workers, threads_per_worker, memory_limit :
        The embedded LocalCluster (only without ``client``/``scheduler``): worker
        processes (default: the cores available, at most one per task), tasks per worker
        (default 1) and memory per worker (bytes or a string such as "4GiB"; default
        total memory / workers).
    preset : str, optional
        A preset of the method (e.g. "fast").
    device : {"cpu", "cuda", "auto"}
    progress : bool
        Show a tqdm progress bar over finished tasks.
    dashboard : bool
        Embedded cluster only: serve the Dask dashboard on 127.0.0.1:8787.
    torch_threads : int, optional
        PyTorch threads per task (default: embedded cluster, cores / (workers x threads
        per worker); existing cluster, 1) so that the workers do not oversubscribe cores.
    retries : int
        Re-runs of a task after an unexpected exception (not after a bad file or bad
        parameters, which fail at once).
    allowed_failures : int
        Embedded cluster: worker deaths a task may cause before it fails (the
        ``distributed.scheduler.allowed-failures`` setting of an existing scheduler
        applies otherwise).
    checkpoint_every : int
        Solver iterations between checkpoints in the work folder.
    allow_output_in_input_folder : bool
        Write the outputs even when ``output_dir`` holds input files; an output then
        replaces an input ``.npz`` file of the same name. Refused by default.
    **params
        The method's parameters (``imaging methods NAME``).

    Returns
    -------
    list of dict
        One row per input file: ``item`` (path), ``status`` ("ok", "skipped" or
        "failed"), ``error`` (str or None), ``seconds`` (worker time spent on it in this
        run), ``output`` (path or None), ``metrics`` (dict from
        :func:`imaging.metrics.evaluate` / :func:`imaging.metrics.evaluate_volume` when
        the file has a ground truth, else None), ``slices`` (Z for a volume, else None),
        ``input_sha256`` (the SHA-256 of the input file, None if it could not be read).
        The same rows are written to ``batch-summary.json``, non-finite numbers as null.

    Raises
    ------
    BatchError
        Bad inputs or conflicting options; nothing was run.
    imaging.solvers.ParameterError
        Unknown method, preset or parameter.
    """
    from dask.utils import parse_bytes

    from ...solvers import get_solver

    if client is not None and scheduler is not None:
        raise BatchError("give either a client or a scheduler address, not both")
    embedded = client is None and scheduler is None
    local_options = {"n_workers": n_workers, "threads_per_worker": threads_per_worker, "memory_limit": memory_limit}
    given = [name for name, value in local_options.items() if value is not None] + (["dashboard"] if dashboard else [])
    if not embedded and given:
        raise BatchError(f"{', '.join(given)} configure the embedded cluster; they cannot change an existing one")
    if dashboard:
        require_bokeh()
    for name, value in (("n_workers", n_workers), ("threads_per_worker", threads_per_worker),
                        ("torch_threads", torch_threads), ("checkpoint_every", checkpoint_every)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BatchError(f"{name} must be a positive integer, got {value!r}")
    try:
        memory_limit = parse_bytes(memory_limit) if isinstance(memory_limit, str) else memory_limit
    except ValueError:
        raise BatchError(
            f"memory_limit must be a number of bytes or a size such as '4GiB', got {memory_limit!r}"
        ) from None
    paths = collect_inputs(items)
    solver_cls = get_solver(method)
    solver_params = solver_cls.make_params(preset, **params)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BatchError(f"output folder {output_dir} exists and is not a folder")
    by_output: dict[str, list[Path]] = {}
    for path in paths:
        by_output.setdefault(path.stem, []).append(path)
    clashes = [group for group in by_output.values() if len(group) > 1]
    if clashes:
        names = "; ".join(" and ".join(str(p) for p in group) for group in clashes)
        raise BatchError(f"inputs would write the same output file ({names}); rename them or batch them separately")
    refusal = output_folder_refusal(paths, output_dir)
    if refusal and not allow_output_in_input_folder:
        raise BatchError(refusal)
    output_dir.mkdir(parents=True, exist_ok=True)

    template = TaskSpec(
        name="", input_path="", output_path="", checkpoint_path="", method=method, preset=preset,
        params=dict(params), device=device, checkpoint_every=checkpoint_every, score=False,
    )
    planned = [Item.for_input(path, output_dir) for path in paths]
    try:
        for item in planned:
            plan_item(item, method, solver_cls, solver_params, template)
        n_tasks = sum(len(item.specs) for item in planned)
        cores = available_cores()
        threads = threads_per_worker or 1
        task_threads = torch_threads or 1
        limit = None
        with ExitStack() as stack:
            if n_tasks:
                if embedded:
                    workers = n_workers or max(1, min(cores, n_tasks))
                    limit = memory_limit or total_memory() // workers
                    task_threads = torch_threads or max(1, cores // (workers * threads))
                else:
                    from distributed import Client

                    try:
                        client = client or stack.enter_context(Client(scheduler, timeout=30))
                        client.wait_for_workers(1, timeout=60)
                    except (OSError, TimeoutError) as exc:
                        raise BatchError(f"cannot use the Dask cluster at {scheduler or client}: {exc}") from None
                    limit, threads = worker_limits(client)
            work = []
            for item in planned:
                refusal = memory_refusal(item.task_bytes, threads, limit) if item.specs else None
                if refusal:
                    item.fail(refusal)  # finished slices of a volume are kept for a later run
                    continue
                if not item.specs and item.row["status"] == "pending":
                    assemble(item)  # every slice was done by an earlier run
                work.extend((item, z, dataclasses.replace(spec, torch_threads=task_threads)) for z, spec in item.specs)
            if work and embedded:
                cluster = stack.enter_context(make_local_cluster(
                    workers, threads, limit, dashboard=dashboard, allowed_failures=allowed_failures))
                if dashboard:
                    print(f"Dask dashboard: {cluster.dashboard_link}", file=sys.stderr)
                from distributed import Client

                client = stack.enter_context(Client(cluster))
            if work:
                _run(client, work, method, progress, retries)
    except BaseException as exc:
        for item in planned:
            if item.row["status"] == "pending":
                item.fail(f"not finished: the batch stopped ({describe_error(exc)})")
        raise
    finally:
        _finish(planned, output_dir)
    return [item.row for item in planned]


def _run(client, work: list[tuple[Item, int, TaskSpec]], method: str, progress: bool, retries: int) -> None:
    """Submit the tasks, record each outcome as it finishes (progress bar over tasks)."""
    from distributed import as_completed
    from tqdm import tqdm

    futures = {}
    for item, z, spec in work:
        key = f"imaging-batch-{spec.name}-{uuid.uuid4().hex[:8]}"
        futures[client.submit(run_task, spec, key=key, pure=False, retries=retries)] = (item, z)
    bar = tqdm(total=len(futures), desc=f"batch {method}", unit="task", disable=not progress)
    failed = 0
    try:
        for future in as_completed(list(futures)):
            item, z = futures.pop(future)
            if future.status == "finished":
                outcome = future.result()
            else:
                outcome = {"status": "failed", "error": describe_error(future.exception()), "seconds": 0.0}
            failed += outcome["status"] != "ok"
            record(item, z, outcome)
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        bar.close()


def _finish(planned: list[Item], output_dir: Path) -> None:
    """Write the summary file and drop the work folders that nothing is left in."""
    write_summary([item.row for item in planned], output_dir)
    work_dir = output_dir / WORK_DIR_NAME
    for folder in [item.slice_dir for item in planned if item.slice_dir is not None] + [work_dir]:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


__all__ = [
    "BatchError",
    "EXIT_ITEM_FAILED",
    "INPUT_DIGEST_EXTRA",
    "SUMMARY_NAME",
    "WORK_DIR_NAME",
    "TaskSpec",
    "available_cores",
    "collect_inputs",
    "format_summary",
    "make_local_cluster",
    "reconstruct_many",
    "run_task",
]
