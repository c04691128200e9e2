"""Image quality metrics of dynamic reconstructions (docs/design.md §7).

All metrics compare a reconstruction ``x`` with a reference ``ref`` of the same shape,
time first: ``(P, H, W)`` (P frames), or ``(H, W)`` for a single frame. Inputs may be
NumPy arrays or CPU/GPU torch tensors; they are compared in float64.

Conventions (those of the RED-PSM paper's code, ``red_psm_utils.py``, unless noted):

- PSNR over the whole (P, H, W) volume with the data range ``max(ref) - min(ref)`` of
  the whole reference volume; the per-frame PSNR uses that same volume range, so frames
  of low contrast are not rewarded for it. (A constant reference falls back to its peak
  ``max |ref|``, or 1 if it is all zero.)
- SSIM as a 3D SSIM over the volume (scikit-image, 7x7x7 window). The paper's code sets
  the data range from the *reconstruction*; we use the *reference's* range (see
  :func:`ssim`).
- MAE: mean absolute error over the volume.
- HFEN: the Laplacian of Gaussian (sigma 1.5 pixels) of each frame's error, 2-norm over
  all frames. The paper reports it unnormalised; the usual normalised form divides by
  the same norm of the reference's LoG.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.metrics import structural_similarity

#: Standard deviation (pixels) of the Laplacian of Gaussian in HFEN.
HFEN_SIGMA = 1.5

#: Side of the SSIM window (scikit-image's default), in pixels and in frames.
SSIM_WINDOW = 7

#: Keys of :func:`evaluate` and their column headers in :func:`format_table`.
METRIC_LABELS = {
    "psnr": "PSNR (dB)",
    "psnr_frame_mean": "mean frame PSNR (dB)",
    "ssim": "SSIM",
    "mae": "MAE",
    "hfen": "HFEN",
    "hfen_normalized": "HFEN (normalised)",
}

_METRIC_FORMATS = {
    "psnr": "{:.2f}",
    "psnr_frame_mean": "{:.2f}",
    "ssim": "{:.4f}",
    "mae": "{:.4g}",
    "hfen": "{:.4g}",
    "hfen_normalized": "{:.4f}",
}


def _as_real_array(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.dtype.kind == "c":
        raise ValueError(f"{name} is complex; metrics take real images (pass the magnitude, e.g. np.abs)")
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _pair(x, ref, frames: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies of ``x`` and ``ref``; (P, H, W) when ``frames``."""
    x = _as_real_array(x, "x")
    ref = _as_real_array(ref, "ref")
    if x.shape != ref.shape:
        raise ValueError(f"x has shape {x.shape} but the reference has {ref.shape}; they must match")
    if frames:
        if x.ndim == 2:
            x, ref = x[None], ref[None]
        if x.ndim != 3:
            raise ValueError(f"expected images of shape (P, H, W) or (H, W), got {x.shape}")
    return x, ref


def _data_range(ref: np.ndarray, data_range) -> float:
    if data_range is None:
        # A constant reference has no range: fall back to its peak (PSNR's original
        # definition), and to 1 for an all-zero reference, so that scoring never fails.
        data_range = float(ref.max() - ref.min()) or float(np.max(np.abs(ref))) or 1.0
        return data_range
    data_range = float(data_range)
    if not math.isfinite(data_range) or data_range <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range}")
    return data_range


def _psnr_from_mse(mse, data_range: float):
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / np.asarray(mse, dtype=np.float64))


