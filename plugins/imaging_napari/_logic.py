"""What the widgets compute, without Qt: simulation, parameter handling, the
reconstruction job with previews, and comparison tables.

Every function here is usable from a script or a test without a display; the widgets in
:mod:`._qt` only gather inputs, call these and show the outputs.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import os
from collections.abc import Callable, Generator, Mapping
from typing import Any

import numpy as np

from imaging.results import magnitude_image

MODALITIES = ("tomography", "mri")


class InputError(ValueError):
    """A widget input that cannot be used; its message is shown to the user as is."""


_preloaded: set[str] = set()


def preload(*modules: str) -> None:
    """Import ``modules`` in a background thread, once per session.

    A widget calls this when it opens, for what its jobs will need (the library, torch,
    matplotlib): a first import holds Python's GIL for up to a second (C extensions, the
    font cache), which would stall the GUI thread in the middle of the user's first
    run; when the dock opens the user is not yet waiting for anything.
    """
    import importlib
    import threading

    missing = [name for name in modules if name not in _preloaded]
    _preloaded.update(missing)
    if missing:
        threading.Thread(target=lambda: [importlib.import_module(name) for name in missing], daemon=True).start()


# -- simulation -----------------------------------------------------------------------


def acquisition_schedules(modality: str) -> tuple[str, ...]:
    """View-angle schedules (tomography) or k-t mask patterns (MRI) of ``modality``."""
    from imaging import schedules

    if modality == "tomography":
        return tuple(schedules.SCHEDULES)
    if modality == "mri":
        return tuple(schedules.MASK_PATTERNS)
    raise InputError(f"modality must be one of {MODALITIES}, got {modality!r}")


def as_image_stack(data, name: str = "the image layer", volumes: bool = False) -> np.ndarray:
    """A layer's data as a float32 (T, Y, X) stack (or (T, Z, Y, X) volume), or :class:`InputError`.

    Parameters
    ----------
    data : array_like
        Layer data; must be 3D (time, y, x), or 4D (time, z, y, x) when ``volumes``,
        and real.
    name : str
        Used in the error message.
    volumes : bool
        Also accept a (T, Z, Y, X) time-varying volume.
    """
    images = np.asarray(data)
    if images.ndim != 3 and not (volumes and images.ndim == 4):
        wanted = "a (T, Y, X) stack of frames or a (T, Z, Y, X) volume" if volumes else "a (T, Y, X) stack of frames"
        raise InputError(f"{name} has shape {images.shape}; {wanted} is needed")
    if images.dtype.kind not in "biuf":
        raise InputError(f"{name} has dtype {images.dtype}; a real-valued image is needed")
    # A volume of one slice is still a volume (the library accepts Z = 1).
    if images.shape[0] < 2 or min(images.shape[-2:]) < 2:
        raise InputError(f"{name} has shape {images.shape}; at least 2 frames of 2x2 pixels are needed")
    return images.astype(np.float32, copy=False)


def max_per_frame(modality: str, image_shape: tuple[int, ...]) -> int:
    """The most views (tomography) or k-space lines (MRI) per frame worth simulating.

    Tomography: ``ceil(pi N / 2)`` views sample one N x N frame fully over 180 degrees
    (more add no information, only time: the simulation projects every frame at every
    view of the schedule). MRI: the H rows of k-space.
    """
    height, width = image_shape[-2:]
    if modality == "tomography":
        return math.ceil(math.pi * max(height, width) / 2)
    return int(height)


def available_memory() -> int | None:
    """Bytes of memory the system can still give (``None`` where it cannot be asked)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def simulation_bytes(image_shape: tuple[int, ...], modality: str, per_frame: int, coils: int = 1) -> int:
    """A generous estimate of the memory a simulation of a (P, [Z,] H, W) object needs.

    Tomography: the object, the sinogram (P, V, Z, D) and one chunk of projections of
    every frame (:mod:`imaging.simulate` builds a few million matrix entries at a time).
    MRI: the object and complex k-space (P, Z, C, H, W) with the intermediate
    coil images of the forward transform.
    """
    from imaging.simulate import _MATRIX_ENTRIES_PER_CHUNK as chunk_entries

    frames, *middle, height, width = image_shape
    slices = middle[0] if middle else 1
    images = frames * slices * height * width * 4
    if modality == "tomography":
        sinogram = frames * per_frame * slices * width * 4
        chunk = max(1, chunk_entries // (2 * height * width)) * width * frames * slices * 4 + chunk_entries * 16
        return 3 * images + 2 * sinogram + chunk
    kspace = frames * slices * coils * height * width * 8
    return 3 * images + 4 * kspace


def simulate_from_image(
    images,
    modality: str = "tomography",
    schedule: str = "bit-reversal",
    per_frame: int = 1,
    noise: float = 5e-3,
    seed: int = 0,
    coils: int = 1,
    center_lines: int = 4,
    progress: Callable[[int, int], None] | None = None,
):
    """Simulate an acquisition of an image stack (the "Simulate acquisition" widget).

    Parameters
    ----------
    images : array_like, shape (P, N, N) or (P, Z, N, N)
        The object, frames first (square frames for tomography). Kept as ground truth.
        A (P, Z, N, N) volume is measured slice by slice with the same schedule
        (:func:`imaging.simulate.simulate_volume_tomography`, :func:`imaging.simulate.simulate_volume_mri`).
    modality : {"tomography", "mri"}
    schedule : str
        Tomography: a view-angle schedule of :data:`imaging.schedules.SCHEDULES`; MRI: a
        k-t mask pattern of :data:`imaging.schedules.MASK_PATTERNS`.
    per_frame : int
        Views per frame (tomography) or phase-encode lines per frame (MRI).
    noise : float
        Relative noise level (std as a fraction of the peak of the full data).
    seed : int
        Seeds the random schedule or mask and the noise.
    coils : int
        MRI only: number of synthetic receive coils.
    center_lines : int
        MRI only: k-space rows around the centre sampled in every frame.
    progress : callable, optional
        Tomography: ``progress(done, total)`` as the view angles are projected (see
        :func:`imaging.simulate.simulate_tomography`); an exception it raises stops the
        simulation.

    Returns
    -------
    imaging.Measurements
        With ``ground_truth`` = the images (float32) and the absolute ``noise_std``.

    Raises
    ------
    InputError
        For impossible inputs, more views or lines per frame than :func:`max_per_frame`,
        or a simulation that would need more memory than the machine has free.
    """
    from imaging import schedules, simulate

    images = as_image_stack(images, volumes=True)
    if schedule not in acquisition_schedules(modality):
        raise InputError(
            f"schedule {schedule!r} is not one of {modality}'s: {', '.join(acquisition_schedules(modality))}"
        )
    frames, (height, width) = images.shape[0], images.shape[-2:]
    is_volume = images.ndim == 4
    if per_frame < 1:
        raise InputError(f"views or lines per frame must be >= 1, got {per_frame}")
    most = max_per_frame(modality, images.shape)
    if modality == "tomography" and per_frame > most:
        raise InputError(
            f"{per_frame} views per frame exceed the {most} that sample a {height}x{width} frame fully; "
            "more add time, not information"
        )
    needed, free = simulation_bytes(images.shape, modality, per_frame, coils), available_memory()
    if free is not None and needed > free:
        raise InputError(
            f"this simulation needs about {needed / 2**30:.1f} GiB of memory and {free / 2**30:.1f} GiB are free: "
            "use fewer frames, views or coils, or a smaller image"
        )
    if modality == "tomography":
        if height != width:
            raise InputError(f"tomography needs square frames, the image has {height}x{width} pixels")
        angles = schedules.view_angles(schedule, frames, views_per_frame=per_frame, seed=seed)
        simulate_tomography = simulate.simulate_volume_tomography if is_volume else simulate.simulate_tomography
        return simulate_tomography(images, angles, noise=noise, seed=seed, progress=progress)
    if per_frame > height:
        raise InputError(f"{per_frame} lines per frame exceed the {height} k-space rows")
    mask = schedules.kt_mask(
        schedule, frames, (height, width), per_frame, center_lines=min(center_lines, per_frame), seed=seed
    )
    coil_maps = simulate.synthetic_coil_maps(int(coils), (height, width)) if coils > 1 else None
    simulate_mri = simulate.simulate_volume_mri if is_volume else simulate.simulate_mri
    return simulate_mri(images, mask, coil_maps=coil_maps, noise=noise, seed=seed)


def measurement_layer_name(source_name: str, modality: str, schedule: str, per_frame: int) -> str:
    """e.g. ``"walnut sinogram (bit-reversal, 1 view/frame)"``."""
    if modality == "tomography":
        return f"{source_name} sinogram ({schedule}, {per_frame} view{'s' if per_frame > 1 else ''}/frame)"
    return f"{source_name} k-space ({schedule}, {per_frame} lines/frame)"


# -- methods and parameters -----------------------------------------------------------


def available_methods(modality: str | None = None) -> list[str]:
    """Names of the registered reconstruction methods (those handling ``modality``, if given)."""
    from imaging.solvers import METHODS

    return [name for name, cls in METHODS.items() if modality is None or modality in cls.modalities]


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when PyTorch sees a GPU."""
    import torch

    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def method_presets(method: str) -> list[str]:
    """Preset names of ``method`` (e.g. ``["fast", "paper"]``), in declaration order."""
    from imaging.solvers import get_solver

    return list(get_solver(method).presets)


def baseline_params(method: str, preset: str | None = None) -> dict[str, Any]:
    """The method's parameter values with ``preset`` applied: what the widget starts from."""
    from imaging.solvers import get_solver

    solver_cls = get_solver(method)
    values = {spec["name"]: spec["default"] for spec in solver_cls.describe_params()}
    if preset:
        values.update(solver_cls.presets[preset])
    return values


def parse_parameter(name: str, default: Any, raw: Any) -> Any:
    """Convert a widget value to the type of the parameter's default.

    Parameters
    ----------
    name : str
        Parameter name (for the error message).
    default : Any
        The declared default; its type decides the conversion (bool, int, float, str,
        or any other literal read with :func:`ast.literal_eval`).
    raw : Any
        The widget's value: already typed (check boxes, spin boxes) or text.

    Raises
    ------
    InputError
        With one line saying what was expected.
    """
    if not isinstance(raw, str) or isinstance(default, str):
        return raw
    text = raw.strip()
    try:
        if isinstance(default, bool):
            return {"true": True, "false": False}[text.lower()]
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        return None if text in ("", "None") else ast.literal_eval(text)
    except (KeyError, ValueError, SyntaxError):
        kind = type(default).__name__ if default is not None else "Python literal"
        raise InputError(f"parameter {name} must be a {kind}, got {raw!r}") from None


# -- the reconstruction job -------------------------------------------------------------


@dataclasses.dataclass
class Progress:
    """What a reconstruction job yields after each outer iteration (of each slice).

    ``preview`` is the current estimate, float32 (P, N, N), or for a volume (P, Z, N, N)
    holding the finished slices, the current estimate of slice ``slice_index`` and zeros
    for the slices to come; it is attached every ``preview_every`` iterations (and, for
    a volume, at the first iteration of every slice after the first, so that a finished
    slice shows at once) and is ``None`` otherwise. It is computed in the worker thread
    so the GUI thread never touches the solver while it runs. ``contrast_limits`` is the
    display window of the run's images, computed once in the worker (from the ground
    truth when the measurement has one, else from the first estimate).
    """

    iteration: int
    max_iter: int
    entry: dict[str, float]
    preview: np.ndarray | None
    slice_index: int = 0
    n_slices: int = 1
    contrast_limits: tuple[float, float] | None = None
    #: At most how long the run has left (:class:`imaging.run.RemainingTime`), None at first.
    seconds_left: float | None = None


def reconstruction_job(
    measurements,
    method: str,
    *,
    device: str = "cpu",
    preset: str | None = None,
    params: Mapping[str, Any] | None = None,
    preview_every: int = 5,
) -> Generator[Progress, Any, Any]:
    """Run :func:`imaging.run.iterate` and yield :class:`Progress` for a GUI.

    The runner reconstructs a volume (``measurements.is_volume``) slice by slice itself;
    this job only adds the previews: for a volume, the (P, Z, N, N) volume so far, whose
    finished slices are copied from each slice's last estimate when the next slice
    starts.

    Sending a true value into the generator asks the runner to stop after the current
    outer iteration; the generator then returns the runner's result with the last
    estimate (for a volume: the finished slices, the interrupted slice's last estimate,
    zeros for the slices not run, and "stopped" in ``stop_reason``).

    Parameters
    ----------
    measurements : imaging.Measurements
    method : str
        A key of :data:`imaging.solvers.METHODS`.
    device : str
        "cpu" or "cuda".
    preset : str, optional
        A preset of the method; ``params`` override it.
    params : mapping, optional
        The method's parameters.
    preview_every : int
        Attach a preview to every this many iterations' progress (not to the last one
        of the last slice: the result follows it) and, for a volume, to the first
        iteration of every slice after the first.

    Returns
    -------
    imaging.ReconstructionResult
        ``reconstruction`` (P, N, N), or (P, Z, N, N) for a volume; ``stop_reason``
        is (for a volume: contains) "stopped" when a stop was sent.
    """
    from imaging.run import RemainingTime, iterate

    from ._layers import robust_contrast_limits

    run = iterate(measurements, method, device=device, preset=preset, **dict(params or {}))
    remaining = RemainingTime()
    truth = measurements.ground_truth
    contrast_limits = robust_contrast_limits(truth) if truth is not None else None
    # A volume's finished slices (zeros for the others), from which each preview is copied.
    volume = None
    if measurements.is_volume:
        volume = np.zeros((measurements.n_frames, *measurements.image_shape), np.float32)
    previous = None
    stop = None
    try:
        while True:
            info = run.send(stop)
            z = info.slice_index
            if volume is not None and previous is not None and previous.slice_index != z:
                # The previous slice has finished: its solver still holds its last estimate.
                volume[:, previous.slice_index] = magnitude_image(previous.estimate())
            previous = info
            wants_preview = info.iteration % max(1, int(preview_every)) == 0 or (info.iteration == 1 and z > 0)
            # No preview where the result follows at once: the last iteration of the last slice.
            result_follows = info.iteration >= info.max_iter and z == info.n_slices - 1
            # Complex images (MRI) preview as their magnitude.
            preview = magnitude_image(info.estimate()) if wants_preview and not result_follows else None
            if contrast_limits is None:
                contrast_limits = robust_contrast_limits(info.estimate() if preview is None else preview)
            if preview is not None and volume is not None:
                estimate, preview = preview, volume.copy()
                preview[:, z] = estimate
            progress = Progress(
                info.iteration, info.max_iter, dict(info.entry), preview, z, info.n_slices, contrast_limits,
                remaining.update(info),
            )
            stop = bool((yield progress)) or None
    except StopIteration as finished:
        return finished.value


def psm_factors(result) -> tuple[np.ndarray, np.ndarray | None, str] | None:
    """The PSM factors of a result, to plot: temporal (P, K+1), spatial (K+1, N, N) or None, a title.

    A volume's result holds one set per slice, (Z, P, K+1) and (Z, K+1, N, N); slice 0's
    is returned and the title says so. ``None`` when the result has no temporal bases.
    """
    extras = result.extras or {}
    if "temporal_bases" not in extras:
        return None
    temporal, spatial = np.asarray(extras["temporal_bases"]), extras.get("spatial_bases")
    title = "PSM factors"
    if np.asarray(result.reconstruction).ndim == 4:
        temporal, spatial, title = temporal[0], None if spatial is None else spatial[0], f"{title}, slice z = 0"
    return temporal, None if spatial is None else np.asarray(spatial), title


def describe_error(exc: BaseException, task: str = "Reconstruction") -> str:
    """A one-line, non-technical explanation of why a job (a ``task``) failed."""
    import torch

    from imaging import MeasurementError, ParameterError

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return (
            f"{task} ran out of memory: try fewer frames, a smaller image, a lighter "
            "preset or the other device."
        )
    if isinstance(exc, (ParameterError, MeasurementError, InputError)):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{task} failed: {text}" if text else f"{task} failed ({type(exc).__name__})"


def progress_text(progress: Progress) -> str:
    """e.g. ``"iteration 12 / 200 - at most 1 min 05 s left - residual 3.1e-02 - PSNR 27.4 dB"``.

    For a volume the slice comes first, counted from 1 (it is at z = 2 on napari's
    z slider), e.g. ``"slice 3 / 8 - iteration 12 / 200 - residual 3.1e-02"``; a run that
    starts on coarser grids names the grid, e.g. ``"iteration 4 / 80 - grid 128 px - ..."``.
    The time left shows once it is known (after a slice's second iteration).
    """
    from imaging.run.progress import format_seconds

    parts = [f"slice {progress.slice_index + 1} / {progress.n_slices}"] if progress.n_slices > 1 else []
    parts.append(f"iteration {progress.iteration} / {progress.max_iter}")
    if progress.seconds_left is not None:
        parts.append(f"at most {format_seconds(progress.seconds_left)} left")
    if "grid_size" in progress.entry:  # red-psm's coarse-to-fine start: cheap iterations first
        parts.append(f"grid {int(progress.entry['grid_size'])} px")
    if "data_residual" in progress.entry:
        parts.append(f"residual {progress.entry['data_residual']:.2e}")
    if "psnr" in progress.entry:
        parts.append(f"PSNR {progress.entry['psnr']:.2f} dB")
    return " - ".join(parts)


# -- comparison -------------------------------------------------------------------------

#: Keys of :func:`imaging.metrics.evaluate` in the comparison table: volume PSNR (dB),
#: mean per-frame PSNR (dB), SSIM, mean absolute error, high-frequency error norm.
METRICS = ("psnr", "psnr_frame_mean", "ssim", "mae", "hfen")


def compare(reference, candidates: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Score reconstructions against a reference.

    Frame stacks are scored by :func:`imaging.metrics.evaluate`, time-varying volumes by
    :func:`imaging.metrics.evaluate_volume`; a volume's per-frame PSNR is that of each
    time frame's whole (Z, N, N) volume, as in its ``psnr_frame_mean``.

    Parameters
    ----------
    reference : array_like, shape (P, N, N) or (P, Z, N, N)
    candidates : mapping
        Layer name -> array of the reference's shape.

    Returns
    -------
    rows : list of dict
        One per candidate: ``"name"`` and the :data:`METRICS` keys (floats).
    frame_psnr : dict
        Name -> per-frame PSNR, float (P,).

    Raises
    ------
    InputError
        When the reference is not a stack or a volume, or a candidate's shape differs
        from the reference's (which includes a volume compared with a stack).
    """
    from imaging import metrics
    from imaging.metrics import evaluate_volume

    reference = as_image_stack(reference, "the reference", volumes=True)
    evaluate = evaluate_volume if reference.ndim == 4 else metrics.evaluate
    # PSNR is pointwise, so a (P, Z, N, N) volume's frames may be scored as P (Z*N, N)
    # images; the same reshape leaves a (P, N, N) stack as it is.
    frames_shape = (len(reference), -1, reference.shape[-1])
    rows, frame_psnr = [], {}
    for name, data in candidates.items():
        estimate = np.asarray(data, dtype=np.float32)
        if estimate.shape != reference.shape:
            raise InputError(f"{name!r} has shape {estimate.shape} but the reference has {reference.shape}")
        scores = evaluate(estimate, reference)
        rows.append({"name": name, **{key: float(scores[key]) for key in METRICS}})
        per_frame = metrics.psnr_frames(estimate.reshape(frames_shape), reference.reshape(frames_shape))
        frame_psnr[name] = np.asarray(per_frame, dtype=float)
    return rows, frame_psnr


def convergence_curves(history: list[dict[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-iteration curves of a run's history, for plotting.

    A volume's history holds the runs of all its slices, each entry tagged with its
    ``"slice"``; only slice 0's entries are kept, since every slice's iterations start
    again at 1 and the slices joined would not make one curve.

    Parameters
    ----------
    history : list of dict
        Per-iteration entries with ``"iteration"``, and ``"data_residual"``, ``"psnr"``
        and ``"slice"`` where known.

    Returns
    -------
    dict
        ``"data_residual"`` and, when the run knew a ground truth, ``"psnr"``:
        (iterations, values) float arrays; keys whose values are missing are left out.
    """
    first_slice = [entry for entry in history if entry.get("slice", 0) == 0]
    curves = {}
    for key in ("data_residual", "psnr"):
        points = [(entry["iteration"], entry[key]) for entry in first_slice if key in entry]
        if points:
            iterations, values = zip(*points)
            curves[key] = (np.asarray(iterations, dtype=float), np.asarray(values, dtype=float))
    return curves
