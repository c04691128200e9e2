"""Receive-coil sensitivities estimated from the measured k-space itself.

Raw scanner data never come with coil maps, so a multi-coil acquisition without
``coil_maps`` gets them from its own fully sampled k-space centre. Dynamic acquisitions
sample a different set of k-space locations in every frame, but the centre is covered
many times over: the *time-averaged* k-space (every location averaged over the frames
that sampled it) has a fully sampled centre, the calibration region, from which the
maps are computed. Averaging over time blurs the motion, which a smooth sensitivity
does not mind.

Two estimators:

- ESPIRiT (Uecker et al., MRM 71:990, 2014), :func:`espirit_maps`: the k-space patches
  of the calibration region span a low-dimensional signal subspace; at every pixel the
  sensitivities are the eigenvector of eigenvalue one of the operator that projects
  onto it. Pixels where the top eigenvalue is below ``crop`` see no signal (air) and
  get zero maps.
- The low-resolution fallback, :func:`lowres_maps`: coil images of the
  Hann-windowed calibration region, divided by their root sum of squares; zero where
  that falls below a fraction of its maximum. It needs no minimum calibration size.

Maps are defined up to one phase per pixel common to all coils (it moves into the
image); both estimators fix it with a virtual reference coil (the principal component
of the calibration data across coils), which varies smoothly, so the image phase stays
smooth too. Maps are normalised to a unit root sum of squares inside the support.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .mri import fft2c, ifft2c
from .nufft import gridded_coil_images

#: Side of the calibration region taken from the time-averaged k-space centre.
DEFAULT_CALIBRATION_SIZE = 24
#: ESPIRiT kernel side.
DEFAULT_KERNEL_SIZE = 6
#: ESPIRiT keeps the singular vectors whose singular value exceeds this fraction of the largest.
DEFAULT_SUBSPACE_THRESHOLD = 0.02
#: ESPIRiT keeps the pixels whose top eigenvalue exceeds this value (one inside the object).
DEFAULT_EIGENVALUE_CROP = 0.9
#: The low-resolution estimate keeps the pixels whose root sum of squares exceeds this fraction of the maximum.
DEFAULT_LOWRES_SUPPORT = 0.05

ESTIMATORS = ("auto", "espirit", "lowres")


def time_averaged_kspace(kspace, mask) -> tuple[np.ndarray, np.ndarray]:
    """Every Cartesian k-space location averaged over the frames that sampled it.

    Parameters
    ----------
    kspace : array_like complex, shape (P, C, H, W)
        Dynamic multi-coil k-space, centred layout.
    mask : array_like bool, shape (P, H, W)
        Sampled locations per frame.

    Returns
    -------
    average : numpy.ndarray
        complex64 (C, H, W), zero where no frame sampled.
    covered : numpy.ndarray
        bool (H, W), the locations sampled in at least one frame.
    """
    kspace = np.asarray(kspace)
    mask = np.asarray(mask, dtype=bool)
    if kspace.ndim != 4 or mask.shape != (kspace.shape[0], *kspace.shape[2:]):
        raise ValueError(f"kspace must be (P, C, H, W) and mask (P, H, W); got {kspace.shape} and {mask.shape}")
    counts = mask.sum(axis=0)
    total = np.einsum("pchw,phw->chw", kspace, mask.astype(kspace.real.dtype))
    average = total / np.maximum(counts, 1)
    return average.astype(np.complex64), counts > 0


def calibration_region(average, covered, size: int = DEFAULT_CALIBRATION_SIZE) -> np.ndarray:
    """The largest centred block of ``average``, at most ``size`` wide, that is fully covered.

    Parameters
    ----------
    average : numpy.ndarray
        complex (C, H, W) k-space, centred layout (DC at ``(H // 2, W // 2)``).
    covered : numpy.ndarray
        bool (H, W), where ``average`` holds data.
    size : int
        Largest side of the block.

    Returns
    -------
    numpy.ndarray
        complex64 (C, h, w) with ``h, w <= size``, centred on DC; ``h`` or ``w`` is 0
        when DC itself was never sampled.
    """
    _, height, width = average.shape
    best = (0, 0)
    for rows in range(1, min(size, height) + 1):
        for cols in range(1, min(size, width) + 1):
            if rows * cols > best[0] * best[1] and np.all(covered[centred_block((height, width), (rows, cols))]):
                best = (rows, cols)
    return np.ascontiguousarray(average[(slice(None), *centred_block((height, width), best))]).astype(np.complex64)


def gridded_calibration(kspace, trajectory, image_shape, size: int = DEFAULT_CALIBRATION_SIZE) -> np.ndarray:
    """Calibration region of non-Cartesian (radial) data: the centre of the gridded time average.

    All frames' samples are density-compensated together and gridded to coil images
    (:func:`imaging.operators.nufft.gridded_coil_images`); their centred FFT is the
    time-averaged Cartesian k-space, of which the central ``size x size`` block is
    returned (radial spokes oversample the centre, so it is fully sampled).

    Parameters
    ----------
    kspace : array_like complex, shape (P, C, S, R)
    trajectory : array_like, shape (P, S, R, 2)
    image_shape : tuple (H, W)
    size : int

    Returns
    -------
    numpy.ndarray
        complex64 (C, min(size, H), min(size, W)).
    """
    coil_kspace = fft2c(torch.from_numpy(gridded_coil_images(kspace, trajectory, image_shape))).numpy()
    block = (min(size, image_shape[0]), min(size, image_shape[1]))
    return np.ascontiguousarray(coil_kspace[(slice(None), *centred_block(tuple(image_shape), block))])


def centred_block(shape, block_shape) -> tuple[slice, slice]:
    """Slices of the ``block_shape`` block of a centred ``shape`` grid that keeps DC at its ``(h // 2, w // 2)``."""
    (height, width), (rows, cols) = shape, block_shape
    top, left = height // 2 - rows // 2, width // 2 - cols // 2
    return slice(top, top + rows), slice(left, left + cols)


def _virtual_coil(calibration: torch.Tensor) -> torch.Tensor:
    """(C,) unit vector of coil weights that captures most of the calibration energy."""
    n_coils = calibration.shape[0]
    left, _, _ = torch.linalg.svd(calibration.reshape(n_coils, -1).to(torch.complex128), full_matrices=False)
    return left[:, 0]


def _align_phase(maps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Rotate each pixel's coil vector so that its projection on ``reference`` is real and positive."""
    projection = torch.einsum("c,chw->hw", reference.conj().to(maps.dtype), maps)
    magnitude = projection.abs()
    rotation = torch.where(magnitude > 0, projection.conj() / magnitude.clamp_min(1e-30), torch.ones_like(projection))
    return maps * rotation


def _check_calibration(calibration, image_shape, minimum: int) -> tuple[torch.Tensor, tuple[int, int]]:
    calibration = torch.as_tensor(np.asarray(calibration)).to(torch.complex128)
    if calibration.ndim != 3:
        raise ValueError(f"calibration must be complex (C, h, w), got shape {tuple(calibration.shape)}")
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 2:
        raise ValueError(f"image_shape must be (H, W), got {image_shape}")
    height, width = calibration.shape[1:]
    if min(height, width) < minimum:
        raise ValueError(
            f"the fully sampled k-space centre is only {height} x {width}; this estimate needs at least "
            f"{minimum} x {minimum} (sample more central lines, or use the 'lowres' estimate)"
        )
    if height > image_shape[0] or width > image_shape[1]:
        raise ValueError(f"calibration region {height} x {width} is larger than the image {image_shape}")
    if not torch.isfinite(torch.view_as_real(calibration)).all():
        raise ValueError("calibration data contain NaN or infinite values")
    return calibration, image_shape


def espirit_maps(
    calibration,
    image_shape,
    kernel_size: int = DEFAULT_KERNEL_SIZE,
    threshold: float = DEFAULT_SUBSPACE_THRESHOLD,
    crop: float = DEFAULT_EIGENVALUE_CROP,
) -> np.ndarray:
    """ESPIRiT coil sensitivities from a fully sampled calibration region.

    Parameters
    ----------
    calibration : array_like complex, shape (C, h, w)
        Fully sampled k-space centre (centred layout, DC at ``(h // 2, w // 2)``).
    image_shape : tuple (H, W)
        Grid of the maps (the image grid of the acquisition).
    kernel_size : int
        Side ``k`` of the k-space patches, ``k <= min(h, w) - 1``.
    threshold : float
        Singular values above ``threshold`` times the largest span the signal subspace.
    crop : float
        Pixels whose largest eigenvalue is below this (no signal) get zero maps.

    Returns
    -------
    numpy.ndarray
        complex64 (C, H, W): unit root sum of squares where kept, zero elsewhere.
    """
    calibration, (height, width) = _check_calibration(calibration, image_shape, kernel_size + 1)
    n_coils, calib_h, calib_w = calibration.shape
    k = int(kernel_size)
    # Patch matrix: one row per k x k window of the calibration region, C*k*k columns.
    patches = calibration.unfold(1, k, 1).unfold(2, k, 1)  # (C, h-k+1, w-k+1, k, k)
    rows = patches.permute(1, 2, 0, 3, 4).reshape(-1, n_coils * k * k)
    _, singular, right_h = torch.linalg.svd(rows, full_matrices=False)
    kept = int(torch.count_nonzero(singular > threshold * singular[0]))
    # Patches (as column vectors) lie in the span of conj(V) = rows of V^H.
    kernels = right_h[:kept].reshape(kept, n_coils, k, k)
    # At image position x the operator is W(x) = (1/k^2) sum_j g_j(x) g_j(x)^H with
    # g_j(x)_c = sum_d kernels[j, c, d] exp(+2 pi i d.x / N): a trigonometric polynomial
    # of degree k - 1. Evaluate W on a coarse 2k x 2k grid, take its Fourier
    # coefficients there (exact: no aliasing for offsets |d| <= k - 1) and evaluate
    # them on the full grid.
    coarse = 2 * k
    if coarse > min(height, width):
        raise ValueError(f"kernel_size {k} is too large for a {height} x {width} image")
    padded = torch.zeros(kept, n_coils, coarse, coarse, dtype=torch.complex128)
    padded[..., :k, :k] = kernels
    values = torch.fft.ifft2(padded, norm="forward")  # sum_d kernels[d] exp(+2 pi i d.m / M)
    coarse_operator = torch.einsum("jcab,jdab->cdab", values, values.conj()) / (k * k)
    coefficients = torch.fft.fft2(coarse_operator, norm="forward")  # (C, C, M, M), offsets mod M
    offsets = torch.arange(-(k - 1), k)
    full = torch.zeros(n_coils, n_coils, height, width, dtype=torch.complex128)
    full[:, :, (offsets % height)[:, None], (offsets % width)[None, :]] = coefficients[
        :, :, (offsets % coarse)[:, None], (offsets % coarse)[None, :]
    ]
    operator = torch.fft.fftshift(torch.fft.ifft2(full, norm="forward"), dim=(-2, -1))  # image index i <-> x = i - N/2
    eigenvalues, eigenvectors = torch.linalg.eigh(operator.permute(2, 3, 0, 1))  # ascending, (H, W, C[, C])
    top_value = eigenvalues[..., -1]
    maps = eigenvectors[..., -1].permute(2, 0, 1)  # (C, H, W), unit norm per pixel
    maps = _align_phase(maps, _virtual_coil(calibration)) * (top_value > crop)
    return np.ascontiguousarray(maps.to(torch.complex64).numpy())


def lowres_maps(calibration, image_shape, support: float = DEFAULT_LOWRES_SUPPORT) -> np.ndarray:
    """Coil sensitivities from low-resolution coil images (the fallback of ESPIRiT).

    Parameters
    ----------
    calibration : array_like complex, shape (C, h, w)
        Fully sampled k-space centre (centred layout).
    image_shape : tuple (H, W)
    support : float
        Pixels whose root sum of squares is below ``support`` times its maximum get
        zero maps.

    Returns
    -------
    numpy.ndarray
        complex64 (C, H, W): the Hann-windowed calibration data zero-filled to
        (H, W), transformed to coil images and divided by their root sum of squares.
    """
    calibration, (height, width) = _check_calibration(calibration, image_shape, 1)
    n_coils, calib_h, calib_w = calibration.shape
    window = torch.outer(torch.hann_window(calib_h + 2, periodic=False, dtype=torch.float64)[1:-1],
                         torch.hann_window(calib_w + 2, periodic=False, dtype=torch.float64)[1:-1])
    padded = torch.zeros(n_coils, height, width, dtype=torch.complex128)
    padded[(slice(None), *centred_block((height, width), (calib_h, calib_w)))] = calibration * window
    coil_images = ifft2c(padded)
    root_sum_squares = torch.linalg.vector_norm(coil_images, dim=0)
    keep = root_sum_squares > support * root_sum_squares.max()
    maps = torch.where(keep, coil_images / root_sum_squares.clamp_min(1e-30), torch.zeros_like(coil_images))
    return _align_phase(maps, _virtual_coil(calibration)).to(torch.complex64).numpy()


def estimate_from_calibration(calibration, image_shape, method: str = "auto") -> tuple[np.ndarray, str]:
    """Coil maps from a calibration region with the chosen estimator.

    Parameters
    ----------
    calibration : array_like complex, shape (C, h, w)
    image_shape : tuple (H, W)
    method : {"auto", "espirit", "lowres"}
        ``"auto"``: ESPIRiT when the calibration region is at least
        ``2 * DEFAULT_KERNEL_SIZE`` on each side (enough windows for a stable
        subspace), else the low-resolution estimate.

    Returns
    -------
    maps : numpy.ndarray
        complex64 (C, H, W).
    used : str
        The estimator that produced them, ``"espirit"`` or ``"lowres"``.
    """
    if method not in ESTIMATORS:
        raise ValueError(f"unknown coil-map estimator {method!r}; choose one of: {', '.join(ESTIMATORS)}")
    if method == "auto":
        method = "espirit" if min(np.shape(calibration)[1:]) >= 2 * DEFAULT_KERNEL_SIZE else "lowres"
    if method == "espirit":
        return espirit_maps(calibration, image_shape), method
    return lowres_maps(calibration, image_shape), method


def coil_combination_error(estimate, truth, support=None) -> float:
    """Largest deviation of two sets of maps from agreeing up to a per-pixel common phase.

    ``1 - |sum_c conj(estimate_c) truth_c| / (||estimate|| ||truth||)`` per pixel (zero
    exactly when the coil vectors are parallel), maximised over ``support``.

    Parameters
    ----------
    estimate, truth : array_like complex, shape (C, H, W)
    support : array_like bool, shape (H, W), optional
        Pixels to compare (default: where both are nonzero).
    """
    estimate, truth = np.asarray(estimate, dtype=np.complex128), np.asarray(truth, dtype=np.complex128)
    norms = np.linalg.norm(estimate, axis=0) * np.linalg.norm(truth, axis=0)
    if support is None:
        support = norms > 0
    agreement = np.abs(np.sum(estimate.conj() * truth, axis=0))[support] / norms[support]
    return float(1.0 - agreement.min()) if agreement.size else math.nan
