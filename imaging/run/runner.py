"""The runner (SigPy's ``App``): loop, timing, callbacks, metrics, checkpoints.

:func:`iterate` is a generator that yields one :class:`IterationInfo` per outer
iteration and returns the :class:`ReconstructionResult`; napari's ``thread_worker``
runs it directly. :func:`reconstruct` drives the same generator with an optional
callback; the CLI and batch jobs call it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import write_atomic
from ..io.safe import first_line
from ..io.stored import StoredFrames, volume_slice
from ..measurements import MeasurementError, Measurements
from ..operators.coils import ESTIMATORS as COIL_ESTIMATORS
from ..results import ReconstructionResult, magnitude_image
from ..solvers.base import ParameterError, Solver
from ..solvers.registry import get_solver
from .threads import ThreadBudget, thread_budget
from .volumes import assemble_volume, slice_checkpoint


@dataclasses.dataclass
class IterationInfo:
    """What a callback or a GUI sees after each outer iteration.

    ``slice_index`` and ``n_slices`` say which slice of a volume is running (0 and 1
    for a single slice); ``estimate()`` is the current (P, N, N) estimate of that slice.
    """

    iteration: int
    max_iter: int
    entry: dict[str, Any]
    solver: Solver
    slice_index: int = 0
    n_slices: int = 1

    def estimate(self) -> np.ndarray:
        """The current reconstruction of the running slice, (P, N, N) float32."""
        return self.solver.estimate()


#: Frames whose 2D SSIM the runner logs (evenly spaced); the full-volume metrics are
#: for :func:`imaging.metrics.evaluate` after the run.
SSIM_SAMPLED_FRAMES = 8
#: Frames per block when the runner computes PSNR (bounds its float64 temporaries).
_SCORE_BLOCK_FRAMES = 16


class ReferenceScorer:
    """Metrics against a ground truth that cost next to nothing per iteration.

    Logged per iteration: ``psnr`` (whole volume, the paper's convention) and
    ``psnr_frame_mean``, computed in blocks of frames, so the extra memory is a few
    frames, not float64 copies of the whole stack. With ``with_ssim``: ``ssim_sampled``,
    the mean 2D SSIM of the frames listed in ``ssim_frames`` (at most
    :data:`SSIM_SAMPLED_FRAMES`, evenly spaced, with the data range of the whole
    reference) — equal to :func:`imaging.metrics.ssim_frames` on those frames.

    Parameters
    ----------
    reference : numpy.ndarray or imaging.io.StoredFrames
        float32 (P, N, N) ground truth: in memory, or kept in its file and read a block of
        frames at a time (:func:`imaging.io.open_ground_truth`).
    """

    def __init__(self, reference: np.ndarray | StoredFrames):
        from .. import metrics

        self._metrics = metrics
        self.reference = reference
        frames = reference.shape[0]
        lows, highs = [], []
        for start in range(0, frames, _SCORE_BLOCK_FRAMES):
            block = reference[start : start + _SCORE_BLOCK_FRAMES]
            lows.append(float(block.min()))
            highs.append(float(block.max()))
        low, high = min(lows), max(highs)
        # The range in double precision, as imaging.metrics computes it.
        self.data_range = high - low or max(abs(low), abs(high)) or 1.0
        self.ssim_frames = np.unique(np.linspace(0, frames - 1, min(frames, SSIM_SAMPLED_FRAMES)).round().astype(int))

    def score(self, estimate: np.ndarray, with_ssim: bool) -> dict[str, Any]:
        """The metrics of ``estimate`` (float32 (P, N, N)) as history entries."""
        frames = self.reference.shape[0]
        frame_psnr = np.concatenate([
            self._metrics.psnr_frames(
                estimate[start : start + _SCORE_BLOCK_FRAMES],
                self.reference[start : start + _SCORE_BLOCK_FRAMES],
                self.data_range,
            )
            for start in range(0, frames, _SCORE_BLOCK_FRAMES)
        ])
        # Every frame has the same number of pixels: the volume's MSE is the mean of the frames' MSEs.
        frame_mse = self.data_range**2 / np.power(10.0, frame_psnr / 10.0)
        with np.errstate(divide="ignore"):
            volume_psnr = 10.0 * np.log10(self.data_range**2 / frame_mse.mean())
        out: dict[str, Any] = {"psnr": float(volume_psnr), "psnr_frame_mean": float(frame_psnr.mean())}
        if with_ssim:
            sampled = self._metrics.ssim_frames(
                estimate[self.ssim_frames], self.reference[self.ssim_frames], self.data_range
            )
            out["ssim_sampled"] = float(sampled.mean())
            out["ssim_frames"] = [int(p) for p in self.ssim_frames]
        return out


#: Version of the checkpoint layout; a checkpoint of another version is refused.
CHECKPOINT_FORMAT = 2

#: What a solver raises when a restored state does not fit the problem (wrong shapes,
#: dtypes, missing entries), in ``load_state_dict`` or the first step after it.
_STATE_ERRORS = (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError)


class CheckpointError(ParameterError):
    """A checkpoint that cannot be resumed: damaged, tampered, or of another run (a
    :class:`ParameterError`, as a checkpoint of other settings always was)."""


class DivergedError(ValueError):
    """The reconstruction became NaN or infinite (an impossible parameter value)."""


def measurement_digest(measurements: Measurements) -> str:
    """SHA-256 over what a solver sees of ``measurements`` (every contract key except the
    ground truth, which only scores): binds a checkpoint to the problem it belongs to."""
    digest = hashlib.sha256()
    for name, value in sorted(measurements.to_dict().items()):
        if name == "ground_truth":
            continue
        array = np.ascontiguousarray(value)
        digest.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    write_atomic(path, lambda temporary: torch.save(payload, temporary), make_parents=True)


def _check_finite_state(path: Path, value: Any, where: str = "solver") -> None:
    """Refuse NaN/inf numbers and tensors anywhere in a restored solver state."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite_state(path, item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_finite_state(path, item, f"{where}[{index}]")
    elif isinstance(value, torch.Tensor):
        if (value.is_floating_point() or value.is_complex()) and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"cannot resume: checkpoint {path} holds NaN or infinite values in {where}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise CheckpointError(f"cannot resume: checkpoint {path} holds a NaN or infinite {where}")


def _load_checkpoint(path: Path, method: str, params: dict[str, Any], digest: str) -> dict[str, Any]:
    """Read a checkpoint and check that it belongs to this run; returns the checked payload.

    Refused: an unreadable or tampered file (wrong layout, types, NaN state, an RNG state
    of the wrong size, a history that does not match the iteration count), a checkpoint
    of another format version, method, parameter set (``max_iter`` aside) or measurement.
    """
    from ..io.safe import FileFormatError, load_torch_file

    try:
        payload = load_torch_file(path, what="checkpoint")
    except FileFormatError as exc:
        raise CheckpointError(f"cannot resume: {exc}") from None

    def refuse(why: str) -> CheckpointError:
        return CheckpointError(f"cannot resume: checkpoint {path} {why}; remove it to start afresh")

    if not isinstance(payload, dict):
        raise refuse(f"holds a {type(payload).__name__}, not a checkpoint")
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise refuse(f"has format {payload.get('format')!r}, this version writes and reads {CHECKPOINT_FORMAT}")
    expected = {"format": int, "method": str, "params": str, "measurement": str, "solver": dict, "history": str,
                "elapsed": float, "torch_rng": torch.Tensor}
    for key, kind in expected.items():
        if not isinstance(payload.get(key), kind):
            raise refuse(f"has no valid {key!r} entry")
    if payload["method"] != method:
        raise refuse(f"was written by method {payload['method']!r}, not {method!r}")
    if payload["measurement"] != digest:
        raise refuse("was written for another measurement (its digest differs)")
    try:
        saved_params = json.loads(payload["params"])
        history = json.loads(payload["history"])
    except (ValueError, RecursionError):
        raise refuse("holds damaged parameters or history") from None
    # max_iter only bounds the loop, so a run may be resumed with another budget
    # (e.g. continue a finished run for more iterations).
    if not isinstance(saved_params, dict) or {k: v for k, v in saved_params.items() if k != "max_iter"} != {
        k: v for k, v in params.items() if k != "max_iter"
    }:
        raise refuse("was written by a run with other settings (parameters); use the same settings")
    iteration = payload["solver"].get("iteration")
    if not (isinstance(history, list) and all(isinstance(entry, dict) for entry in history)):
        raise refuse("holds a damaged history")
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration != len(history):
        raise refuse(f"records iteration {iteration!r} but a history of {len(history)} iterations")
    if not (math.isfinite(payload["elapsed"]) and payload["elapsed"] >= 0):
        raise refuse("records an impossible elapsed time")
    rng = payload["torch_rng"]
    reference_rng = torch.get_rng_state()
    if rng.dtype != reference_rng.dtype or rng.shape != reference_rng.shape:
        raise refuse("holds a damaged random-number state")
    _check_finite_state(path, payload["solver"])
    return {**payload, "history": history}


@contextlib.contextmanager
def _restored_state(checkpoint_path: Path | None):
    """Report a failure of the solver on a state just restored from ``checkpoint_path`` as a
    :class:`CheckpointError` (a state of the wrong shape or dtype fails in ``load_state_dict``
    or in the first step after it); without a restored state, errors pass unchanged."""
    try:
        yield
    except _STATE_ERRORS as exc:
        if checkpoint_path is None:
            raise
        raise CheckpointError(
            f"cannot resume: the solver state in {checkpoint_path} does not fit this run ({first_line(exc)}); "
            "remove it to start afresh"
        ) from None


def _checked_estimate(solver: Solver, expected_shape: tuple[int, ...], resumed_from: Path | None) -> np.ndarray:
    """The solver's estimate, refused when it is not a float32 (or complex64) (P, N, N) array."""
    with _restored_state(resumed_from):
        estimate = solver.estimate()
        if estimate.shape != expected_shape or estimate.dtype not in (np.float32, np.complex64):
            raise ValueError(
                f"the estimate is {estimate.dtype} of shape {estimate.shape}, expected float32 or complex64 "
                f"{expected_shape}"
            )
    return estimate


def _parameters_set(solver_cls: type[Solver], params: dict[str, Any]) -> str:
    """``name=value`` of the parameters that differ from the method's defaults (but the
    iteration budget and the seed, which cannot make a run diverge)."""
    defaults = dataclasses.asdict(solver_cls.Params())
    changed = [
        f"{name}={value!r}"
        for name, value in params.items()
        if defaults.get(name) != value and name not in ("max_iter", "seed")
    ]
    return ", ".join(changed)


def _check_finite(entry: dict[str, float], estimate: np.ndarray | None, iteration: int,
                  solver_cls: type[Solver], params: dict[str, Any]) -> None:
    """Raise :class:`DivergedError` when a log entry or the estimate is NaN or infinite."""
    bad = [f"{name}={value:g}" for name, value in entry.items() if not math.isfinite(value)]
    if estimate is not None and not np.all(np.isfinite(estimate)):
        bad.append("the estimate")
    if bad:
        changed = _parameters_set(solver_cls, params)
        suspects = f"check the parameters set for this run: {changed}" if changed else "all parameters at defaults"
        raise DivergedError(
            f"{solver_cls.name} diverged at iteration {iteration} ({', '.join(bad)} not finite); {suspects}"
        )


def _check_settings(checkpoint_every, metrics_every) -> None:
    for name, value in (("checkpoint_every", checkpoint_every), ("metrics_every", metrics_every)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"{name} must be an integer >= 1, got {value!r}")


def _check_memory(measurements: Measurements, solver_cls: type[Solver], solver_params, device: torch.device) -> None:
    """Refuse a run whose estimated peak memory exceeds what the machine has free, before allocating."""
    from .._limits import ResourceLimitError, check_memory, format_size

    need = solver_cls.estimate_bytes(measurements, solver_params)
    what = f"{solver_cls.name} on {measurements.n_frames} frames of {'x'.join(map(str, measurements.slice_shape))}"
    hint = "use fewer frames, a smaller image_shape or a cheaper method"
    if measurements.modality == "tomography" and device.type != "cuda":
        hint += _largest_fitting_hint(measurements, solver_cls, solver_params)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if need > free:
            raise ResourceLimitError(
                f"{what} needs about {format_size(need)} of GPU memory but {format_size(free)} is free; {hint}"
            )
        return
    check_memory(need, what, hint=hint)


def _largest_fitting_hint(measurements: Measurements, solver_cls: type[Solver], solver_params) -> str:
    """``" (at most N = ... fits ...)"``: the largest image size of this acquisition that
    the available memory holds, by the memory model; empty when the run fits."""
    from .._limits import available_memory
    from ..solvers.memory import largest_fitting_size

    available = available_memory()
    if solver_cls.estimate_bytes(measurements, solver_params) <= available:
        return ""
    largest = largest_fitting_size(
        solver_cls,
        available,
        frames=measurements.n_frames,
        views=measurements.sinogram.shape[1],
        detectors=measurements.sinogram.shape[2],
        params=solver_params,
        ground_truth=measurements.ground_truth is not None,
        process_bytes=0,
    )
    if largest is None:
        return f" (no image size fits with {measurements.n_frames} frames)"
    return f" (the largest image size that fits with {measurements.n_frames} frames: {largest}x{largest})"


def iterate(
    measurements: Measurements,
    method: str = "red-psm",
    *,
    device: str = "cpu",
    preset: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 10,
    resume: bool = False,
    metrics_every: int = 10,
    slices: Sequence[int] | None = None,
    threads: int | None = None,
    coil_estimator: str = "auto",
    ground_truth: np.ndarray | StoredFrames | None = None,
    **params,
) -> Generator[IterationInfo, Any, ReconstructionResult]:
    """Run a reconstruction step by step, of one slice or of a volume.

    Yields an :class:`IterationInfo` after every outer iteration; sending a true value
    (or the caller closing the generator) stops it. Returns the
    :class:`ReconstructionResult`.

    A volume (``measurements.is_volume``) is reconstructed slice by slice, each slice an
    independent 2D problem with the same method, parameters and seed (exact for
    parallel beam), so slice z of the result equals a single-slice run on
    ``measurements.slice(z)``. A stop request ends the running slice and skips the
    remaining ones (their images stay zero).

    Parameters
    ----------
    measurements : Measurements
        One slice (result (P, N, N)) or a volume (result (P, Z, N, N)).
    method : str
        A key of :data:`imaging.solvers.METHODS`.
    device : {"cpu", "cuda", "auto"}
    preset : str, optional
        A named set of parameters of the method (e.g. "fast", "paper").
    checkpoint : path, optional
        Where to save the solver state every ``checkpoint_every`` iterations; slice z of
        a volume checkpoints to :func:`imaging.run.volumes.slice_checkpoint`
        ``(checkpoint, z)``.
    resume : bool
        Continue from ``checkpoint`` if it exists (same method and parameters required);
        a volume's finished slices are then not recomputed.
    metrics_every : int
        With a ground truth, the sampled-frame SSIM is logged every this many iterations
        and at the last one (PSNR every iteration, but on the coarser grids of a
        coarse-to-fine start, :attr:`~imaging.solvers.Solver.estimate_is_interpolated`,
        only with the SSIM); see :class:`ReferenceScorer`.
    slices : sequence of int, optional
        Reconstruct only these slices of a volume (in this order); the result then holds
        ``len(slices)`` slices. Default: all.
    threads : int, optional
        CPU threads of the run (PyTorch and the tomography pool together; see
        :mod:`imaging.run.threads`). Default: the cores idle when the run starts,
        then the cores other processes leave, re-checked between iterations.
    coil_estimator : {"auto", "espirit", "lowres"}
        Multi-coil MRI without ``coil_maps``: how each slice's maps are estimated from
        its data (:meth:`Measurements.estimate_coil_maps`, counted in the run's time).
        The result's ``extras`` then hold ``coil_maps`` (C, H, W) (volume: (Z, C, H, W))
        and ``coil_maps_estimator``, the estimator used; reuse the maps by setting them
        as the measurements' ``coil_maps``.
    ground_truth : numpy.ndarray or imaging.io.StoredFrames, optional
        Score against this (P, N, N) (volume: (P, Z, N, N)) reference instead of
        ``measurements.ground_truth``; a :class:`~imaging.io.StoredFrames` from
        :func:`imaging.io.open_ground_truth` stays in its file and is read a block of
        frames at a time, so it adds no stack to the run's memory. Like the
        measurements' own, it only scores.
    **params
        The method's parameters (see ``get_solver(method).describe_params()``).
    """
    from ..operators import resolve_device

    solver_cls = get_solver(method)
    solver_params = solver_cls.make_params(preset, **params)
    _check_settings(checkpoint_every, metrics_every)
    device = str(resolve_device(device))
    budget = ThreadBudget(threads)
    if coil_estimator not in COIL_ESTIMATORS:
        raise ParameterError(f"unknown coil_estimator {coil_estimator!r}; choose one of: {', '.join(COIL_ESTIMATORS)}")
    if ground_truth is None:
        ground_truth = measurements.ground_truth
    elif tuple(ground_truth.shape) != (measurements.n_frames, *measurements.image_shape):
        raise MeasurementError(
            f"ground_truth must have shape {(measurements.n_frames, *measurements.image_shape)} (the measurements' "
            f"frames and image shape), got {tuple(ground_truth.shape)}"
        )
    with thread_budget(budget.threads):
        return (yield from _iterate(measurements, method, solver_cls, solver_params, checkpoint, slices, device=device,
                                    checkpoint_every=checkpoint_every, resume=resume, metrics_every=metrics_every,
                                    coil_estimator=coil_estimator, reference=ground_truth, budget=budget))


def _iterate(measurements, method, solver_cls, solver_params, checkpoint, slices, *, device, checkpoint_every, resume,
             metrics_every, coil_estimator, reference, budget):
    """:func:`iterate` once its arguments are checked: one slice, or the chosen slices of a volume."""
    settings = dict(
        device=device, checkpoint_every=checkpoint_every, resume=resume, metrics_every=metrics_every,
        coil_estimator=coil_estimator, budget=budget,
    )
    if not measurements.is_volume:
        if slices is not None and list(slices) != [0]:
            raise MeasurementError(f"these measurements are a single slice; slices={list(slices)!r} does not apply")
        path = Path(checkpoint) if checkpoint is not None else None
        return (yield from _iterate_slice(measurements, method, solver_cls, solver_params, path, reference=reference,
                                          **settings))
    chosen = list(range(measurements.n_slices)) if slices is None else [int(z) for z in slices]
    if not chosen or any(not 0 <= z < measurements.n_slices for z in chosen):
        raise MeasurementError(f"slices must be indices in [0, {measurements.n_slices}), got {chosen!r}")
    results: list[ReconstructionResult] = []
    for z in chosen:
        path = slice_checkpoint(checkpoint, z) if checkpoint is not None else None
        slice_reference = None if reference is None else volume_slice(reference, z)
        run = _iterate_slice(measurements.slice(z), method, solver_cls, solver_params, path, reference=slice_reference,
                             **settings)
        stop = None
        try:
            while True:
                info = run.send(stop)
                stop = yield dataclasses.replace(info, slice_index=z, n_slices=measurements.n_slices)
        except StopIteration as finished:
            results.append(finished.value)
        if results[-1].stop_reason == "stopped":
            break
    return assemble_volume(results, len(chosen))


def _iterate_slice(
    measurements: Measurements,
    method: str,
    solver_cls: type[Solver],
    solver_params,
    checkpoint_path: Path | None,
    *,
    device: str,
    checkpoint_every: int,
    resume: bool,
    metrics_every: int,
    coil_estimator: str,
    reference: np.ndarray | StoredFrames | None,
    budget: ThreadBudget,
) -> Generator[IterationInfo, Any, ReconstructionResult]:
    """The loop of :func:`iterate` on one 2D slice, scored against ``reference`` (P, N, N)."""
    params_dict = dataclasses.asdict(solver_params)
    _check_memory(measurements, solver_cls, solver_params, torch.device(device))
    torch.manual_seed(solver_params.seed)
    np.random.seed(solver_params.seed % (2**32))
    start = time.perf_counter()
    coil_extras: dict[str, np.ndarray] = {}
    if measurements.needs_coil_maps:
        maps, used = measurements.estimate_coil_maps(coil_estimator)
        measurements = dataclasses.replace(measurements, coil_maps=maps)
        coil_extras = {"coil_maps": maps, "coil_maps_estimator": np.array(used, dtype=np.str_)}
    solver = solver_cls(measurements, solver_params, device=device)
    history: list[dict[str, Any]] = []
    elapsed_before = 0.0
    digest = measurement_digest(measurements) if checkpoint_path is not None else ""
    resumed_from = None
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        payload = _load_checkpoint(checkpoint_path, method, params_dict, digest)
        with _restored_state(checkpoint_path):
            solver.load_state_dict(payload["solver"])
            torch.set_rng_state(payload["torch_rng"])
        history = payload["history"]
        elapsed_before = payload["elapsed"]
        resumed_from = checkpoint_path
        start = time.perf_counter()
    scorer = ReferenceScorer(reference) if reference is not None else None
    expected_shape = (measurements.n_frames, *measurements.slice_shape)
    stop_reason = "max_iter"

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    while solver.iteration < solver.max_iter:
        with _restored_state(resumed_from):
            entry = {k: float(v) for k, v in solver.step().items()}
        solver.iteration += 1
        budget.update()
        entry = {"iteration": solver.iteration, **entry, "elapsed_seconds": elapsed()}
        finished = solver.converged() or solver.iteration >= solver.max_iter
        save = checkpoint_path is not None and (solver.iteration % checkpoint_every == 0 or finished)
        # The estimate is checked whenever it is computed anyway: for the metrics, before a
        # checkpoint is written and at the end; the log entries every iteration.
        metrics_due = finished or solver.iteration % metrics_every == 0
        # Scoring the full-size estimate takes about 0.4 s at N = 512, P = 256, where an
        # iteration on a coarse-to-fine start's 128 grid takes 1.3 s: scored every
        # metrics_every iterations there, every iteration on the data's grid.
        score = scorer is not None and (metrics_due or not solver.estimate_is_interpolated)
        needed = score or save or finished
        estimate = _checked_estimate(solver, expected_shape, resumed_from) if needed else None
        _check_finite(entry, estimate, solver.iteration, solver_cls, params_dict)
        resumed_from = None
        if score:
            entry.update(scorer.score(magnitude_image(estimate), with_ssim=metrics_due))
        history.append(entry)
        if save:
            _save_checkpoint(
                checkpoint_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "method": method,
                    "params": json.dumps(params_dict, sort_keys=True),
                    "measurement": digest,
                    "solver": solver.state_dict(),
                    "history": json.dumps(history),
                    "elapsed": elapsed(),
                    "torch_rng": torch.get_rng_state(),
                },
            )
        # Not held through the next step, whose peak it would raise by a (P, N, N) stack: a
        # ground truth in the file cost +16 % peak memory instead of +4 % (N = 256, P = 256,
        # red-psm fast, benchmarks/scale.py). A callback computes its own estimate.
        estimate = None
        stop_requested = yield IterationInfo(solver.iteration, solver.max_iter, entry, solver)
        if stop_requested:
            stop_reason = "stopped"
            break
        if solver.converged():
            stop_reason = "converged"
            break
    reconstruction = _checked_estimate(solver, expected_shape, resumed_from)
    _check_finite({}, reconstruction, solver.iteration, solver_cls, params_dict)
    return ReconstructionResult(
        reconstruction=reconstruction,
        method=method,
        params=params_dict,
        history=history,
        elapsed_seconds=elapsed(),
        stop_reason=stop_reason,
        extras={**solver.extras(), **coil_extras},
    )


def reconstruct(
    measurements: Measurements,
    method: str = "red-psm",
    callback: Callable[[IterationInfo], Any] | None = None,
    **kwargs,
) -> ReconstructionResult:
    """Reconstruct ``measurements`` (one slice or a volume) with ``method``.

    ``callback(info)`` is called after every outer iteration with an
    :class:`IterationInfo`; returning ``False`` or raising ``StopIteration`` stops the
    run, which then returns the current estimate. Other keyword arguments are those of
    :func:`iterate` and the method's parameters.

    Returns
    -------
    ReconstructionResult
        ``reconstruction`` float32 (P, N, N), or (P, Z, N, N) for a volume.
    """
    run = iterate(measurements, method, **kwargs)
    stop = None
    try:
        while True:
            info = run.send(stop)
            stop = None
            if callback is not None:
                try:
                    stop = callback(info) is False
                except StopIteration:
                    stop = True
    except StopIteration as finished:
        return finished.value
