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
    """napari axis labels of an object layer: ``("t", "y", "x")`` or ``("z", "t", "y", "x")``.

    They name the viewer's (world) axes, which is what napari's sliders show: "t" (time)
    and, for a volume, "z" (slice). A (T, Z, Y, X) volume is shown with its first two
    axes swapped (:func:`volume_affine`), so that the time axis is third from the end
    in every layer: napari aligns layers by their trailing axes, and a (T, Y, X) stack
    then moves with the volume's time and is drawn at every slice.

    Raises
    ------
    ValueError
        For a number of axes other than 3 or 4.
    """
    if ndim == 3:
        return ("t", "y", "x")
    if ndim == 4:
        return ("z", "t", "y", "x")
    raise ValueError(f"an image stack has 3 (T, Y, X) or 4 (T, Z, Y, X) axes, got {ndim}")


def volume_affine() -> np.ndarray:
    """The (5, 5) napari affine that shows (T, Z, Y, X) data on the viewer's (z, t, y, x) axes.

    The layer keeps the library's (T, Z, Y, X) array (what the widgets and the writer
    read); only its place among the viewer's axes changes.
    """
    return np.eye(5)[[1, 0, 2, 3, 4]]


def free_x(viewer, width: int) -> float:
    """Where a new object of ``width`` pixels goes so that it covers nothing: its x offset.

    Parameters
    ----------
    viewer : napari.Viewer or None
        The viewer the layers will join (``None``: an empty one).
    width : int
        Width in pixels of the object to place; a margin of a tenth of it separates it
        from what is already shown.

    Returns
    -------
    float
        0 in an empty viewer, else right of the right edge of every layer in it.
    """
    if viewer is None or len(viewer.layers) == 0:
        return 0.0
    return float(viewer.layers.extent.world[1][-1]) + 1.0 + 0.1 * width


def current_viewer():
    """The napari viewer a sample or a file is opened in (``None`` outside one)."""
    import napari

    return napari.current_viewer()


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


#: Layer metadata key of the (y, x) offset of the object a measurement layer measured:
#: where the reconstructions of the measurement are placed (over their ground truth).
OBJECT_OFFSET_KEY = "object_offset"


def measurement_layer(measurements, name: str, object_offset: tuple[float, float] = (0.0, 0.0)) -> LayerDataTuple:
    """Layer-data tuple of a measurement layer, the full measurement kept in its metadata.

    The layer sits to the right of its (N, N) object, so that an object, its measurement
    and its reconstruction can be seen side by side. A volume's picture follows the
    viewer's (z, t, y, x) axes (:func:`stack_axis_labels`): MRI's (P, Z, H, W) through
    :func:`volume_affine`, tomography's (Z, P, V*D) as (Z, 1, P, V*D) whose one time
    step is stretched over the P frames, so that it shows at every time.

    Parameters
    ----------
    measurements : imaging.Measurements
    name : str
        Layer name.
    object_offset : (float, float)
        (y, x) offset of the measured object in the viewer; the picture goes right of it,
        and reconstructions of the measurement over it (``metadata[OBJECT_OFFSET_KEY]``).
    """
    image = measurement_image(measurements)
    low, high = float(image.min()), float(image.max())
    # Right of the object (same y, x offset by the object's width plus a margin) rather
    # than on top of it: the two live in different spaces.
    y, x = object_offset
    offset = (float(y), float(x) + 1.1 * measurements.image_shape[-1])
    extra = {}
    if measurements.modality == "mri":
        axis_labels = stack_axis_labels(image.ndim)
        if measurements.is_volume:
            extra["affine"] = volume_affine()
    elif measurements.is_volume:  # (Z, P, V*D): frames are the picture's rows, so time is not a slider
        image = image[:, None]
        axis_labels = stack_axis_labels(4)
        frames = measurements.n_frames
        extra["scale"] = (1.0, float(frames), 1.0, 1.0)
        extra["translate"] = (0.0, (frames - 1) / 2, *offset)
    else:
        axis_labels = ("t", "detector")
    meta = {
        "name": name,
        "translate": (0.0,) * (image.ndim - 2) + offset,
        "axis_labels": axis_labels,
        "colormap": "gray" if measurements.modality == "tomography" else "magma",
        "contrast_limits": (low, high if high > low else low + 1.0),
        "metadata": {
            MEASUREMENTS_KEY: measurements,
            "description": describe_measurements(measurements),
            OBJECT_OFFSET_KEY: (float(y), float(x)),
        },
        **extra,
    }
    return image, meta, "image"


