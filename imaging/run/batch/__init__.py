"""Batch reconstruction on Dask distributed: many measurement files and the slices of volumes.

:func:`reconstruct_many` turns its inputs (files, folders, glob patterns, manifests) into
tasks -- one per 2D measurement file and one per slice of every volume file -- and runs
them on Dask workers: an embedded :class:`distributed.LocalCluster` by default, an
existing cluster given by its scheduler address, or the cluster behind a
:class:`distributed.Client` the caller already holds (notebooks).

Fault tolerance:

- every output is written atomically (:func:`imaging.io.save_reconstruction`), and the
  solver checkpoints every ``checkpoint_every`` iterations into a work folder, so a task
  that is run again resumes instead of starting over;
- a failing item (corrupt file, impossible parameters, a method that does not handle the
  modality) is reported with its error and does not stop the others;
- a worker process that dies while running a task is restarted by its nanny and the
  scheduler runs the task again elsewhere (up to ``allowed_failures`` deaths per task);
  other unexpected exceptions are retried ``retries`` times;
- the slices of a volume are written as partial files into
  ``OUTDIR/.imaging-batch/<name>/`` and stacked into ``OUTDIR/<name>.npz`` (P, Z, N, N)
  once all of them are done;
- running the same batch again skips every output (and every partial slice) that loads,
  has the expected shape and records the same method and parameters; anything else is
  recomputed.

Security: the embedded cluster listens on 127.0.0.1 only, and its HTTP servers serve
nothing but ``/health`` unless ``dashboard=True`` (then the scheduler dashboard listens on
127.0.0.1:8787). Connecting to another scheduler is explicit (``scheduler=``); see
docs/batch.md for what that exposes.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from ...io import write_text_atomic

#: Exit status of ``imaging batch`` when at least one item failed (2 stays for bad input).
EXIT_ITEM_FAILED = 1
#: Name of the summary file written into the output folder.
SUMMARY_NAME = "batch-summary.json"
#: Work folder (inside the output folder) for slice inputs, partial slices and checkpoints.
WORK_DIR_NAME = ".imaging-batch"
MEASUREMENT_SUFFIXES = (".npz", ".h5", ".hdf5")
MANIFEST_SUFFIXES = (".txt", ".lst", ".yaml", ".yml")
_GLOB_CHARACTERS = "*?["

# -- memory model (see docs/batch.md, "Memory guard"; calibrated with peak RSS on Linux) ----
#: Resident memory of a worker process before it runs a task (Python, NumPy, PyTorch,
#: ASTRA, distributed and imaging imported); measured 276-290 MiB.
WORKER_BASELINE_BYTES = 320 * 2**20
#: Memory every task takes whatever its size (allocator caches, first-use buffers,
#: denoiser or network weights); small problems measured 70-80 MiB above the baseline.
TASK_FIXED_BYTES = 80 * 2**20
#: Peak bytes per stored weight while the sparse tomography operator is built (ASTRA's
#: float64 matrix and index temporaries of one frame, the float32 blocks kept); measured
#: 17-25 bytes per weight at N = 128.
OPERATOR_BUILD_BYTES_PER_WEIGHT = 24
#: Peak number of float32 (P, N, N) image stacks a method holds besides data and
#: operator (iterates, gradients, optimiser state, denoiser activations); fitted to the
#: peak memory of runs at P in {64, 128, 256}, N in {64, 128, 256} (docs/batch.md).
METHOD_STATE_COPIES = {"fbp-window": 28, "psm": 30, "red-psm": 46, "td-dip": 8}
#: The same for a method not listed above.
UNKNOWN_METHOD_STATE_COPIES = 96
#: TD-DIP's generator: weights and Adam state, and the activations (with their gradients)
#: of every feature channel of every frame in an optimiser batch; fitted at N = 64, 128.
TD_DIP_NETWORK_BYTES = 96 * 2**20
TD_DIP_BYTES_PER_ACTIVATION = 20


class BatchError(ValueError):
    """Bad batch input (no files found, an unreadable manifest, clashing output names,
    conflicting cluster options): nothing was run."""


# -- inputs -------------------------------------------------------------------------------
def _read_manifest(path: Path) -> list[str]:
    """The entries of a manifest: one per line (``#`` comments), or a YAML list."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BatchError(f"cannot read manifest {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BatchError(f"manifest {path} is not valid YAML: {exc}") from None
        if isinstance(data, dict) and set(data) == {"inputs"}:
            data = data["inputs"]
        if not isinstance(data, list) or not all(isinstance(entry, str) for entry in data):
            raise BatchError(f"manifest {path} must be a YAML list of paths (or a mapping 'inputs: [paths]')")
        return data
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _measurement_files(paths: Iterable[str | Path]) -> list[Path]:
    return sorted(Path(p) for p in paths if Path(p).suffix.lower() in MEASUREMENT_SUFFIXES and Path(p).is_file())


def _expand(entry: str | os.PathLike, base: Path | None, manifest: Path | None) -> list[Path]:
    text = os.fspath(entry)
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    where = f" (listed in {manifest})" if manifest is not None else ""
    if any(c in text for c in _GLOB_CHARACTERS) and not path.exists():
        files = _measurement_files(glob.glob(str(path), recursive=True))
        if not files:
            raise BatchError(f"pattern {text!r}{where} matches no measurement file ({', '.join(MEASUREMENT_SUFFIXES)})")
        return files
    if path.is_dir():
        files = _measurement_files(path.iterdir())
        if not files:
            raise BatchError(f"folder {path}{where} holds no measurement file ({', '.join(MEASUREMENT_SUFFIXES)})")
        return files
    suffix = path.suffix.lower()
    if suffix in MANIFEST_SUFFIXES:
        if manifest is not None:
            raise BatchError(f"manifest {manifest} lists another manifest, {text}; list files, folders or patterns")
        if not path.is_file():
            raise BatchError(f"manifest {path} does not exist")
        return [p for e in _read_manifest(path) for p in _expand(e, base=path.parent, manifest=path)]
    if suffix in MEASUREMENT_SUFFIXES:
        return [path]  # a missing file is reported as a failed item, not a batch error
    raise BatchError(
        f"{text}{where} is not a measurement file ({', '.join(MEASUREMENT_SUFFIXES)}), a folder, a glob "
        f"pattern or a manifest ({', '.join(MANIFEST_SUFFIXES)})"
    )


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Measurement files named by ``inputs``, in order, without duplicates.

    Parameters
    ----------
    inputs : sequence of str or path
        Each one a measurement file (.npz, .h5, .hdf5), a folder (its measurement files,
        not recursive), a glob pattern (``"scans/*.npz"``, ``"**"`` is recursive) or a
        manifest: a text file (.txt, .lst) with one entry per line (``#`` starts a
        comment) or a YAML file (.yaml, .yml) holding a list of entries; entries are
        files, folders or patterns, relative to the manifest's folder.

    Raises
    ------
    BatchError
        A pattern or folder that yields no file, an unreadable manifest, an input of
        unknown kind, or no input at all. A named file that does not exist is not an
        error here; :func:`reconstruct_many` reports it as a failed item.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: dict[Path, None] = {}
    for entry in inputs:
        for path in _expand(entry, base=None, manifest=None):
            files.setdefault(Path(os.path.abspath(path)), None)
    if not files:
        raise BatchError("no inputs given: name measurement files, folders, glob patterns or manifests")
    return list(files)


# -- memory guard -------------------------------------------------------------------------
def estimate_task_bytes(measurements, method: str, params: dict[str, Any] | None = None) -> int:
    """Estimated peak memory (bytes) of reconstructing one slice of ``measurements``.

    The model (documented in docs/batch.md): :data:`TASK_FIXED_BYTES` + the data arrays
    of one slice (measurements, mask, coil maps, ground truth) + the operator
    (tomography: about N weights per ray, :data:`OPERATOR_BUILD_BYTES_PER_WEIGHT` bytes
    each while it is built; MRI: three k-space sized FFT temporaries) +
    ``METHOD_STATE_COPIES[method]`` float32 (P, N, N) stacks + for td-dip its generator
    network (``batch_frames x channels x N^2`` activations). The worker process's own
    memory (:data:`WORKER_BASELINE_BYTES`) is not included.

    Parameters
    ----------
    measurements : Measurements
        One slice, or a volume (then one of its slices is estimated).
    method : str
    params : dict, optional
        The method's parameters (td-dip: ``batch_frames`` and ``channels``; defaults 4
        and 128 when missing).
    """
    params = params or {}
    frames = measurements.n_frames
    height, width = measurements.slice_shape
    stack = frames * height * width * 4
    if measurements.modality == "tomography":
        views, detectors = measurements.sinogram.shape[1], measurements.sinogram.shape[-1]
        data = frames * views * (detectors * 4 + 8)
        operator = OPERATOR_BUILD_BYTES_PER_WEIGHT * height * frames * views * detectors
    else:
        coils = measurements.kspace.shape[-3]
        kspace = frames * coils * height * width * 8
        data = kspace + frames * height * width + coils * height * width * 8
        operator = 3 * kspace
    ground_truth = stack if measurements.ground_truth is not None else 0
    copies = METHOD_STATE_COPIES.get(method, UNKNOWN_METHOD_STATE_COPIES)
    network = 0
    if method == "td-dip":
        batch = min(int(params.get("batch_frames", 4)), frames)
        activations = batch * int(params.get("channels", 128)) * height * width
        network = TD_DIP_NETWORK_BYTES + TD_DIP_BYTES_PER_ACTIVATION * activations
    return int(TASK_FIXED_BYTES + data + ground_truth + operator + copies * stack + network)


def _terminate_fraction() -> float:
    import dask

    fraction = dask.config.get("distributed.worker.memory.terminate", 0.95)
    return float(fraction) if fraction else 1.0


def _memory_refusal(task_bytes: int, threads: int, limit: int | None) -> str | None:
    """Why a worker with memory ``limit`` and ``threads`` tasks at once cannot run this task."""
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


# -- tasks (run on the workers) ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One reconstruction a worker runs: read ``input_path``, write ``output_path``."""

    name: str
    input_path: str
    output_path: str
    checkpoint_path: str
    method: str
    preset: str | None
    params: dict
    device: str
    checkpoint_every: int
    score: bool
    torch_threads: int = 1


def run_task(spec: TaskSpec) -> dict[str, Any]:
    """Run one task on a worker; returns ``{"status", "error", "seconds", "metrics"}``.

    Errors that a retry cannot fix (bad file, bad parameters, out of memory) come back as
    ``status "failed"``; any other exception propagates so that Dask retries the task.
    """
    import torch

    from ...io import load_measurements, save_reconstruction
    from ..runner import reconstruct

    torch.set_num_threads(spec.torch_threads)
    start = time.perf_counter()
    try:
        measurements = load_measurements(spec.input_path)
        result = reconstruct(
            measurements,
            spec.method,
            device=spec.device,
            preset=spec.preset,
            checkpoint=spec.checkpoint_path,
            checkpoint_every=spec.checkpoint_every,
            resume=True,
            **spec.params,
        )
        save_reconstruction(spec.output_path, result)
    except (ValueError, FileNotFoundError, MemoryError) as exc:
        return {"status": "failed", "error": _describe(exc), "seconds": time.perf_counter() - start, "metrics": None}
    Path(spec.checkpoint_path).unlink(missing_ok=True)
    metrics = None
    if spec.score and measurements.ground_truth is not None:
        from ...metrics import evaluate

        metrics = {k: float(v) for k, v in evaluate(result.reconstruction, measurements.ground_truth).items()}
    return {"status": "ok", "error": None, "seconds": time.perf_counter() - start, "metrics": metrics}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, ValueError) else text


