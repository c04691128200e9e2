"""The runner (SigPy's ``App``): loop, timing, callbacks, metrics, checkpoints.

:func:`iterate` is a generator that yields one :class:`IterationInfo` per outer
iteration and returns the :class:`ReconstructionResult`; napari's ``thread_worker``
runs it directly. :func:`reconstruct` drives the same generator with an optional
callback; the CLI and batch jobs call it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io.atomic import write_atomic
from ..measurements import MeasurementError, Measurements
from ..operators.coils import ESTIMATORS as COIL_ESTIMATORS
from ..results import ReconstructionResult
from ..solvers.base import ParameterError, Solver
from ..solvers.registry import get_solver
from .threads import choose_threads, thread_budget
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
    reference : numpy.ndarray
        float32 (P, N, N) ground truth.
    """

    def __init__(self, reference: np.ndarray):
        from .. import metrics

        self._metrics = metrics
        self.reference = reference
        # The range in double precision, as imaging.metrics computes it.
        self.data_range = float(reference.max()) - float(reference.min()) or float(np.max(np.abs(reference))) or 1.0
        frames = reference.shape[0]
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


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    write_atomic(path, lambda temporary: torch.save(payload, temporary), make_parents=True)


def _load_checkpoint(path: Path, method: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file
        raise ParameterError(f"cannot resume: {path} is not a readable checkpoint ({exc})") from None
    # max_iter only bounds the loop, so a run may be resumed with another budget
    # (e.g. continue a finished run for more iterations).
    saved = {k: v for k, v in json.loads(payload.get("params", "{}")).items() if k != "max_iter"}
    if payload.get("method") != method or saved != {k: v for k, v in params.items() if k != "max_iter"}:
        raise ParameterError(
            f"cannot resume: checkpoint {path} was written by a run with other settings "
            f"(method {payload.get('method')!r}); remove it or use the same settings"
        )
    return payload


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
        and at the last one (PSNR every iteration); see :class:`ReferenceScorer`.
    slices : sequence of int, optional
        Reconstruct only these slices of a volume (in this order); the result then holds
        ``len(slices)`` slices. Default: all.
    threads : int, optional
        CPU threads of the run (PyTorch and the tomography pool together; see
        :mod:`imaging.run.threads`). Default: the cores idle when the run starts.
    coil_estimator : {"auto", "espirit", "lowres"}
        Multi-coil MRI without ``coil_maps``: how each slice's maps are estimated from
        its data (:meth:`Measurements.estimate_coil_maps`, counted in the run's time).
        The result's ``extras`` then hold ``coil_maps`` (C, H, W) (volume: (Z, C, H, W))
        and ``coil_maps_estimator``, the estimator used; reuse the maps by setting them
        as the measurements' ``coil_maps``.
    **params
        The method's parameters (see ``get_solver(method).describe_params()``).
    """
    from ..operators import resolve_device

    solver_cls = get_solver(method)
    solver_params = solver_cls.make_params(preset, **params)
    device = str(resolve_device(device))
    budget = choose_threads(threads)
    if coil_estimator not in COIL_ESTIMATORS:
        raise ParameterError(f"unknown coil_estimator {coil_estimator!r}; choose one of: {', '.join(COIL_ESTIMATORS)}")
    with thread_budget(budget):
        return (yield from _iterate(measurements, method, solver_cls, solver_params, checkpoint, slices, device=device,
                                    checkpoint_every=checkpoint_every, resume=resume, metrics_every=metrics_every,
                                    coil_estimator=coil_estimator))


def _iterate(measurements, method, solver_cls, solver_params, checkpoint, slices, *, device, checkpoint_every, resume,
             metrics_every, coil_estimator):
    """:func:`iterate` once its arguments are checked: one slice, or the chosen slices of a volume."""
    settings = dict(
        device=device, checkpoint_every=checkpoint_every, resume=resume, metrics_every=metrics_every,
        coil_estimator=coil_estimator,
    )
    if not measurements.is_volume:
        if slices is not None and list(slices) != [0]:
            raise MeasurementError(f"these measurements are a single slice; slices={list(slices)!r} does not apply")
        path = Path(checkpoint) if checkpoint is not None else None
        return (yield from _iterate_slice(measurements, method, solver_cls, solver_params, path, **settings))
    chosen = list(range(measurements.n_slices)) if slices is None else [int(z) for z in slices]
    if not chosen or any(not 0 <= z < measurements.n_slices for z in chosen):
        raise MeasurementError(f"slices must be indices in [0, {measurements.n_slices}), got {chosen!r}")
    results: list[ReconstructionResult] = []
    for z in chosen:
        path = slice_checkpoint(checkpoint, z) if checkpoint is not None else None
        run = _iterate_slice(measurements.slice(z), method, solver_cls, solver_params, path, **settings)
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
) -> Generator[IterationInfo, Any, ReconstructionResult]:
    """The loop of :func:`iterate` on one 2D slice."""
    params_dict = dataclasses.asdict(solver_params)
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
    if resume and checkpoint_path is not None and checkpoint_path.exists():
        payload = _load_checkpoint(checkpoint_path, method, params_dict)
        solver.load_state_dict(payload["solver"])
        history = json.loads(payload["history"])
        elapsed_before = float(payload["elapsed"])
        torch.set_rng_state(payload["torch_rng"])
        start = time.perf_counter()
    scorer = ReferenceScorer(measurements.ground_truth) if measurements.ground_truth is not None else None
    stop_reason = "max_iter"

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - start

    while solver.iteration < solver_params.max_iter:
        entry = {k: float(v) for k, v in solver.step().items()}
        solver.iteration += 1
        entry = {"iteration": solver.iteration, **entry, "elapsed_seconds": elapsed()}
        finished = solver.converged() or solver.iteration >= solver_params.max_iter
        if scorer is not None:
            with_ssim = finished or solver.iteration % max(1, metrics_every) == 0
            entry.update(scorer.score(solver.estimate(), with_ssim))
        history.append(entry)
        if checkpoint_path is not None and (solver.iteration % max(1, checkpoint_every) == 0 or finished):
            _save_checkpoint(
                checkpoint_path,
                {
                    "method": method,
                    "params": json.dumps(params_dict, sort_keys=True),
                    "solver": solver.state_dict(),
                    "history": json.dumps(history),
                    "elapsed": elapsed(),
                    "torch_rng": torch.get_rng_state(),
                },
            )
        stop_requested = yield IterationInfo(solver.iteration, solver_params.max_iter, entry, solver)
        if stop_requested:
            stop_reason = "stopped"
            break
        if solver.converged():
            stop_reason = "converged"
            break
    return ReconstructionResult(
        reconstruction=solver.estimate(),
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
