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

#: Layer metadata key of the :class:`imaging.Measurements` behind a measurement layer.
MEASUREMENTS_KEY = "imaging_measurements"
#: Layer metadata key of the :class:`imaging.ReconstructionResult` behind a reconstruction layer.
RESULT_KEY = "imaging_result"

LayerDataTuple = tuple[np.ndarray, dict[str, Any], str]


def measurement_image(measurements) -> np.ndarray:
    """The picture of a measurement shown in the viewer.

    Parameters
    ----------
    measurements : imaging.Measurements

    Returns
    -------
    numpy.ndarray
        Tomography: float32 (P, V*D), one row per frame holding its V projections side
        by side (the whole acquisition as one sinogram image). MRI: float32 (P, H, W),
        ``log(1 + |k| / (1e-3 max|k|))`` of the root-sum-of-squares over coils, zero
        where k-space was not sampled.
    """
    if measurements.modality == "tomography":
        sinogram = measurements.sinogram
        return np.ascontiguousarray(sinogram.reshape(sinogram.shape[0], -1), dtype=np.float32)
    magnitude = np.sqrt(np.sum(np.abs(measurements.kspace) ** 2, axis=1))
    peak = float(magnitude.max())
    if peak == 0.0:
        return magnitude.astype(np.float32)
    return np.log1p(magnitude / (1e-3 * peak)).astype(np.float32)


def describe_measurements(measurements) -> str:
    """One line summarising an acquisition, e.g. ``"tomography: 64 frames x 1 view x 128 bins"``."""
    if measurements.modality == "tomography":
        frames, views, bins = measurements.sinogram.shape
        return f"tomography: {frames} frames x {views} view(s) x {bins} bins"
    frames, coils, height, width = measurements.kspace.shape
    lines = int(np.any(measurements.mask, axis=2).sum(axis=1).mean().round())
    return f"mri: {frames} frames x {coils} coil(s), {height}x{width} k-space, ~{lines} lines/frame"


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
    offset = 1.1 * measurements.image_shape[1]
    meta = {
        "name": name,
        "translate": (0.0, offset) if image.ndim == 2 else (0.0, 0.0, offset),
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
    """Layer-data tuple of a (T, Y, X) image stack shown in gray.

    Parameters
    ----------
    images : numpy.ndarray
        (T, Y, X) real stack, shown as float32.
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
        e.g. ``"red-psm fast (lam=0.01) 40 it"`` or ``"psm (rank=8) stopped at 12 it"``.
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
    iterations = int(result.history[-1]["iteration"]) if result.history else 0
    parts.append(f"stopped at {iterations} it" if result.stop_reason == "stopped" else f"{iterations} it")
    return " ".join(parts)


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
        Its ``reconstruction`` (P, N, N) becomes the layer data; the result itself is kept
        in the metadata (history for convergence plots, parameters for the writer).
    name : str
    contrast_limits : (float, float), optional
        Default: :func:`robust_contrast_limits` of the reconstruction.
    source : str, optional
        Name of the measurement layer it was reconstructed from.
    """
    metadata = {RESULT_KEY: result}
    if source is not None:
        metadata["source"] = source
    return image_layer(result.reconstruction, name, contrast_limits, metadata)


def spatial_bases_layer(spatial_bases: np.ndarray, name: str) -> LayerDataTuple:
    """Layer-data tuple of PSM spatial bases (K+1, N, N), each basis in its own window.

    The bases have arbitrary sign and scale, so each slice is divided by its largest
    magnitude and the stack is shown on a symmetric window with a diverging colormap.
    """
    bases = np.asarray(spatial_bases, dtype=np.float32)
    peaks = np.abs(bases).reshape(len(bases), -1).max(axis=1)
    normalised = bases / np.where(peaks > 0, peaks, 1.0)[:, None, None]
    meta = {"name": name, "colormap": "PiYG", "contrast_limits": (-1.0, 1.0), "metadata": {"kind": "spatial bases"}}
    return normalised, meta, "image"