# -- planning (on the client) ------------------------------------------------------------
def _normalised(params: dict) -> dict:
    """``params`` as it reads back from a reconstruction file (JSON round trip)."""
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def _output_is_complete(path: Path, shape: tuple[int, ...], method: str, params: dict):
    """The loaded result if ``path`` is a finished output of this run's settings, else None."""
    from ...io import load_reconstruction

    if not path.is_file():
        return None
    try:
        result = load_reconstruction(path)
    except (ValueError, OSError):
        return None
    if result.reconstruction.shape != shape or result.method != method or _normalised(result.params) != params:
        return None
    return result


@dataclasses.dataclass
class _Item:
    """One input file and its row of the summary."""

    path: Path
    output: Path
    row: dict[str, Any]
    n_slices: int = 1
    is_volume: bool = False
    slice_dir: Path | None = None
    shape: tuple[int, ...] = ()
    pending: set[int] = dataclasses.field(default_factory=set)
    seconds: float = 0.0
    slice_errors: dict[int, str] = dataclasses.field(default_factory=dict)

    def fail(self, error: str) -> None:
        self.row.update(status="failed", error=error, output=None)


def _settings_tag(method: str, params: dict) -> str:
    return hashlib.sha256(json.dumps([method, params], sort_keys=True).encode()).hexdigest()[:10]