def frame_marker_layer(measurements, name: str, picture_translate: tuple[float, ...]) -> LayerDataTuple | None:
    """A vectors layer whose two ticks, left and right of a tomography picture, point at the current frame's row.

    The sinogram picture holds every frame as one row, so the time slider does not
    move it; the ticks of row t live at time t of a (t, y, x) vectors layer, and napari
    shows exactly the current frame's (at every slice of a volume). Ticks outside the
    picture hide none of its pixels; a vectors layer costs the GUI thread about half
    what a shapes layer does when it is added.

    Parameters
    ----------
    measurements : imaging.Measurements
    name : str
        Name of the measurement layer; the marker is called ``"<name> frame"``.
    picture_translate : tuple of float
        The measurement layer's ``translate`` (its last two entries place the picture).

    Returns
    -------
    tuple or None
        ``(vectors, meta, "vectors")``, vectors float (2 P, 2, 3) of (position,
        projection) in (t, y, x); ``None`` for MRI, whose picture moves with the time
        slider itself.
    """
    if measurements.modality != "tomography":
        return None
    frames = measurements.n_frames
    width = measurements.sinogram.shape[1] * measurements.sinogram.shape[-1]
    top, left = float(picture_translate[-2]), float(picture_translate[-1])
    tick = max(2.0, 0.08 * width)
    rows = np.arange(frames, dtype=float)
    vectors = np.zeros((2, frames, 2, 3))
    vectors[:, :, 0, 0] = rows  # the frame (time) of each tick
    vectors[:, :, 0, 1] = top + rows  # its row of the picture
    vectors[0, :, 0, 2] = left - 0.5 - tick  # ends at the picture's left edge
    vectors[1, :, 0, 2] = left + width - 0.5  # starts at its right edge
    vectors[:, :, 1, 2] = tick
    meta = {
        "name": f"{name} frame",
        "edge_color": "yellow",
        "edge_width": 0.8,
        "opacity": 1.0,
        "vector_style": "line",
        "axis_labels": ("t", "y", "x"),
        "metadata": {"kind": "frame marker", "measurement": name},
    }
    return vectors.reshape(2 * frames, 2, 3), meta, "vectors"


def measurement_layers(measurements, name: str, object_offset: tuple[float, float] = (0.0, 0.0)) -> list:
    """The measurement layer and, for tomography, its :func:`frame_marker_layer` after it."""
    picture = measurement_layer(measurements, name, object_offset)
    marker = frame_marker_layer(measurements, name, picture[1]["translate"])
    return [picture] + ([marker] if marker is not None else [])


def image_layer(
    images: np.ndarray,
    name: str,
    contrast_limits: tuple[float, float] | None = None,
    metadata: dict[str, Any] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
) -> LayerDataTuple:
    """Layer-data tuple of a (T, Y, X) image stack or (T, Z, Y, X) volume shown in gray.

    Parameters
    ----------
    images : numpy.ndarray
        (T, Y, X) or (T, Z, Y, X) real array, shown as float32 with the axis labels of
        :func:`stack_axis_labels` (a volume through :func:`volume_affine`).
    name : str
    contrast_limits : (float, float), optional
        Default: :func:`robust_contrast_limits`.
    metadata : dict, optional
        Stored as the layer's metadata.
    offset : (float, float)
        (y, x) place of the image in the viewer.
    """
    images = np.asarray(images, dtype=np.float32)
    meta = {
        "name": name,
        "colormap": "gray",
        "contrast_limits": contrast_limits or robust_contrast_limits(images),
        "axis_labels": stack_axis_labels(images.ndim),
        "translate": (0.0,) * (images.ndim - 2) + tuple(float(value) for value in offset),
        "metadata": dict(metadata or {}),
    }
    if images.ndim == 4:
        meta["affine"] = volume_affine()
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
    offset: tuple[float, float] = (0.0, 0.0),
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
    offset : (float, float)
        (y, x) place in the viewer: over the measured object (the measurement
        layer's ``metadata[OBJECT_OFFSET_KEY]``).
    """
    metadata = {RESULT_KEY: result}
    if source is not None:
        metadata["source"] = source
    status = slice_status(result)
    if status is not None:
        metadata["slice_status"] = status
    return image_layer(magnitude_image(result.reconstruction), name, contrast_limits, metadata, offset)


def phase_layer(result, name: str, offset: tuple[float, float] = (0.0, 0.0)) -> LayerDataTuple | None:
    """Layer-data tuple of the phase (radians, in [-pi, pi]) of complex reconstructions, else None.

    Placed like :func:`reconstruction_layer` (``offset``), hidden.
    """
    if np.asarray(result.reconstruction).dtype.kind != "c":
        return None
    phase, meta, _ = image_layer(
        np.angle(result.reconstruction), f"{name} phase", (-np.pi, np.pi), {"kind": "phase"}, offset
    )
    meta.update(colormap="twilight", visible=False)
    return phase, meta, "image"