def psnr(x, ref, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio (dB) over the whole volume.

    ``20 log10(R / sqrt(mean((x - ref)^2)))`` with ``R = max(ref) - min(ref)`` over the
    whole reference (the paper's convention).

    Parameters
    ----------
    x, ref : array_like, same shape, e.g. (P, H, W)
        Reconstruction and reference, real.
    data_range : float, optional
        ``R``; the reference's range when omitted (its peak ``max |ref|`` if it is
        constant, 1 if it is all zero).

    Returns
    -------
    float
        PSNR in dB; ``inf`` when ``x`` equals ``ref``.
    """
    x, ref = _pair(x, ref)
    return float(_psnr_from_mse(np.mean((x - ref) ** 2), _data_range(ref, data_range)))


def psnr_frames(x, ref, data_range: float | None = None) -> np.ndarray:
    """PSNR (dB) of every frame, with the data range of the whole reference volume.

    Parameters
    ----------
    x, ref : array_like, shape (P, H, W)
    data_range : float, optional
        Defaults to ``max(ref) - min(ref)`` over all frames.

    Returns
    -------
    numpy.ndarray
        float64 (P,); ``inf`` for a frame that equals its reference.
    """
    x, ref = _pair(x, ref, frames=True)
    return _psnr_from_mse(np.mean((x - ref) ** 2, axis=(1, 2)), _data_range(ref, data_range))


def ssim(x, ref, data_range: float | None = None) -> float:
    """Structural similarity of the (P, H, W) volume with a 3D 7x7x7 window.

    The paper's code passes the data range of the *reconstruction*
    (``x.max() - x.min()``) to scikit-image; we pass the *reference's* range, so every
    method is scored with the same constants and a reconstruction cannot raise its SSIM
    by widening its own range (an outlier pixel enlarges the stabilising constants and
    flattens the score towards 1). Pass ``data_range=x.max() - x.min()`` to reproduce
    the paper's numbers.

    With fewer than 7 frames (or frames smaller than 7 pixels) a 3D window does not fit
    and the result is the mean of the 2D SSIM of the frames (:func:`ssim_frames`).

    Parameters
    ----------
    x, ref : array_like, shape (P, H, W) or (H, W)
    data_range : float, optional
        Defaults to ``max(ref) - min(ref)``.

    Returns
    -------
    float
        In [-1, 1]; 1 when ``x`` equals ``ref``.
    """
    x, ref = _pair(x, ref, frames=True)
    data_range = _data_range(ref, data_range)
    if min(x.shape) < SSIM_WINDOW:
        return float(np.mean(ssim_frames(x, ref, data_range)))
    return float(structural_similarity(ref, x, win_size=SSIM_WINDOW, data_range=data_range))


def ssim_frames(x, ref, data_range: float | None = None) -> np.ndarray:
    """2D SSIM of every frame, with the data range of the whole reference volume.

    Parameters
    ----------
    x, ref : array_like, shape (P, H, W)
        Frames must be at least 3 x 3 pixels (the window shrinks to the largest odd
        size that fits, up to 7).
    data_range : float, optional
        Defaults to ``max(ref) - min(ref)`` over all frames.

    Returns
    -------
    numpy.ndarray
        float64 (P,).
    """
    x, ref = _pair(x, ref, frames=True)
    data_range = _data_range(ref, data_range)
    window = min(SSIM_WINDOW, *x.shape[1:])
    window -= 1 - window % 2
    if window < 3:
        raise ValueError(f"SSIM needs frames of at least 3 x 3 pixels, got {x.shape[1:]}")
    return np.array(
        [structural_similarity(r, f, win_size=window, data_range=data_range) for f, r in zip(x, ref)]
    )


def mae(x, ref) -> float:
    """Mean absolute error over the whole volume."""
    x, ref = _pair(x, ref)
    return float(np.mean(np.abs(x - ref)))


def _log_frames(images: np.ndarray, sigma: float) -> np.ndarray:
    # Filtering only the two image axes keeps frames independent, as the paper's per-frame loop does.
    return ndimage.gaussian_laplace(images, sigma, axes=(1, 2))


def hfen(x, ref, normalized: bool = True, sigma: float = HFEN_SIGMA) -> float:
    """High-frequency error norm.

    ``||LoG(x - ref)||_2`` over all frames, with ``LoG`` the Laplacian of Gaussian of
    standard deviation ``sigma`` applied to each frame (``scipy.ndimage.gaussian_laplace``,
    reflecting borders). ``normalized=False`` gives this norm, as the paper reports it;
    ``normalized=True`` divides it by ``||LoG(ref)||_2``, which makes it independent of the
    image scale.

    Parameters
    ----------
    x, ref : array_like, shape (P, H, W) or (H, W)
    normalized : bool
    sigma : float
        LoG standard deviation in pixels.

    Returns
    -------
    float
        0 when ``x`` equals ``ref``; normalised, ``inf`` for a reference without
        structure (zero LoG) and an ``x`` that differs from it.
    """
    x, ref = _pair(x, ref, frames=True)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma}")
    error = float(np.linalg.norm(_log_frames(x - ref, sigma)))
    if not normalized:
        return error
    scale = float(np.linalg.norm(_log_frames(ref, sigma)))
    if scale == 0.0:
        return 0.0 if error == 0.0 else math.inf
    return error / scale


def evaluate(x, ref) -> dict[str, float]:
    """All metrics of a reconstruction against its reference.

    Parameters
    ----------
    x, ref : array_like, shape (P, H, W)

    Returns
    -------
    dict
        ``psnr``, ``psnr_frame_mean`` (mean of :func:`psnr_frames`), ``ssim``, ``mae``,
        ``hfen`` (unnormalised, the paper's) and ``hfen_normalized``, as Python floats.
    """
    x, ref = _pair(x, ref, frames=True)
    return {
        "psnr": psnr(x, ref),
        "psnr_frame_mean": float(np.mean(psnr_frames(x, ref))),
        "ssim": ssim(x, ref),
        "mae": mae(x, ref),
        "hfen": hfen(x, ref, normalized=False),
        "hfen_normalized": hfen(x, ref, normalized=True),
    }


def _format_value(key: str, value) -> str:
    if isinstance(value, (float, int, np.floating, np.integer)) and not isinstance(value, bool):
        value = float(value)
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return _METRIC_FORMATS.get(key, "{:.4g}").format(value)
    return str(value)


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table with one row per entry of ``rows``.

    Parameters
    ----------
    rows : dict
        Row name (e.g. a method or a file) -> metrics dict as returned by
        :func:`evaluate`. The metric columns come first in the order of
        :data:`METRIC_LABELS`; other keys (e.g. a wall time) follow in order of first
        appearance. A row without some key shows "-" there.

    Returns
    -------
    str
        The table, lines joined by newlines, without a trailing newline.
    """
    if not rows:
        raise ValueError("format_table needs at least one row")
    present = {key for metrics in rows.values() for key in metrics}
    columns = [key for key in METRIC_LABELS if key in present]
    for metrics in rows.values():
        columns += [key for key in metrics if key not in columns]
    header = ["", *(METRIC_LABELS.get(key, key) for key in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for name, metrics in rows.items():
        cells = [str(name), *(_format_value(key, metrics[key]) if key in metrics else "-" for key in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_volume(reconstruction: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The metrics of :func:`imaging.metrics.evaluate` for a (P, Z, N, N) volume.

    ``psnr`` is computed over the whole 4D volume (data range max - min of the whole
    reference, the paper's convention extended to volumes) and ``psnr_frame_mean`` over
    the time frames, each frame being the whole (Z, N, N) volume at that time; the other
    metrics (SSIM, MAE, HFEN) are means over slices of the 2D+time metrics.

    Parameters
    ----------
    reconstruction, reference : numpy.ndarray
        Real (P, Z, N, N) arrays of equal shape.
    """
    reconstruction = np.asarray(reconstruction, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if reconstruction.ndim != 4 or reconstruction.shape != reference.shape:
        raise ValueError(
            f"evaluate_volume needs two (P, Z, N, N) arrays of equal shape, got {reconstruction.shape} "
            f"and {reference.shape}"
        )
    frames, n_slices, height, width = reference.shape
    per_slice = [evaluate(reconstruction[:, z], reference[:, z]) for z in range(n_slices)]
    scores = {name: float(np.mean([s[name] for s in per_slice])) for name in per_slice[0]}
    # PSNR is pointwise, so the (P, Z, N, N) volume may be laid out as P frames of (Z*N, N).
    flat_reconstruction = reconstruction.reshape(frames, n_slices * height, width)
    flat_reference = reference.reshape(frames, n_slices * height, width)
    scores["psnr"] = float(psnr(flat_reconstruction, flat_reference))
    scores["psnr_frame_mean"] = float(np.mean(psnr_frames(flat_reconstruction, flat_reference)))
    return scores
