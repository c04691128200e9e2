"""Acquisition simulation: dynamic phantom -> noisy measurements (docs/design.md §3).

Noise follows the paper's protocol: i.i.d. Gaussian with a standard deviation relative
to the peak of the *full* data, i.e. the data every frame would give if it were measured
completely (tomography: at all ``P * V`` angles of the schedule; MRI: the whole k-space
grid of every coil). The relative level therefore means the same for any object
amplitude and any undersampling.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .measurements import Measurements
from .operators import DynamicMRI, disk_mask, fft2c
from .operators.tomography import astra_projection_matrix

#: MRI sampling trajectories that :func:`simulate` knows.
TRAJECTORIES = ("cartesian", "radial")

#: Receive coils of a simulated MRI acquisition by default (a cardiac array's order).
DEFAULT_MRI_COILS = 8

#: Peak bytes per image pixel (frame x slice x N x N) of a simulation: the phantom and its
#: float64 temporaries, the masked copy and the projections (tomography), or per coil the
#: coil images, the full and sampled k-space and the complex noise (MRI). Measured peak RSS
#: (walnut, shepp_logan, material, cardiac at P = 32-64, N = 128-256, 1 and 4 coils):
#: 49-72 bytes/pixel for tomography, 105 + 58 per extra coil for MRI, first-use buffers included.
_SIMULATION_BYTES_PER_PIXEL = {"tomography": 96, "mri_fixed": 64, "mri_per_coil": 64}

#: Upper bound on the entries of one all-angle projection matrix built at once (about
#: 100 MB with its indices); larger angle sets are projected chunk by chunk.
_MATRIX_ENTRIES_PER_CHUNK = 8_000_000


def _check_noise(noise) -> float:
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite relative level >= 0, got {noise!r}")
    return noise


def _check_images(images, square: bool, allow_complex: bool = False) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 3 or min(images.shape) < 1:
        raise ValueError(f"images must have shape (P, N, N), got {images.shape}")
    if square and images.shape[1] != images.shape[2]:
        raise ValueError(f"tomography needs square frames (P, N, N), got {images.shape}")
    if images.dtype.kind not in ("biufc" if allow_complex else "biuf"):
        raise ValueError(f"images must be {'numeric' if allow_complex else 'real-valued'}, got dtype {images.dtype}")
    if not np.all(np.isfinite(images)):
        raise ValueError("images contain NaN or infinite values")
    return images.astype(np.complex64 if images.dtype.kind == "c" else np.float32, copy=False)


def _project_all_angles(images, angles, n_detectors, detector_spacing):
    """Noiseless sinogram at the scheduled angles and the peak of the all-angle data.

    Every frame is projected at every distinct angle of the schedule with ASTRA's CPU
    "line" projector on the inscribed disk, the weights ``DynamicTomography`` uses, so
    the measured views are a subset of these rows and come out of the same products.

    Returns
    -------
    sinogram : numpy.ndarray
        float32 (P, V, D).
    full_peak : float
        Maximum of the (P, P*V, D) all-angle data.
    """
    n_frames, size, _ = images.shape
    unique_angles, angle_index = np.unique(angles.ravel(), return_inverse=True)
    angle_index = angle_index.reshape(angles.shape)
    frames_by_column = np.ascontiguousarray((images * disk_mask(size)).reshape(n_frames, -1).T)
    sinogram = np.empty((*angles.shape, n_detectors), dtype=np.float32)
    # ASTRA's line projector has at most about 2N weights per ray.
    angles_per_chunk = max(1, _MATRIX_ENTRIES_PER_CHUNK // (2 * size * n_detectors))
    full_peak = -math.inf
    for start in range(0, len(unique_angles), angles_per_chunk):
        chunk = unique_angles[start : start + angles_per_chunk]
        matrix = astra_projection_matrix(chunk, size, n_detectors, detector_spacing, "line").astype(np.float32)
        # (angles * D, P) -> (angles, D, P): every frame at every angle of the chunk.
        data = np.asarray(matrix @ frames_by_column).reshape(len(chunk), n_detectors, n_frames)
        full_peak = max(full_peak, float(data.max()))
        frame_ids, view_ids = np.nonzero((angle_index >= start) & (angle_index < start + len(chunk)))
        sinogram[frame_ids, view_ids] = data[angle_index[frame_ids, view_ids] - start, :, frame_ids]
    return sinogram, full_peak


def frame_angles(angles, n_frames: int) -> np.ndarray:
    """View angles as a float64 (P, V) array, or ``ValueError`` saying what is wrong.

    Parameters
    ----------
    angles : array_like, shape (P, V) or (P,)
        View angles per frame in radians.
    n_frames : int
        The number of frames ``P`` the angles must match.
    """
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim == 1:
        angles = angles[:, None]
    if angles.ndim != 2 or angles.shape[0] != n_frames or angles.shape[1] < 1:
        raise ValueError(f"angles must have shape (P, V) with P = {n_frames} frames, got {angles.shape}")
    if not np.all(np.isfinite(angles)):
        raise ValueError("angles contain NaN or infinite values")
    return angles


def simulate_tomography(
    images,
    angles,
    noise: float = 5e-3,
    seed: int = 0,
    detector_spacing: float = 1.0,
    n_detectors: int | None = None,
) -> Measurements:
    """Dynamic parallel-beam projections of an image sequence, with Gaussian noise.

    Parameters
    ----------
    images : array_like, shape (P, N, N)
        Real image sequence; pixels outside the inscribed circle are not seen (the
        support of :class:`imaging.operators.DynamicTomography`).
    angles : array_like, shape (P, V) or (P,)
        View angles per frame in radians (see :func:`imaging.schedules.view_angles`).
    noise : float
        Relative noise level: the noise std is ``noise * max(g_full)`` with ``g_full``
        every frame projected at *all* ``P * V`` angles of the schedule.
    seed : int
        Seed of ``numpy.random.default_rng`` for the noise.
    detector_spacing : float
        Detector bin width in pixel units.
    n_detectors : int, optional
        Detector bins ``D`` (default ``N``).

    Returns
    -------
    Measurements
        ``sinogram`` float32 (P, V, D) equal to ``DynamicTomography(angles, (N, N),
        D, detector_spacing).forward(images)`` plus noise, ``ground_truth`` = images
        (float32), ``noise_std`` = the absolute noise std.
    """
    images = _check_images(images, square=True)
    noise = _check_noise(noise)
    angles = frame_angles(angles, images.shape[0])
    size = images.shape[1]
    n_detectors = size if n_detectors is None else int(n_detectors)
    if n_detectors < 1:
        raise ValueError(f"n_detectors must be positive, got {n_detectors}")
    detector_spacing = float(detector_spacing)
    if not math.isfinite(detector_spacing) or detector_spacing <= 0:
        raise ValueError(f"detector_spacing must be positive, got {detector_spacing}")
    sinogram, full_peak = _project_all_angles(images, angles, n_detectors, detector_spacing)
    noise_std = noise * max(full_peak, 0.0)
    if noise_std > 0:
        rng = np.random.default_rng(seed)
        sinogram += (noise_std * rng.standard_normal(sinogram.shape)).astype(np.float32)
    return Measurements(
        modality="tomography",
        image_shape=(size, size),
        sinogram=sinogram,
        angles=angles,
        detector_spacing=detector_spacing,
        ground_truth=images,
        noise_std=noise_std,
    )


def _check_coil_maps(coil_maps) -> np.ndarray | None:
    if coil_maps is None:
        return None
    coil_maps = np.asarray(coil_maps)
    if coil_maps.dtype.kind not in "biufc":
        raise ValueError(f"coil_maps must be numeric, got dtype {coil_maps.dtype}")
    return coil_maps.astype(np.complex64, copy=False)


def _mri_noise(shape, sigma: float, seed: int) -> np.ndarray:
    """Circular complex Gaussian noise with ``E|n|^2 = sigma^2`` (std ``sigma / sqrt(2)`` per part)."""
    rng = np.random.default_rng(seed)
    component_std = sigma / math.sqrt(2.0)
    return (component_std * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(np.complex64)


def _full_kspace_peak(images: np.ndarray, coil_maps) -> float:
    """``max |k_full|``: the fully sampled Cartesian k-space of every frame and coil."""
    maps = torch.ones((1, *images.shape[1:]), dtype=torch.complex64) if coil_maps is None else torch.from_numpy(coil_maps)
    with torch.no_grad():
        return float(fft2c(maps[None] * torch.from_numpy(images)[:, None]).abs().max())


def simulate_mri(images, mask, coil_maps=None, noise: float = 5e-3, seed: int = 0) -> Measurements:
    """Undersampled Cartesian k-space of an image sequence, with complex Gaussian noise.

    Parameters
    ----------
    images : array_like, shape (P, H, W)
        Image sequence, real or complex (magnitude and phase, see
        :func:`imaging.phantoms.cardiac_phase`).
    mask : array_like bool, shape (P, H, W)
        Sampled k-space locations per frame (see :func:`imaging.schedules.kt_mask`).
    coil_maps : array_like complex, shape (C, H, W), optional
        Coil sensitivities; a single coil of unit sensitivity when omitted.
    noise : float
        Relative noise level: ``sigma = noise * max |k_full|`` with ``k_full`` the fully
        sampled k-space of every frame and coil. The noise is circular complex Gaussian
        with ``E|n|^2 = sigma^2``, i.e. std ``sigma / sqrt(2)`` in each of the real and
        imaginary parts; ``noise_std`` stores ``sigma``.
    seed : int
        Seed of ``numpy.random.default_rng`` for the noise.

    Returns
    -------
    Measurements
        ``kspace`` complex64 (P, C, H, W) equal to ``DynamicMRI(mask, coil_maps)`` applied
        to the images (zero-filled) plus noise on the sampled entries, exactly zero elsewhere;
        ``ground_truth`` the magnitude of the images (float32).
    """
    images = _check_images(images, square=False, allow_complex=True)
    noise = _check_noise(noise)
    mask = np.asarray(mask)
    if mask.shape != images.shape:
        raise ValueError(f"mask must have the shape of the images {images.shape}, got {mask.shape}")
    coil_maps = _check_coil_maps(coil_maps)
    operator = DynamicMRI(mask, coil_maps, complex_image=images.dtype.kind == "c")
    with torch.no_grad():
        kspace = operator.zero_filled(operator.forward(torch.from_numpy(images))).numpy()
    sigma = noise * _full_kspace_peak(images, coil_maps)
    if sigma > 0:
        kspace += _mri_noise(kspace.shape, sigma, seed) * operator.mask[:, None].numpy()
    return Measurements(
        modality="mri",
        image_shape=images.shape[1:],
        kspace=kspace,
        mask=operator.mask.numpy(),
        coil_maps=coil_maps,
        ground_truth=np.abs(images),
        noise_std=sigma,
    )


def simulate_radial_mri(images, trajectory, coil_maps=None, noise: float = 5e-3, seed: int = 0) -> Measurements:
    """Non-Cartesian (e.g. radial) k-space of an image sequence, with complex Gaussian noise.

    The samples come from :class:`imaging.operators.nufft.DynamicNonCartesianMRI` at a
    higher accuracy (``eps`` 1e-6, upsampling 2) than reconstructions use by default, so
    the data are not made with the reconstruction's own approximation.

    Parameters
    ----------
    images : array_like, shape (P, H, W)
        Image sequence, real or complex.
    trajectory : array_like, shape (P, S, R, 2)
        k-space samples of each frame, (ky, kx) in cycles per pixel (see
        :func:`imaging.operators.nufft.radial_trajectory`).
    coil_maps : array_like complex, shape (C, H, W), optional
    noise, seed :
        As :func:`simulate_mri` (the same ``sigma``: relative to the fully sampled
        Cartesian k-space), on every sample.

    Returns
    -------
    Measurements
        ``kspace`` complex64 (P, C, S, R), ``trajectory`` float64 (P, S, R, 2),
        ``ground_truth`` the magnitude of the images.
    """
    from .operators.nufft import DynamicNonCartesianMRI

    images = _check_images(images, square=False, allow_complex=True)
    noise = _check_noise(noise)
    coil_maps = _check_coil_maps(coil_maps)
    operator = DynamicNonCartesianMRI(trajectory, images.shape[1:], coil_maps, complex_image=True, eps=1e-6,
                                      upsampling=2.0)
    if operator.n_frames != images.shape[0]:
        raise ValueError(f"trajectory has {operator.n_frames} frames, the images {images.shape[0]}")
    with torch.no_grad():
        kspace = operator.forward(torch.from_numpy(images.astype(np.complex64))).numpy()
    sigma = noise * _full_kspace_peak(images, coil_maps)
    if sigma > 0:
        kspace += _mri_noise(kspace.shape, sigma, seed)
    return Measurements(
        modality="mri",
        image_shape=images.shape[1:],
        kspace=kspace,
        trajectory=operator.trajectory,
        coil_maps=coil_maps,
        ground_truth=np.abs(images),
        noise_std=sigma,
    )


def synthetic_coil_maps(n_coils: int, shape) -> np.ndarray:
    """Smooth synthetic receive-coil sensitivities, normalised to ``sum_c |S_c|^2 = 1``.

    Coil ``c`` sits on a circle around the field of view at angle ``2 pi c / C``; its
    magnitude is a broad Gaussian around that point and its phase a gentle ramp towards
    it plus a constant offset per coil. Normalising the root-sum-of-squares to one
    everywhere keeps the multi-coil operator as well scaled as a single coil.

    Parameters
    ----------
    n_coils : int
        Number of coils ``C >= 1``.
    shape : tuple (H, W)
        Image grid.

    Returns
    -------
    numpy.ndarray
        complex64 (C, H, W).
    """
    if isinstance(n_coils, bool) or not isinstance(n_coils, (int, np.integer)) or n_coils < 1:
        raise ValueError(f"n_coils must be a positive integer, got {n_coils!r}")
    shape = tuple(np.atleast_1d(shape).tolist())
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape must be two positive integers (H, W), got {shape!r}")
    height, width = shape
    # Coordinates in units of the half-extent of the grid: the image spans [-1, 1].
    y = (np.arange(height) - (height - 1) / 2.0) / max(height / 2.0, 1.0)
    x = (np.arange(width) - (width - 1) / 2.0) / max(width / 2.0, 1.0)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    maps = np.empty((n_coils, height, width), dtype=np.complex128)
    for coil in range(n_coils):
        direction = 2.0 * math.pi * coil / n_coils
        centre_y, centre_x = 1.5 * math.sin(direction), 1.5 * math.cos(direction)
        distance_sq = (yy - centre_y) ** 2 + (xx - centre_x) ** 2
        magnitude = np.exp(-distance_sq / (2.0 * 1.2**2))
        phase = 0.5 * (yy * math.sin(direction) + xx * math.cos(direction)) + direction
        maps[coil] = magnitude * np.exp(1j * phase)
    maps /= np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
    return maps.astype(np.complex64)


def simulate(
    phantom: str,
    frames: int = 64,
    size: int = 128,
    modality: str | None = None,
    views_per_frame: int = 1,
    schedule: str | None = None,
    noise: float = 5e-3,
    seed: int = 0,
    lines_per_frame: int = 8,
    mask_pattern: str = "variable-density",
    center_lines: int = 4,
    coils: int | None = None,
    detector_spacing: float = 1.0,
    n_detectors: int | None = None,
    slices: int | None = None,
    trajectory: str = "cartesian",
    spokes_per_frame: int = 8,
    readout_samples: int | None = None,
    phase: bool | None = None,
) -> Measurements:
    """Simulate a dynamic acquisition of a built-in phantom (``imaging simulate``).

    Parameters
    ----------
    phantom : str
        A name of :data:`imaging.phantoms.PHANTOMS` (e.g. "walnut", "cardiac").
    frames, size : int
        Frames ``P`` and grid size ``N`` of the phantom (P, N, N).
    modality : {"tomography", "mri"}, optional
        Default: "mri" for the "cardiac" phantom, "tomography" otherwise.
    views_per_frame, schedule :
        Tomography: views per frame and view-angle schedule
        (:func:`imaging.schedules.view_angles`; default "bit-reversal"). Radial MRI: the
        schedule of the spoke angles (default "golden-angle").
    noise : float
        Relative noise level (see :func:`simulate_tomography`, :func:`simulate_mri`).
    seed : int
        Seeds the phantom, the random schedule or mask, and the noise.
    lines_per_frame, mask_pattern, center_lines :
        MRI: k-t mask (:func:`imaging.schedules.kt_mask`) on the (N, N) grid.
    coils : int, optional
        MRI: number of coils (default :data:`DEFAULT_MRI_COILS`, as a cardiac receive
        array); more than one uses :func:`synthetic_coil_maps`, which the measurements
        carry as ``coil_maps`` (drop them to have them estimated from the data).
    trajectory : {"cartesian", "radial"}
        MRI: whole phase-encode lines of a k-t mask, or radial spokes
        (:func:`imaging.operators.nufft.radial_trajectory`); others are refused.
    spokes_per_frame, readout_samples :
        Radial MRI: spokes S per frame and samples R per spoke (default ``2 N``: the
        readout oversampled twice, as scanners do, which the gridding baseline needs).
    phase : bool, optional
        MRI: give the images the smooth, drifting phase of
        :func:`imaging.phantoms.cardiac_phase` (complex images; the ground truth stays
        the magnitude). Default True: a scanner's images carry phase.
    detector_spacing, n_detectors :
        Tomography detector geometry (bin width in pixels, bins; default ``N`` bins).
    slices : int, optional
        Simulate a dynamic volume of this many slices ``Z`` instead: the phantom is
        :func:`imaging.phantoms.volume`, every slice is measured with the same schedule
        (tomography: the same view angles, one detector row per slice; MRI: the same k-t
        mask) and the noise is relative to the whole volume's full data
        (:func:`imaging.simulate.simulate_volume_tomography`,
        :func:`imaging.simulate.simulate_volume_mri`).

    Returns
    -------
    Measurements
        With ``ground_truth`` (P, N, N) float32 and ``noise_std``; for ``slices``,
        ``image_shape`` (Z, N, N) and ``ground_truth`` (P, Z, N, N).
    """
    from .operators.nufft import radial_trajectory
    from .phantoms import cardiac_phase, get_phantom, volume
    from .schedules import kt_mask, view_angles

    if modality is None:
        modality = "mri" if phantom == "cardiac" else "tomography"
    if modality not in ("tomography", "mri"):
        raise ValueError(f"modality must be 'tomography' or 'mri', got {modality!r}")
    coils = DEFAULT_MRI_COILS if coils is None else coils
    phase = True if phase is None else bool(phase)
    if isinstance(coils, bool) or not isinstance(coils, (int, np.integer)) or coils < 1:
        raise ValueError(f"coils must be a positive integer, got {coils!r}")
    if trajectory not in TRAJECTORIES:
        raise ValueError(f"unknown trajectory {trajectory!r}; choose one of: {', '.join(TRAJECTORIES)}")
    if slices is not None and modality == "mri" and trajectory != "cartesian":
        raise ValueError("volumes are simulated with Cartesian sampling only")
    _check_simulation_memory(phantom, frames, size, 1 if slices is None else slices, modality, coils,
                             views_per_frame, n_detectors)
    if slices is None:
        images = get_phantom(phantom)(frames=frames, size=size, seed=seed)
        measure_tomography, measure_mri = simulate_tomography, simulate_mri
    else:
        images = volume(phantom, frames=frames, size=size, slices=slices, seed=seed)
        measure_tomography, measure_mri = simulate_volume_tomography, simulate_volume_mri
    if modality == "tomography":
        angles = view_angles(schedule or "bit-reversal", frames, views_per_frame, seed=seed)
        return measure_tomography(
            images, angles, noise=noise, seed=seed, detector_spacing=detector_spacing, n_detectors=n_detectors
        )
    if phase:
        smooth_phase = np.exp(1j * cardiac_phase(frames=frames, size=size, seed=seed))
        images = images * (smooth_phase if slices is None else smooth_phase[:, None])
    coil_maps = synthetic_coil_maps(coils, (size, size)) if coils > 1 else None
    if trajectory == "radial":
        angles = view_angles(schedule or "golden-angle", frames, spokes_per_frame, seed=seed)
        samples = 2 * size if readout_samples is None else readout_samples
        return simulate_radial_mri(
            images, radial_trajectory(angles, samples), coil_maps=coil_maps, noise=noise, seed=seed
        )
    mask = kt_mask(mask_pattern, frames, (size, size), lines_per_frame, center_lines=center_lines, seed=seed)
    return measure_mri(images, mask, coil_maps=coil_maps, noise=noise, seed=seed)


def _check_simulation_memory(phantom: str, frames, size, slices, modality: str, coils: int, views_per_frame,
                             n_detectors) -> None:
    """Refuse a simulation that cannot fit the memory available, before the phantom is drawn."""
    from ._limits import check_memory

    n_detectors = size if n_detectors is None else n_detectors
    for name, value in (("frames", frames), ("size", size), ("slices", slices), ("views_per_frame", views_per_frame),
                        ("n_detectors", n_detectors)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    frames, size, slices = int(frames), int(size), int(slices)
    if modality == "tomography":
        # The images, and the sinogram with its angles (float32 bins, a float64 angle per view).
        need = _SIMULATION_BYTES_PER_PIXEL["tomography"] * frames * slices * size**2
        need += frames * int(views_per_frame) * (slices * int(n_detectors) * 4 + 8)
    else:
        per_pixel = _SIMULATION_BYTES_PER_PIXEL["mri_fixed"] + coils * _SIMULATION_BYTES_PER_PIXEL["mri_per_coil"]
        need = per_pixel * frames * slices * size**2
    shape = f"{frames} frames of {size}x{size}" + (f" x {slices} slices" if slices > 1 else "")
    check_memory(need, f"simulating {phantom} ({shape})", hint="use fewer frames, views, slices or a smaller size")


# -- time-varying volumes (P, Z, N, N), measured slice by slice ---------------------------
def _check_volume(volume) -> np.ndarray:
    volume = np.asarray(volume)
    if volume.ndim != 4 or min(volume.shape) < 1:
        raise ValueError(f"volume must have shape (P, Z, N, N), got {volume.shape}")
    return volume


def _slices_as_frames(volume: np.ndarray) -> np.ndarray:
    """(P, Z, H, W) -> (Z * P, H, W), slice-major: frames of slice 0, then slice 1, ..."""
    frames, n_slices, height, width = volume.shape
    return np.ascontiguousarray(volume.transpose(1, 0, 2, 3)).reshape(n_slices * frames, height, width)


def _frames_as_slices(stack: np.ndarray, n_slices: int) -> np.ndarray:
    """Inverse of :func:`_slices_as_frames` on the leading axis: (Z * P, ...) -> (P, Z, ...)."""
    per_slice = stack.reshape(n_slices, stack.shape[0] // n_slices, *stack.shape[1:])
    return np.ascontiguousarray(np.swapaxes(per_slice, 0, 1))


def simulate_volume_tomography(
    volume,
    angles,
    noise: float = 5e-3,
    seed: int = 0,
    detector_spacing: float = 1.0,
    n_detectors: int | None = None,
) -> Measurements:
    """Dynamic parallel-beam projections of a time-varying volume, slice by slice.

    Every slice is measured at the same angles ``angles[p]`` at time p (one detector row
    per slice). The noise is i.i.d. Gaussian with std ``noise`` times the maximum of the
    full (all-angle) projection data of the *whole volume*, so every slice carries the
    same absolute noise level (:func:`imaging.simulate.simulate_tomography` applied to
    the Z * P frames of all slices at once).

    Parameters
    ----------
    volume : array_like, shape (P, Z, N, N)
        Real time-varying volume.
    angles : array_like, shape (P, V) or (P,)
        View angles per frame in radians, shared by all slices.
    noise, seed, detector_spacing, n_detectors :
        As :func:`imaging.simulate.simulate_tomography`.

    Returns
    -------
    Measurements
        A volume: ``sinogram`` float32 (P, V, Z, D), ``angles`` (P, V), ``image_shape``
        (Z, N, N), ``ground_truth`` float32 (P, Z, N, N), ``noise_std`` absolute.
    """
    volume = _check_volume(volume)
    frames, n_slices = volume.shape[:2]
    angles = frame_angles(angles, frames)
    stacked = simulate_tomography(
        _slices_as_frames(volume),
        np.tile(angles, (n_slices, 1)),
        noise=noise,
        seed=seed,
        detector_spacing=detector_spacing,
        n_detectors=n_detectors,
    )
    # (Z*P, V, D) -> (P, Z, V, D) -> (P, V, Z, D)
    sinogram = np.ascontiguousarray(_frames_as_slices(stacked.sinogram, n_slices).transpose(0, 2, 1, 3))
    return Measurements(
        modality="tomography",
        image_shape=(n_slices, *stacked.image_shape),
        sinogram=sinogram,
        angles=angles,
        detector_spacing=stacked.detector_spacing,
        ground_truth=_frames_as_slices(stacked.ground_truth, n_slices),
        noise_std=stacked.noise_std,
    )


def simulate_volume_mri(volume, mask, coil_maps=None, noise: float = 5e-3, seed: int = 0) -> Measurements:
    """Undersampled multi-slice Cartesian k-space of a time-varying volume.

    The noise is circular complex Gaussian with ``E|n|^2 = sigma^2``, ``sigma = noise``
    times the maximum of the fully sampled k-space of the *whole volume* (every frame,
    slice and coil), on the sampled entries only (:func:`imaging.simulate.simulate_mri`
    applied to the Z * P frames of all slices at once).

    Parameters
    ----------
    volume : array_like, shape (P, Z, H, W)
        Time-varying volume, real or complex.
    mask : array_like bool, shape (P, H, W) or (P, Z, H, W)
        Sampled k-space locations per frame, shared by all slices or per slice.
    coil_maps : array_like complex, shape (C, H, W), optional
        Coil sensitivities shared by all slices; one unit coil when omitted.
    noise, seed :
        As :func:`imaging.simulate.simulate_mri`.

    Returns
    -------
    Measurements
        A volume: ``kspace`` complex64 (P, Z, C, H, W), ``mask`` as given, ``image_shape``
        (Z, H, W), ``ground_truth`` float32 (P, Z, H, W), ``noise_std`` = sigma.
    """
    volume = _check_volume(volume)
    frames, n_slices, height, width = volume.shape
    mask = np.asarray(mask)
    if mask.shape == (frames, height, width):
        per_frame_mask = np.tile(mask, (n_slices, 1, 1))
    elif mask.shape == (frames, n_slices, height, width):
        per_frame_mask = _slices_as_frames(mask)
    else:
        raise ValueError(
            f"mask must have shape {(frames, height, width)} (shared by all slices) or "
            f"{(frames, n_slices, height, width)} (per slice), got {mask.shape}"
        )
    stacked = simulate_mri(_slices_as_frames(volume), per_frame_mask, coil_maps=coil_maps, noise=noise, seed=seed)
    return Measurements(
        modality="mri",
        image_shape=(n_slices, height, width),
        kspace=_frames_as_slices(stacked.kspace, n_slices),
        mask=stacked.mask[:frames] if mask.ndim == 3 else _frames_as_slices(stacked.mask, n_slices),
        coil_maps=stacked.coil_maps,
        ground_truth=_frames_as_slices(stacked.ground_truth, n_slices),
        noise_std=stacked.noise_std,
    )


def simulate_volume(phantom: str, frames: int = 64, size: int = 128, slices: int = 8, **options) -> Measurements:
    """Simulate a dynamic volume acquisition of a built-in phantom (``imaging simulate --slices``).

    The same as :func:`imaging.simulate.simulate` with ``slices`` (see there; ``options``
    are its other parameters).

    Returns
    -------
    Measurements
        A volume with ``image_shape`` (Z, N, N), ``ground_truth`` float32 (P, Z, N, N)
        and ``noise_std``.
    """
    return simulate(phantom, frames=frames, size=size, slices=slices, **options)