def _score(result, ground_truth) -> dict[str, float] | None:
    if ground_truth is None:
        return None
    if result.reconstruction.ndim == 4:
        from ...metrics import evaluate_volume

        return evaluate_volume(result.reconstruction, ground_truth)
    from ...metrics import evaluate

    return {k: float(v) for k, v in evaluate(result.reconstruction, ground_truth).items()}


def _plan_item(
    path: Path, output_dir: Path, method: str, params: dict, make_spec
) -> tuple[_Item, list[tuple[int, TaskSpec]], int]:
    """Read one input; return its item, its (slice, task) pairs still to run and one task's peak memory."""
    from ...io import load_measurements, save_measurements

    item = _Item(
        path=path,
        output=output_dir / f"{path.stem}.npz",
        row={"item": str(path), "status": "pending", "error": None, "seconds": 0.0, "output": None,
             "metrics": None, "slices": None},
    )
    try:
        measurements = load_measurements(path)
    except (ValueError, OSError) as exc:
        item.fail(_describe(exc) if isinstance(exc, ValueError) else f"cannot read {path}: {exc.strerror or exc}")
        return item, [], 0
    item.is_volume = measurements.is_volume
    item.n_slices = measurements.n_slices
    item.shape = (measurements.n_frames, *measurements.image_shape)
    task_bytes = estimate_task_bytes(measurements, method, params)
    if item.is_volume:
        item.row["slices"] = item.n_slices
    finished = _output_is_complete(item.output, item.shape, method, params)
    if finished is not None:
        item.row.update(status="skipped", output=str(item.output), metrics=_score(finished, measurements.ground_truth))
        return item, [], task_bytes
    tag = _settings_tag(method, params)
    work_dir = output_dir / WORK_DIR_NAME
    if not item.is_volume:
        work_dir.mkdir(exist_ok=True)
        item.pending = {0}
        spec = make_spec(path.name, path, item.output, work_dir / f"{path.stem}.{tag}.ckpt", score=True)
        return item, [(0, spec)], task_bytes
    item.slice_dir = work_dir / path.stem
    item.slice_dir.mkdir(parents=True, exist_ok=True)
    slice_shape = (measurements.n_frames, *measurements.slice_shape)
    specs = []
    for z in range(item.n_slices):
        partial = item.slice_dir / f"slice-{z:04d}.npz"
        if _output_is_complete(partial, slice_shape, method, params) is not None:
            continue
        slice_input = item.slice_dir / f"slice-{z:04d}.input.npz"
        save_measurements(slice_input, measurements.slice(z))
        checkpoint = item.slice_dir / f"slice-{z:04d}.{tag}.ckpt"
        specs.append((z, make_spec(f"{path.name}[z={z}]", slice_input, partial, checkpoint, score=False)))
        item.pending.add(z)
    return item, specs, task_bytes


