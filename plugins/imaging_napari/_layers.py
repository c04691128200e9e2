"""Conversions between the library's objects and napari layer-data tuples (no Qt).

A layer-data tuple is ``(data, meta, "image")`` as napari readers, sample commands and
``viewer._add_layer_from_data`` take it. The library objects travel in the layer's
``metadata`` under the keys below, so that every widget, the writer and user scripts
(``viewer.layers[...].metadata[MEASUREMENTS_KEY]``) reach the full data, not only the
picture on screen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imaging.results import magnitude_image

#: Layer metadata key of the :class:`imaging.Measurements` behind a measurement layer.
MEASUREMENTS_KEY = "imaging_measurements"
#: Layer metadata key of the :class:`imaging.ReconstructionResult` behind a reconstruction layer.
RESULT_KEY = "imaging_result"

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]


def stack_axis_labels(ndim: int) -> tuple[str, ...]:
    """napari axis labels of an object layer: ``("t", "y", "x")`` or ``("t", "z", "y", "x")``.

    They name the sliders the user moves: "t" (time) and, for a volume, "z" (slice).

    Raises
    ------
    ValueError
        For a number of axes other than 3 or 4.
    """
    if ndim == 3:
        return ("t", "y", "x")
    if ndim == 4:
        return ("t", "z", "y", "x")
    raise ValueError(f"an image stack has 3 (T, Y, X) or 4 (T, Z, Y, X) axes, got {ndim}")


def measurement_image(measurements) -> np.ndarray:
    """The picture of a measurement shown in the viewer.

    Parameters
    ----------
    measurements : imaging.Measurements

    Returns
    -------
    numpy.ndarray
        Tomography: float32 (P, V*D), one row per frame holding its V projections side
        by side (the whole acquisition as one sinogram image); for a volume (Z, P, V*D),
        that image for every slice. MRI: float32 (P, H, W), or (P, Z, H, W) for a
        volume, ``log(1 + |k| / (1e-3 max|k|))`` of the root-sum-of-squares over coils,
        zero where k-space was not sampled.

    Notes
    -----
    napari aligns layers by their trailing axes, so in both layouts the slice axis of a
    volume's picture moves with the z slider of its (T, Z, Y, X) ground truth.
    """
    if measurements.modality == "tomography":
        sinogram = measurements.sinogram
        if measurements.is_volume:  # (P, V, Z, D) -> (Z, P, V, D)
            sinogram = sinogram.transpose(2, 0, 1, 3)
        return np.ascontiguousarray(sinogram.reshape(*sinogram.shape[:-2], -1), dtype=np.float32)
    # The coil axis is third from the end of (P, C, H, W) and (P, Z, C, H, W).
    magnitude = np.sqrt(np.sum(np.abs(measurements.kspace) ** 2, axis=-3))
    peak = float(magnitude.max())
    if peak == 0.0:
        return magnitude.astype(np.float32)
    return np.log1p(magnitude / (1e-3 * peak)).astype(np.float32)


def describe_measurements(measurements) -> str:
    """One line summarising an acquisition.

    e.g. ``"tomography: 64 frames x 1 view(s) x 128 bins"``; a volume adds its slices,
    ``"tomography: 64 frames x 1 view(s) x 128 bins, 8 slices"``.
    """
    slices = f", {measurements.n_slices} slices" if measurements.is_volume else ""
    frames = measurements.n_frames
    if measurements.modality == "tomography":
        views, bins = measurements.sinogram.shape[1], measurements.sinogram.shape[-1]
        return f"tomography: {frames} frames x {views} view(s) x {bins} bins{slices}"
    coils, height, width = measurements.kspace.shape[-3:]
    # Sampled rows per frame (and per slice when the mask is (P, Z, H, W)), averaged.
    lines = int(np.any(measurements.mask, axis=-1).sum(axis=-1).mean().round())
    return f"mri: {frames} frames x {coils} coil(s), {height}x{width} k-space, ~{lines} lines/frame{slices}"


def robust_contrast_limits(images: np.ndarray) -> tuple[float, float]:
    """Contrast limits from the 0.5 and 99.5 percentiles (a flat image gets a unit window)."""
    low, high = np.percentile(np.asarray(images, dtype=np.float32), [0.5, 99.5])
    if not high > low:
        high = low + 1.0
    return float(low), float(high)


def measurement_layer(measurements, name: str) -> LayerDataTuple:
    """Layer-data tuple of a measurement layer, the full measurement kept in its metadata.

    The layer sits to the right of the (N, N) object grid, so that an object, its
    measurement and its reconstruction can be seen side by side.

    Parameters
    ----------
    measurements : imaging.Measurements
    name : str
        Layer name.
    """
    image = measurement_image(measurements)
    low, high = float(image.min()), float(image.max())
    # Shown to the right of the object (same y, x offset by the object's width plus a
    # margin) rather than on top of it: the two live in different spaces.
    offset = 1.1 * measurements.image_shape[-1]
    if measurements.modality == "mri":
        axis_labels = stack_axis_labels(image.ndim)
    else:  # frames are the sinogram picture's rows, so time is not a slider
        axis_labels = ("z", "t", "detector") if measurements.is_volume else ("t", "detector")
    meta = {
        "name": name,
        "translate": (0.0,) * (image.ndim - 1) + (offset,),
        "axis_labels": axis_labels,
        "colormap": "gray" if measurements.modality == "tomography" else "magma",
        "contrast_limits": (low, high if high > low else low + 1.0),
        "metadata": {MEASUREMENTS_KEY: measurements, "description": describe_measurements(measurements)},
    }
    return image, meta, "image"


def image_layer(
    images: np.ndarray,
    name: str,
    contrast_limits: tuple[float, float] | None = None,
    metadata: dict[str, Any] | None = None,
) -> LayerDataTuple:
    """Layer-data tuple of a (T, Y, X) image stack or (T, Z, Y, X) volume shown in gray.

    Parameters
    ----------
    images : numpy.ndarray
        (T, Y, X) or (T, Z, Y, X) real array, shown as float32 with the axis labels of
        :func:`stack_axis_labels`.
    name : str
    contrast_limits : (float, float), optional
        Default: :func:`robust_contrast_limits`.
    metadata : dict, optional
        Stored as the layer's metadata.
    """
    images = np.asarray(images, dtype=np.float32)
    meta = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": contrast_limits or robust_contrast_limits(images),
        "axis_labels": stack_axis_labels(images.ndim),
        "metadata": dict(metadata or {}),
    }
    return images, meta, "image"


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def result_layer_name(result, baseline_params: dict[str, Any] | None = None, preset: str | None = None) -> str:
    """A layer name that says how a reconstruction was made.

    Parameters
    ----------
    result : imaging.ReconstructionResult
    baseline_params : dict, optional
        The parameters the user started from (method defaults with the preset applied);
        only parameters that differ from them are named. All parameters but ``max_iter``
        and ``seed`` are named when omitted.
    preset : str, optional
        The preset's name, shown after the method.

    Returns
    -------
    str
        e.g. ``"red-psm fast (lam=0.01) 40 it"`` or ``"psm (rank=8) stopped at 12 it"``;
        for a (P, Z, N, N) volume ``"psm 40 it, 8 slices"`` (the most iterations any
        slice ran) or ``"psm stopped at z=2 (12 it), 8 slices"``.
    """
    parts = [result.method]
    if preset:
        parts.append(preset)
    skipped = {"max_iter", "seed"}
    changed = [
        f"{key}={_format_value(value)}"
        for key, value in result.params.items()
        if key not in skipped and (baseline_params is None or baseline_params.get(key) != value)
    ]
    if changed:
        parts.append(f"({', '.join(changed)})")
    stopped = "stopped" in result.stop_reason.split(", ")
    last = result.history[-1] if result.history else {"iteration": 0}
    if result.reconstruction.ndim == 4:
        n_slices = result.reconstruction.shape[1]
        if stopped:
            parts.append(f"stopped at z={int(last.get('slice', 0))} ({int(last['iteration'])} it),")
        else:
            parts.append(f"{max((int(entry['iteration']) for entry in result.history), default=0)} it,")
        parts.append(f"{n_slices} slices")
    else:
        parts.append(f"stopped at {int(last['iteration'])} it" if stopped else f"{int(last['iteration'])} it")
    return " ".join(parts)


def slice_status(result) -> tuple[str, ...] | None:
    """What happened to each slice of a volume reconstruction.

    Parameters
    ----------
    result : imaging.ReconstructionResult
        A (P, Z, N, N) result of :func:`imaging.run.assemble_volume`, whose history
        entries carry their ``"slice"``.

    Returns
    -------
    tuple of str or None
        Per slice: ``"finished"``, ``"stopped"`` (the slice a cancel interrupted: it
        holds the estimate reached) or ``"not run"`` (left at zero by a cancel);
        ``None`` for a single slice or a history without slice entries.
    """
    if result.reconstruction.ndim != 4:
        return None
    ran = sorted({int(entry["slice"]) for entry in result.history if "slice" in entry})
    if not ran:
        return None
    status = ["not run"] * result.reconstruction.shape[1]
    for z in ran:
        status[z] = "finished"
    # A cancel ends the run in the last slice that ran; assemble_volume lists it as "stopped".
    if "stopped" in result.stop_reason.split(", "):
        status[ran[-1]] = "stopped"
    return tuple(status)


def reconstruction_layer(
    result,
    name: str,
    contrast_limits: tuple[float, float] | None = None,
    source: str | None = None,
) -> LayerDataTuple:
    """Layer-data tuple of a finished (or stopped) reconstruction.

    Parameters
    ----------
    result : imaging.ReconstructionResult
        Its ``reconstruction`` (P, N, N) or (P, Z, N, N) becomes the layer data (the
        magnitude of complex images; :func:`phase_layer` shows their phase); the
        result itself is kept in the metadata (history for convergence plots, parameters
        for the writer), and for a volume :func:`slice_status` as ``"slice_status"``.
    name : str
    contrast_limits : (float, float), optional
        Default: :func:`robust_contrast_limits` of the reconstruction.
    source : str, optional
        Name of the measurement layer it was reconstructed from.
    """
    metadata = {RESULT_KEY: result}
    if source is not None:
        metadata["source"] = source
    status = slice_status(result)
    if status is not None:
        metadata["slice_status"] = status
    return image_layer(magnitude_image(result.reconstruction), name, contrast_limits, metadata)


def phase_layer(result, name: str) -> LayerDataTuple | None:
    """Layer-data tuple of the phase (radians, in [-pi, pi]) of complex reconstructions, else None."""
    if np.asarray(result.reconstruction).dtype.kind != "c":
        return None
    phase = np.angle(result.reconstruction).astype(np.float32)
    meta = {"name": f"{name} phase", "colormap": "twilight", "contrast_limits": (-np.pi, np.pi),
            "metadata": {"kind": "phase"}, "visible": False}
    return phase, meta, "image"
