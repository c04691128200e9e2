"""What the widgets compute, without Qt: simulation, parameter handling, the
reconstruction job with previews, and comparison tables.

Every function here is usable from a script or a test without a display; the widgets in
:mod:`._widgets` only gather inputs, call these and show the outputs.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Generator, Mapping
from typing import Any

import numpy as np

from imaging.results import magnitude_image

MODALITIES = ("tomography", "mri")


class InputError(ValueError):
    """A widget input that cannot be used; its message is shown to the user as is."""


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
    # A volume of one slice is still a volume (imaging.volumes accepts Z = 1).
    if images.shape[0] < 2 or min(images.shape[-2:]) < 2:
        raise InputError(f"{name} has shape {images.shape}; at least 2 frames of 2x2 pixels are needed")
    return images.astype(np.float32, copy=False)


def simulate_from_image(
    images,
    modality: str = "tomography",
    schedule: str = "bit-reversal",
    per_frame: int = 1,
    noise: float = 5e-3,
    seed: int = 0,
    coils: int = 1,
    center_lines: int = 4,
):
    """Simulate an acquisition of an image stack (the "Simulate acquisition" widget).

    Parameters
    ----------
    images : array_like, shape (P, N, N) or (P, Z, N, N)
        The object, frames first (square frames for tomography). Kept as ground truth.
        A (P, Z, N, N) volume is measured slice by slice with the same schedule
        (:mod:`imaging.volumes`).
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

    Returns
    -------
    imaging.Measurements
        With ``ground_truth`` = the images (float32) and the absolute ``noise_std``.
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
    if modality == "tomography":
        if height != width:
            raise InputError(f"tomography needs square frames, the image has {height}x{width} pixels")
        angles = schedules.view_angles(schedule, frames, views_per_frame=per_frame, seed=seed)
        simulate_tomography = simulate.simulate_volume_tomography if is_volume else simulate.simulate_tomography
        return simulate_tomography(images, angles, noise=noise, seed=seed)
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
    so the GUI thread never touches the solver while it runs.
    """

    iteration: int
    max_iter: int
    entry: dict[str, float]
    preview: np.ndarray | None
    slice_index: int = 0
    n_slices: int = 1


def reconstruction_job(
    measurements,
    method: str,
    *,
    device: str = "cpu",
    preset: str | None = None,
    params: Mapping[str, Any] | None = None,
    preview_every: int = 5,
) -> Generator[Progress, Any, Any]:
    """Run :func:`imaging.solvers.iterate` and yield :class:`Progress` for a GUI.

    A volume (``measurements.is_volume``) is reconstructed slice by slice, as
    :func:`imaging.volumes.reconstruct_volume` does: each slice runs ``iterate`` on
    ``measurements.slice(z)`` with the same method and parameters, and the slice results
    are stacked by :func:`imaging.volumes.assemble_volume`, so slice z of the result
    equals a single-slice run on ``measurements.slice(z)``.

    Sending a true value into the generator asks the solver to stop after the current
    outer iteration; the generator then returns the result with the last estimate (for
    a volume: the finished slices, the interrupted slice's last estimate, zeros for the
    slices not run, and "stopped" in ``stop_reason``).

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
    from imaging.run import iterate
    from imaging.run import assemble_volume

    n_slices = measurements.n_slices
    # A volume's finished slices (zeros for the others), from which each preview is copied.
    volume = None
    if measurements.is_volume:
        volume = np.zeros((measurements.n_frames, *measurements.image_shape), np.float32)
    results = []
    for z in range(n_slices):
        run = iterate(measurements.slice(z), method, device=device, preset=preset, **dict(params or {}))
        stop = None
        try:
            while True:
                info = run.send(stop)
                wants_preview = info.iteration % max(1, int(preview_every)) == 0 or (info.iteration == 1 and z > 0)
                # No preview where the result follows at once: the last iteration of the last slice.
                result_follows = info.iteration >= info.max_iter and z == n_slices - 1
                # Complex images (MRI) preview as their magnitude.
                preview = magnitude_image(info.estimate()) if wants_preview and not result_follows else None
                if preview is not None and volume is not None:
                    estimate, preview = preview, volume.copy()
                    preview[:, z] = estimate
                progress = Progress(info.iteration, info.max_iter, dict(info.entry), preview, z, n_slices)
                stop = bool((yield progress)) or None
        except StopIteration as finished:
            result = finished.value
        if volume is None:
            return result
        results.append(result)
        volume[:, z] = result.reconstruction
        if result.stop_reason == "stopped":
            break
    return assemble_volume(results, n_slices)


def describe_error(exc: BaseException) -> str:
    """A one-line, non-technical explanation of why a job failed."""
    import torch

    from imaging import MeasurementError, ParameterError

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return (
            "Reconstruction ran out of memory: try fewer frames, a smaller image, a lighter "
            "preset or the other device."
        )
    if isinstance(exc, (ParameterError, MeasurementError, InputError)):
        return str(exc)
    return f"Reconstruction failed: {exc}" if str(exc) else f"Reconstruction failed ({type(exc).__name__})"


def progress_text(progress: Progress) -> str:
    """e.g. ``"iteration 12 / 200 - residual 3.1e-02 - PSNR 27.4 dB"``.

    For a volume the slice comes first, counted from 1 (it is at z = 2 on napari's
    z slider), e.g. ``"slice 3 / 8 - iteration 12 / 200 - residual 3.1e-02"``.
    """
    parts = [f"slice {progress.slice_index + 1} / {progress.n_slices}"] if progress.n_slices > 1 else []
    parts.append(f"iteration {progress.iteration} / {progress.max_iter}")
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
    :func:`imaging.volumes.evaluate_volume`; a volume's per-frame PSNR is that of each
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