def _assemble(item: _Item) -> None:
    """Stack the finished slices of a volume item into its output and drop its work files."""
    from ...io import load_measurements, load_reconstruction, save_reconstruction
    from ..volumes import assemble_volume

    try:
        slices = [load_reconstruction(item.slice_dir / f"slice-{z:04d}.npz") for z in range(item.n_slices)]
        result = assemble_volume(slices, item.n_slices)
        save_reconstruction(item.output, result)
        ground_truth = load_measurements(item.path).ground_truth
    except (ValueError, OSError) as exc:
        item.fail(f"assembling the volume failed: {_describe(exc)}")
        return
    item.row.update(status="ok", output=str(item.output), metrics=_score(result, ground_truth))
    shutil.rmtree(item.slice_dir, ignore_errors=True)


def _record(item: _Item, z: int, outcome: dict[str, Any]) -> None:
    item.seconds += outcome.get("seconds") or 0.0
    item.row["seconds"] = item.seconds
    item.pending.discard(z)
    if outcome["status"] != "ok":
        item.slice_errors[z] = outcome["error"]
    elif not item.is_volume:
        item.row.update(status="ok", output=str(item.output), metrics=outcome["metrics"])
    if item.pending:
        return
    if item.slice_errors:
        if item.is_volume:
            failed = ", ".join(str(z) for z in sorted(item.slice_errors))
            first = item.slice_errors[min(item.slice_errors)]
            item.fail(
                f"{len(item.slice_errors)} of {item.n_slices} slices failed ({failed}); "
                f"slice {min(item.slice_errors)}: {first}"
            )
        else:
            item.fail(item.slice_errors[0])
    elif item.is_volume:
        _assemble(item)


# -- the cluster --------------------------------------------------------------------------
def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _require_bokeh() -> None:
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
        _require_bokeh()
    memory_limit = memory_limit or _total_memory() // n_workers
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


def _worker_limits(client) -> tuple[int | None, int]:
    """The smallest memory limit (None: unlimited) and the largest thread count of the workers."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    threads = max(int(w.get("nthreads") or 1) for w in workers)
    return (min(limits) or None) if all(limits) else None, threads


# -- the batch ----------------------------------------------------------------------------
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
    **params
        The method's parameters (``imaging methods NAME``).

    Returns
    -------
    list of dict
        One row per input file: ``item`` (path), ``status`` ("ok", "skipped" or
        "failed"), ``error`` (str or None), ``seconds`` (worker time spent on it in this
        run), ``output`` (path or None), ``metrics`` (dict from
        :func:`imaging.metrics.evaluate` / :func:`imaging.volumes.evaluate_volume` when
        the file has a ground truth, else None), ``slices`` (Z for a volume, else None).

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
        _require_bokeh()
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
    record = _normalised(dataclasses.asdict(solver_cls.make_params(preset, **params)))
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
    output_dir.mkdir(parents=True, exist_ok=True)

    cores = available_cores()
    threads = threads_per_worker or 1
    task_threads = torch_threads or 1
    limit = None

    def make_spec(name, input_path, output_path, checkpoint_path, score):
        return TaskSpec(
            name=name, input_path=str(input_path), output_path=str(output_path),
            checkpoint_path=str(checkpoint_path), method=method, preset=preset, params=dict(params),
            device=device, checkpoint_every=checkpoint_every, score=score,
        )

    planned = [_plan_item(path, output_dir, method, record, make_spec) for path in paths]
    n_tasks = sum(len(specs) for _, specs, _ in planned)
    with ExitStack() as stack:
        if n_tasks:
            if embedded:
                workers = n_workers or max(1, min(cores, n_tasks))
                limit = memory_limit or _total_memory() // workers
                task_threads = torch_threads or max(1, cores // (workers * threads))
            else:
                from distributed import Client

                try:
                    client = client or stack.enter_context(Client(scheduler, timeout=30))
                    client.wait_for_workers(1, timeout=60)
                except (OSError, TimeoutError) as exc:
                    raise BatchError(f"cannot use the Dask cluster at {scheduler or client}: {exc}") from None
                limit, threads = _worker_limits(client)
        work = []
        for item, specs, task_bytes in planned:
            refusal = _memory_refusal(task_bytes, threads, limit) if specs else None
            if refusal:
                item.fail(refusal)
                if item.is_volume:  # drop the slice inputs just written, keep finished slices
                    for _, spec in specs:
                        Path(spec.input_path).unlink()
                    if not any(item.slice_dir.iterdir()):
                        item.slice_dir.rmdir()
                continue
            if not specs and item.row["status"] == "pending":
                _assemble(item)  # every slice was done by an earlier run
            work.extend((item, z, dataclasses.replace(spec, torch_threads=task_threads)) for z, spec in specs)
        if work and embedded:
            cluster = stack.enter_context(make_local_cluster(
                workers, threads, limit, dashboard=dashboard, allowed_failures=allowed_failures))
            if dashboard:
                print(f"Dask dashboard: {cluster.dashboard_link}", file=sys.stderr)
            from distributed import Client

            client = stack.enter_context(Client(cluster))
        if work:
            _run(client, work, method, progress, retries)
    _finish(planned, output_dir)
    return [item.row for item, _, _ in planned]


def _run(client, work: list[tuple[_Item, int, TaskSpec]], method: str, progress: bool, retries: int) -> None:
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
                outcome = {"status": "failed", "error": _describe(future.exception()), "seconds": 0.0}
            failed += outcome["status"] != "ok"
            _record(item, z, outcome)
            bar.set_postfix(failed=failed, refresh=False)
            bar.update()
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        bar.close()


def _finish(planned, output_dir: Path) -> None:
    """Write the summary file and drop the work folder when nothing is left in it."""
    rows = [item.row for item, _, _ in planned]
    write_text_atomic(output_dir / SUMMARY_NAME, json.dumps(rows, indent=2, default=str) + "\n")
    work_dir = output_dir / WORK_DIR_NAME
    if work_dir.is_dir() and not any(work_dir.iterdir()):
        work_dir.rmdir()


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The summary as a text table: item, status, seconds, PSNR/SSIM, output or error."""
    headers = ("item", "status", "seconds", "psnr", "ssim", "output / error")
    lines = []
    for row in rows:
        metrics = row.get("metrics") or {}
        detail = row["error"] if row["status"] == "failed" else row.get("output") or ""
        name = Path(row["item"]).name + (f" ({row['slices']} slices)" if row.get("slices") else "")
        lines.append((
            name,
            row["status"],
            f"{row['seconds']:.1f}",
            f"{metrics['psnr']:.2f}" if "psnr" in metrics else "-",
            f"{metrics['ssim']:.3f}" if "ssim" in metrics else "-",
            detail,
        ))
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(headers[:-1])]
    fmt = "  ".join(f"{{:{w}}}" for w in widths) + "  {}"
    table = [fmt.format(*headers), fmt.format(*("-" * w for w in widths), "-" * 14)]
    table += [fmt.format(*line) for line in lines]
    counts = {status: sum(row["status"] == status for row in rows) for status in ("ok", "skipped", "failed")}
    table.append(f"{len(rows)} items: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed")
    return "\n".join(table)


__all__ = [
    "BatchError",
    "EXIT_ITEM_FAILED",
    "TaskSpec",
    "available_cores",
    "collect_inputs",
    "estimate_task_bytes",
    "format_summary",
    "make_local_cluster",
    "reconstruct_many",
    "run_task",
]
