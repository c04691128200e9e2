"""Acquisition simulation: dynamic phantom -> noisy measurements (docs/design.md §3).

Noise follows the paper's protocol: i.i.d. Gaussian with a standard deviation relative
to the peak of the *full* data, i.e. the data every frame would give if it were measured
completely (tomography: at all ``P * V`` angles of the schedule; MRI: the whole k-space
grid of every coil). The relative level therefore means the same for any object
amplitude and any undersampling.

Two protocols (``simulate(..., protocol=...)``):

- ``"fine-grid"`` (honest): the phantom is rendered on a grid ``FINE_GRID_FACTOR``
  times finer than the reconstruction grid N and measured with a different
  discretisation than the reconstruction operators use: tomography with ASTRA's
  ``strip`` projector (pixel-strip intersection areas) on the fine grid, detector bins
  as wide as the reconstruction's; MRI as the central N x N of the fine grid's k-space
  (band-limited data, not the N-grid DFT). The ground truth is the fine image
  block-averaged to N. No reconstruction operator can reproduce the data exactly.
- ``"inverse-crime"`` (the paper's): the data are made by the reconstruction operator
  itself on the reconstruction grid (ASTRA's ``line`` projector; the N-grid DFT).
  Flattering; kept for comparison with the paper only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from ._grids import block_average
from .measurements import Measurements
from .operators import DynamicMRI, disk_mask, fft2c
from .operators.geometry import ProjectionGeometry
from .operators.tomography import astra_projection_matrix

#: MRI sampling trajectories that :func:`simulate` knows.
TRAJECTORIES = ("cartesian", "radial")

#: Receive coils of a simulated MRI acquisition by default (a cardiac array's order).
DEFAULT_MRI_COILS = 8

#: Simulation protocols of :func:`simulate` and what they mean (see the module docstring).
PROTOCOLS = {
    "fine-grid": "fine-grid protocol (rendered at 2N, another discretisation, scored at N: no inverse crime)",
    "inverse-crime": "the paper's inverse-crime protocol (data made by the reconstruction operator)",
}

#: How much finer than the reconstruction grid the "fine-grid" protocol renders.
FINE_GRID_FACTOR = 2

#: Peak bytes per image pixel (frame x slice x N x N) of a simulation: the phantom and its
#: float64 temporaries, the masked copy and the projections (tomography), or per coil the
#: coil images, the full and sampled k-space and the complex noise (MRI). Measured peak RSS
#: (walnut, shepp_logan, material, cardiac at P = 32-64, N = 128-256, 1 and 4 coils):
#: 49-72 bytes/pixel for tomography, 105 + 58 per extra coil for MRI, first-use buffers included.
_SIMULATION_BYTES_PER_PIXEL = {"tomography": 96, "mri_fixed": 64, "mri_per_coil": 64}

#: Upper bound on the entries of one all-angle projection matrix built at once (about
#: 12 MB with its indices); larger angle sets are projected chunk by chunk. ASTRA holds
#: Python's GIL while it builds a chunk (up to about 50 ms at this size on a busy
#: 2-core machine), so a GUI simulating in a worker thread stays responsive only if a
#: chunk stays this small.
_MATRIX_ENTRIES_PER_CHUNK = 1_000_000


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


def _check_grid_factor(grid_factor, fine_shape) -> int:
    """``grid_factor`` as an int >= 1 that divides both trailing sides of ``fine_shape``."""
    if isinstance(grid_factor, bool) or not isinstance(grid_factor, (int, np.integer)) or grid_factor < 1:
        raise ValueError(f"grid_factor must be a positive integer, got {grid_factor!r}")
    if any(side % grid_factor for side in fine_shape[-2:]):
        raise ValueError(f"grid_factor {grid_factor} must divide the image sides {tuple(fine_shape[-2:])}")
    return int(grid_factor)


def _weights_per_ray(size: int, detector_spacing: float, projector: str) -> float:
    """Upper estimate of ASTRA's nonzero weights on one ray through a size x size grid."""
    if projector != "strip":
        return 2.0 * size
    # A strip of width w crosses about (w + 2) pixels per row it passes.
    return (detector_spacing + 2.0) * 2.0 * size


def _project_all_angles(images, angles, geometry: ProjectionGeometry, projector: str = "line", progress=None):
    """Noiseless sinogram at the scheduled angles and the peak of the all-angle data.

    Every frame is projected at every distinct angle of the schedule with ASTRA's CPU
    ``projector`` of the ``geometry`` on the inscribed disk ("line": the weights
    ``DynamicTomography`` uses by default, so the measured views are a subset of these
    rows and come out of the same products).

    Returns
    -------
    sinogram : numpy.ndarray
        float32 (P, V, D).
    full_peak : float
        Maximum of the (P, P*V, D) all-angle data.

    ``progress(done, total)``, when given, is called after each chunk of angles.
    """
    n_frames, size, _ = images.shape
    n_detectors = geometry.n_detectors
    unique_angles, angle_index = np.unique(angles.ravel(), return_inverse=True)
    angle_index = angle_index.reshape(angles.shape)
    frames_by_column = np.ascontiguousarray((images * disk_mask(size)).reshape(n_frames, -1).T)
    sinogram = np.empty((*angles.shape, n_detectors), dtype=np.float32)
    entries_per_angle = _weights_per_ray(size, geometry.detector_spacing, projector) * n_detectors
    angles_per_chunk = max(1, int(_MATRIX_ENTRIES_PER_CHUNK // entries_per_angle))
    full_peak = -math.inf
    for start in range(0, len(unique_angles), angles_per_chunk):
        chunk = unique_angles[start : start + angles_per_chunk]
        matrix = astra_projection_matrix(chunk, size, geometry, projector).astype(np.float32)
        # (angles * D, P) -> (angles, D, P): every frame at every angle of the chunk.
        data = np.asarray(matrix @ frames_by_column).reshape(len(chunk), n_detectors, n_frames)
        full_peak = max(full_peak, float(data.max()))
        frame_ids, view_ids = np.nonzero((angle_index >= start) & (angle_index < start + len(chunk)))
        sinogram[frame_ids, view_ids] = data[angle_index[frame_ids, view_ids] - start, :, frame_ids]
        if progress is not None:
            progress(start + len(chunk), len(unique_angles))
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
    geometry: str = "parallel",
    center_offset: float = 0.0,
    source_origin: float | None = None,
    origin_detector: float | None = None,
    projector: str = "line",
    progress: Callable[[int, int], None] | None = None,
    grid_factor: int = 1,
) -> Measurements:
    """Dynamic tomographic projections of an image sequence, with Gaussian noise.

    Parameters
    ----------
    images : array_like, shape (P, F*N, F*N)
        Real image sequence on a grid ``F = grid_factor`` times finer than the
        reconstruction grid N; pixels outside the inscribed circle are not seen (the
        support of :class:`imaging.operators.DynamicTomography`).
    angles : array_like, shape (P, V) or (P,)
        View angles per frame in radians (see :func:`imaging.schedules.view_angles`).
    noise : float
        Relative noise level: the noise std is ``noise * max(g_full)`` with ``g_full``
        every frame projected at *all* ``P * V`` angles of the schedule (by the
        projector that makes the data).
    seed : int
        Seed of ``numpy.random.default_rng`` for the noise.
    detector_spacing : float
        Detector bin width in pixels of the reconstruction grid (at the detector, for a
        fan beam).
    n_detectors : int, optional
        Detector bins ``D``; by default the fewest that see the inscribed disk from every
        angle (:meth:`ProjectionGeometry.covering_detectors`; ``N`` for centred parallel
        beam with unit bins).
    geometry, center_offset, source_origin, origin_detector :
        The projection geometry (:class:`imaging.operators.geometry.ProjectionGeometry`):
        "parallel" or "fan" (with its source-to-axis and axis-to-detector distances in
        pixels), and where the rotation axis projects, in bins from the detector centre.
    projector : {"line", "linear", "strip"}
        ASTRA projector of the simulation; another one than the reconstruction's (e.g.
        "strip", on a finer grid) avoids the "inverse crime" of measuring with the model.
    progress : callable, optional
        ``progress(done, total)`` after each chunk of the distinct view angles has been
        projected (the bulk of the work); an exception it raises stops the simulation
        (how a GUI cancels it).
    grid_factor : int
        1: the images are on the reconstruction grid. F > 1: they are F times finer;
        they are projected there (all distances of the geometry in fine pixels), the
        line integrals are given in reconstruction-grid pixels and the ground truth is
        the images block-averaged to N. With another projector than the
        reconstruction's ("strip") this avoids the inverse crime (the "fine-grid"
        protocol of :func:`simulate`).

    Returns
    -------
    Measurements
        ``sinogram`` float32 (P, V, D) plus noise — for ``grid_factor`` 1 and the "line"
        projector equal to ``DynamicTomography(angles, (N, N), D, detector_spacing,
        geometry=..., ...).forward(images)`` — ``ground_truth`` = the images
        block-averaged to (P, N, N) float32, ``noise_std`` = the absolute noise std, and
        the geometry keys.
    """
    images = _check_images(images, square=True)
    noise = _check_noise(noise)
    grid_factor = _check_grid_factor(grid_factor, images.shape)
    angles = frame_angles(angles, images.shape[0])
    size = images.shape[1] // grid_factor
    detector_spacing = float(detector_spacing)
    if not math.isfinite(detector_spacing) or detector_spacing <= 0:
        raise ValueError(f"detector_spacing must be positive, got {detector_spacing}")
    if n_detectors is None:
        n_detectors = ProjectionGeometry.covering_detectors(
            size, detector_spacing, center_offset, source_origin, origin_detector
        )
    projection_geometry = ProjectionGeometry(
        int(n_detectors), detector_spacing, geometry, center_offset, source_origin, origin_detector
    )
    projection_geometry.check_image_size(size)
    projection_geometry.astra_projector(projector)  # refuses a projector the geometry lacks
    fine_geometry = projection_geometry
    if grid_factor > 1:
        fine_geometry = ProjectionGeometry(
            int(n_detectors),
            detector_spacing * grid_factor,
            geometry,
            center_offset,  # in detector bins: the same on any grid
            None if source_origin is None else source_origin * grid_factor,
            None if origin_detector is None else origin_detector * grid_factor,
        )
    sinogram, full_peak = _project_all_angles(images, angles, fine_geometry, projector, progress)
    # Line integrals in fine pixels -> in pixels of the reconstruction grid.
    sinogram /= grid_factor
    full_peak /= grid_factor
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
        ground_truth=block_average(images, grid_factor),
        noise_std=noise_std,
        geometry=geometry,
        center_offset=float(center_offset),
        source_origin=source_origin,
        origin_detector=origin_detector,
    )


def simulate_raw_counts(
    line_integrals,
    flat_level: float = 1e5,
    column_gain: float = 0.06,
    dark_level: float = 100.0,
    dark_noise: float = 2.0,
    flats: int = 20,
    darks: int = 10,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw detector counts of a CT acquisition: projections, flat fields and dark fields.

    A detector pixel in column ``c`` receives ``flat_level * gain[c]`` photons per frame
    without the sample (``gain`` drawn uniformly within ``1 +- column_gain``, the same in
    every frame, as a detector's response is) and ``flat_level * gain[c] * exp(-g)`` through
    a line integral ``g``; it counts them with Poisson noise and adds a dark signal
    (Gaussian around ``dark_level`` with std ``dark_noise``, rounded). Flat-field
    correction removes the gain; the Poisson noise remains.

    Parameters
    ----------
    line_integrals : array_like
        (n, rows, cols) line integrals of the projections, >= 0.
    flat_level : float
        Mean counts of the beam without sample.
    column_gain : float
        Relative spread of the columns' gains.
    dark_level, dark_noise : float
        Dark signal mean and std (counts).
    flats, darks : int
        Number of flat and dark frames.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    counts, flat_fields, dark_fields : numpy.ndarray
        uint32 (n, rows, cols), (flats, rows, cols), (darks, rows, cols).
    """
    line_integrals = np.asarray(line_integrals, dtype=np.float64)
    if line_integrals.ndim != 3 or not np.all(np.isfinite(line_integrals)):
        raise ValueError(f"line_integrals must be a finite (n, rows, cols) array, got shape {line_integrals.shape}")
    rng = np.random.default_rng(seed)
    n_rows, n_cols = line_integrals.shape[1:]
    beam = flat_level * (1.0 + column_gain * rng.uniform(-1.0, 1.0, n_cols))

    def dark(n: int) -> np.ndarray:
        return np.round(rng.normal(dark_level, dark_noise, (n, n_rows, n_cols)))

    counts = rng.poisson(beam * np.exp(-np.maximum(line_integrals, 0.0))) + dark(len(line_integrals))
    flat_fields = rng.poisson(np.broadcast_to(beam, (flats, n_rows, n_cols))) + dark(flats)
    return counts.astype(np.uint32), flat_fields.astype(np.uint32), dark(darks).clip(0).astype(np.uint32)


@dataclasses.dataclass
class RawTomography:
    """A simulated raw CT acquisition and what it should reconstruct to.

    Attributes
    ----------
    counts, flats, darks : numpy.ndarray
        uint32 (P * V, 1, D) projection counts in acquisition order, (F, 1, D) flat and
        (K, 1, D) dark fields: one detector row.
    line_integrals : numpy.ndarray
        float32 (P, V, D) the exact (noise-free) line integrals behind the counts.
    angles : numpy.ndarray
        float64 (P, V) radians.
    ground_truth : numpy.ndarray
        float32 (P, N, N) attenuation per pixel on the reconstruction grid.
    geometry : dict
        The measurement-file geometry keys (``geometry``, ``center_offset``,
        ``detector_spacing``, fan distances).
    """

    counts: np.ndarray
    flats: np.ndarray
    darks: np.ndarray
    line_integrals: np.ndarray
    angles: np.ndarray
    ground_truth: np.ndarray
    geometry: dict

    def ideal_measurements(self) -> Measurements:
        """The exact line integrals with the true geometry: the ideal sinogram of the object."""
        size = self.ground_truth.shape[-1]
        return Measurements(
            modality="tomography",
            image_shape=(size, size),
            sinogram=self.line_integrals,
            angles=self.angles,
            ground_truth=self.ground_truth,
            noise_std=0.0,
            **self.geometry,
        )


def simulate_raw_tomography(
    phantom: str,
    frames: int = 64,
    size: int = 128,
    views_per_frame: int = 1,
    schedule: str = "bit-reversal",
    seed: int = 0,
    geometry: str = "parallel",
    center_offset: float = 0.0,
    source_origin: float | None = None,
    origin_detector: float | None = None,
    arc: float | None = None,
    n_detectors: int | None = None,
    oversample: int = 2,
    peak_attenuation: float = 2.5,
    **counting,
) -> RawTomography:
    """A raw acquisition of a built-in phantom, simulated without the "inverse crime".

    The phantom is rendered on a grid ``oversample`` times finer than the reconstruction
    grid and projected there with ASTRA's area-weighting ("strip") projector, or for a fan
    beam with an axis offset the fan-beam line projector, which ASTRA alone offers there,
    on the same detector (all distances scaled to the fine grid); the ground truth is the
    fine phantom averaged over ``oversample`` x ``oversample`` blocks. The attenuation is
    scaled so that the largest line integral is ``peak_attenuation`` (a transmission of
    ``exp(-2.5)`` = 8 % for the default), and :func:`simulate_raw_counts` turns the line
    integrals into counts, flats and darks.

    Parameters
    ----------
    phantom, frames, size, views_per_frame, schedule, seed, geometry, center_offset,
    source_origin, origin_detector, arc, n_detectors :
        As :func:`simulate` (fan-beam defaults: ``source_origin = 2 N``,
        ``origin_detector = N``, a full circle, bins of one pixel at the axis).
    oversample : int
        Refinement of the simulation grid (>= 1).
    peak_attenuation : float
        Largest line integral.
    **counting
        Options of :func:`simulate_raw_counts` (``flat_level``, ``column_gain``, ...).

    Returns
    -------
    RawTomography
    """
    from .phantoms import get_phantom
    from .schedules import view_angles

    if isinstance(oversample, bool) or int(oversample) != oversample or oversample < 1:
        raise ValueError(f"oversample must be a positive integer, got {oversample!r}")
    fan = geometry == "fan"
    if fan:
        source_origin = 2.0 * size if source_origin is None else float(source_origin)
        origin_detector = float(size) if origin_detector is None else float(origin_detector)
    spacing = (source_origin + origin_detector) / source_origin if fan else 1.0
    if n_detectors is None:
        n_detectors = ProjectionGeometry.covering_detectors(size, spacing, center_offset, source_origin, origin_detector)
    angles = view_angles(schedule, frames, views_per_frame, seed=seed, arc=(2 * math.pi if fan else math.pi) if arc is None else arc)
    fine = get_phantom(phantom)(frames=frames, size=size * oversample, seed=seed)
    fan_geometry = {"geometry": "fan", "source_origin": source_origin, "origin_detector": origin_detector} if fan else {}
    projector = "line" if fan and center_offset else "strip"
    measured = simulate_tomography(
        fine,
        angles,
        noise=0.0,
        detector_spacing=spacing,
        n_detectors=n_detectors,
        center_offset=center_offset,
        projector=projector,
        grid_factor=oversample,
        **fan_geometry,
    )
    line_integrals = measured.sinogram
    scale = peak_attenuation / max(float(line_integrals.max()), 1e-12)
    line_integrals *= scale
    truth = measured.ground_truth * scale
    counts, flat_fields, dark_fields = simulate_raw_counts(
        line_integrals.reshape(-1, 1, n_detectors), seed=seed, **counting
    )
    fields = {"geometry": geometry, "center_offset": float(center_offset), "detector_spacing": spacing}
    if fan:
        fields.update(source_origin=source_origin, origin_detector=origin_detector)
    return RawTomography(
        counts, flat_fields, dark_fields, line_integrals.astype(np.float32), angles, truth.astype(np.float32), fields
    )


def _central_kspace(fine_images: torch.Tensor, factor: int) -> torch.Tensor:
    """The central (..., H, W) block of the centred k-space of (..., F*H, F*W) images.

    Scaled and phase-shifted so that, at the frequencies both grids hold, it equals the
    orthonormal centred DFT (:func:`imaging.operators.fft2c`) of the images
    block-averaged to (H, W): the band-limited measurement of the fine object on the
    reconstruction grid.
    """
    fine = fft2c(fine_images)
    if factor == 1:
        return fine
    fine_height, fine_width = fine.shape[-2:]
    height, width = fine_height // factor, fine_width // factor
    top, left = (fine_height - height) // 2, (fine_width - width) // 2
    central = fine[..., top : top + height, left : left + width]
    # The centred DFT's origin is pixel H/2 (F*H/2 on the fine grid); in coarse pixels the
    # fine origin lies (1 - 1/F)/2 closer to the grid centre, a linear phase in k.
    offset = 0.5 * (1.0 - 1.0 / factor)
    k_y = torch.arange(height, dtype=torch.float64) - height // 2
    k_x = torch.arange(width, dtype=torch.float64) - width // 2
    phase = 2.0 * math.pi * offset * (k_y[:, None] / height + k_x[None, :] / width)
    return central * (torch.polar(torch.ones_like(phase), phase) / factor).to(central.dtype)


def simulate_mri(
    images, mask, coil_maps=None, noise: float = 5e-3, seed: int = 0, grid_factor: int = 1
) -> Measurements:
    """Undersampled Cartesian k-space of an image sequence, with complex Gaussian noise.

    Parameters
    ----------
    images : array_like, shape (P, F*H, F*W)
        Image sequence, real or complex (magnitude and phase, see
        :func:`imaging.phantoms.cardiac_phase`), on a grid ``F = grid_factor`` times
        finer than the reconstruction grid (H, W).
    mask : array_like bool, shape (P, H, W)
        Sampled k-space locations per frame (see :func:`imaging.schedules.kt_mask`).
    coil_maps : array_like complex, shape (C, F*H, F*W), optional
        Coil sensitivities on the images' grid; a single coil of unit sensitivity when
        omitted.
    noise : float
        Relative noise level: ``sigma = noise * max |k_full|`` with ``k_full`` the fully
        sampled (H, W) k-space of every frame and coil. The noise is circular complex
        Gaussian with ``E|n|^2 = sigma^2``, i.e. std ``sigma / sqrt(2)`` in each of the
        real and imaginary parts; ``noise_std`` stores ``sigma``.
    seed : int
        Seed of ``numpy.random.default_rng`` for the noise.
    grid_factor : int
        1 (the paper's inverse crime): the k-space is ``DynamicMRI(mask, coil_maps)``
        applied to the images. F > 1 (honest): the k-space is the central (H, W) block
        of the fine images' k-space (band-limited, see :func:`_central_kspace`).

    Returns
    -------
    Measurements
        ``kspace`` complex64 (P, C, H, W), noisy on the sampled entries, exactly zero
        elsewhere; ``ground_truth`` the magnitude of the images block-averaged to
        (P, H, W), float32; ``coil_maps`` the given maps block-averaged to (C, H, W).
    """
    images = _check_images(images, square=False, allow_complex=True)
    noise = _check_noise(noise)
    grid_factor = _check_grid_factor(grid_factor, images.shape)
    mask = np.asarray(mask)
    coarse_shape = (images.shape[0], images.shape[1] // grid_factor, images.shape[2] // grid_factor)
    if mask.shape != coarse_shape:
        raise ValueError(f"mask must have the shape of the images on the reconstruction grid {coarse_shape}, got {mask.shape}")
    coil_maps = _check_coil_maps(coil_maps, images.shape[1:])
    fine_maps = np.ones((1, *images.shape[1:]), np.complex64) if coil_maps is None else coil_maps
    # The reconstruction's operator checks the mask and the (block-averaged) coil maps.
    operator = DynamicMRI(mask, None if coil_maps is None else block_average(coil_maps, grid_factor))
    sampled = operator.mask[:, None]
    with torch.no_grad():
        coil_images = torch.from_numpy(fine_maps)[None] * torch.from_numpy(images)[:, None]
        full_kspace = _central_kspace(coil_images, grid_factor)
        kspace = (full_kspace * sampled).numpy()
    sigma = noise * float(full_kspace.abs().max())
    if sigma > 0:
        kspace += _mri_noise(kspace.shape, sigma, seed) * sampled.numpy()
    return Measurements(
        modality="mri",
        image_shape=coarse_shape[1:],
        kspace=kspace,
        mask=operator.mask.numpy(),
        coil_maps=None if coil_maps is None else operator.coil_maps.numpy(),
        ground_truth=np.abs(block_average(images, grid_factor)),
        noise_std=sigma,
    )


def simulate_radial_mri(
    images, trajectory, coil_maps=None, noise: float = 5e-3, seed: int = 0, grid_factor: int = 1
) -> Measurements:
    """Non-Cartesian (e.g. radial) k-space of an image sequence, with complex Gaussian noise.

    The samples come from :class:`imaging.operators.nufft.DynamicNonCartesianMRI` at a
    higher accuracy (``eps`` 1e-6, upsampling 2) than reconstructions use by default.

    Parameters
    ----------
    images : array_like, shape (P, F*H, F*W)
        Image sequence, real or complex, on a grid ``F = grid_factor`` times finer than
        the reconstruction grid (H, W).
    trajectory : array_like, shape (P, S, R, 2)
        k-space samples of each frame, (ky, kx) in cycles per pixel of the
        reconstruction grid (see :func:`imaging.operators.nufft.radial_trajectory`).
    coil_maps : array_like complex, shape (C, F*H, F*W), optional
    noise, seed :
        As :func:`simulate_mri` (the same ``sigma``: relative to the fully sampled
        Cartesian k-space), on every sample.
    grid_factor : int
        1: the samples of the images on the reconstruction grid. F > 1 (no inverse
        crime): the samples of the fine images at ``k / F`` cycles per fine pixel,
        scaled and phase-shifted like :func:`_central_kspace`, i.e. the band-limited
        measurement of the fine object.

    Returns
    -------
    Measurements
        ``kspace`` complex64 (P, C, S, R), ``trajectory`` float64 (P, S, R, 2),
        ``coil_maps`` block-averaged to (C, H, W), ``ground_truth`` the magnitude of the
        block-averaged images.
    """
    from .operators.nufft import DynamicNonCartesianMRI, check_trajectory

    images = _check_images(images, square=False, allow_complex=True)
    noise = _check_noise(noise)
    grid_factor = _check_grid_factor(grid_factor, images.shape)
    coil_maps = _check_coil_maps(coil_maps, images.shape[1:])
    trajectory = check_trajectory(trajectory, images.shape[0])
    fine = DynamicNonCartesianMRI(
        trajectory / grid_factor, images.shape[1:], coil_maps, complex_image=True, eps=1e-6, upsampling=2.0
    )
    # The fine grid's origin lies (1 - 1/F)/2 coarse pixels from the coarse one (see _central_kspace).
    offset = 0.5 * (1.0 - 1.0 / grid_factor)
    shift = np.exp(2j * np.pi * offset * trajectory.sum(axis=-1)) / grid_factor  # (P, S, R)
    with torch.no_grad():
        kspace = fine.forward(torch.from_numpy(images.astype(np.complex64))).numpy()
        kspace *= shift[:, None].astype(np.complex64)
        coil_images = (fine.coil_maps[None] * torch.from_numpy(images.astype(np.complex64))[:, None])
        sigma = noise * float(_central_kspace(coil_images, grid_factor).abs().max())
    if sigma > 0:
        kspace += _mri_noise(kspace.shape, sigma, seed)
    return Measurements(
        modality="mri",
        image_shape=(images.shape[1] // grid_factor, images.shape[2] // grid_factor),
        kspace=kspace,
        trajectory=trajectory,
        coil_maps=None if coil_maps is None else block_average(coil_maps, grid_factor),
        ground_truth=np.abs(block_average(images, grid_factor)),
        noise_std=sigma,
    )


def _check_coil_maps(coil_maps, shape) -> np.ndarray | None:
    """Coil maps as complex64 (C, H, W) on the images' grid ``shape``, or None."""
    if coil_maps is None:
        return None
    coil_maps = np.asarray(coil_maps)
    if coil_maps.dtype.kind not in "biufc":
        raise ValueError(f"coil_maps must be numeric, got dtype {coil_maps.dtype}")
    if coil_maps.ndim != 3 or coil_maps.shape[1:] != tuple(shape):
        raise ValueError(f"coil_maps must have shape (C, {shape[0]}, {shape[1]}), got {coil_maps.shape}")
    return coil_maps.astype(np.complex64, copy=False)


def _mri_noise(shape, sigma: float, seed: int) -> np.ndarray:
    """Circular complex Gaussian noise with ``E|n|^2 = sigma^2`` (std ``sigma / sqrt(2)`` per part)."""
    rng = np.random.default_rng(seed)
    component_std = sigma / math.sqrt(2.0)
    return (component_std * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(np.complex64)


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
    detector_spacing: float | None = None,
    n_detectors: int | None = None,
    slices: int | None = None,
    geometry: str = "parallel",
    center_offset: float = 0.0,
    source_origin: float | None = None,
    origin_detector: float | None = None,
    arc: float | None = None,
    turns: int | None = None,
    protocol: str = "inverse-crime",
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
        Tomography detector: bin width in pixels at the detector (default 1 for parallel
        beam, the magnification for a fan beam, so that a bin spans one pixel at the
        axis) and bins (default: the fewest that see the inscribed disk from every angle,
        ``N`` for centred parallel beam; see :func:`simulate_tomography`).
    geometry, center_offset, source_origin, origin_detector :
        Tomography geometry (:class:`imaging.operators.geometry.ProjectionGeometry`).
        A fan beam defaults to ``source_origin = 2 N`` and ``origin_detector = N``
        (magnification 1.5).
    arc : float, optional
        Angular range of the schedule in radians: default ``pi`` for parallel beam and
        ``2 pi`` (a full circle) for a fan beam.
    turns : int, optional
        Sweeps of the "interlaced" schedule (default ``min(4, P * V)``).
    slices : int, optional
        Simulate a dynamic volume of this many slices ``Z`` instead: the phantom is
        :func:`imaging.phantoms.volume`, every slice is measured with the same schedule
        (tomography: the same view angles, one detector row per slice; MRI: the same k-t
        mask) and the noise is relative to the whole volume's full data
        (:func:`imaging.simulate.simulate_volume_tomography`,
        :func:`imaging.simulate.simulate_volume_mri`).
    protocol : {"inverse-crime", "fine-grid"}
        "fine-grid" (honest) renders the phantom at ``FINE_GRID_FACTOR * N`` and
        measures it with another discretisation than the reconstruction operators
        (tomography: ASTRA's strip projector; MRI: the central N x N of the fine
        k-space); the ground truth is block-averaged to N. "inverse-crime" (the
        paper's protocol, the default here for compatibility) makes the data with the
        reconstruction operator on the N grid.

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
    if slices is not None and geometry != "parallel":
        raise ValueError(
            f"{geometry}-beam volumes are not supported: the rows of a fan-beam (cone-beam) detector are fan-beam "
            "slices only at the central row"
        )
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {protocol!r}")
    grid_factor = FINE_GRID_FACTOR if protocol == "fine-grid" else 1
    fine_size = grid_factor * size
    _check_simulation_memory(phantom, frames, fine_size, 1 if slices is None else slices, modality, coils,
                             views_per_frame, n_detectors)
    if slices is None:
        images = get_phantom(phantom)(frames=frames, size=fine_size, seed=seed)
        measure_tomography, measure_mri = simulate_tomography, simulate_mri
    else:
        images = volume(phantom, frames=frames, size=fine_size, slices=slices, seed=seed)
        measure_tomography, measure_mri = simulate_volume_tomography, simulate_volume_mri
    if modality == "tomography":
        fan = geometry == "fan"
        if fan:
            source_origin = 2.0 * size if source_origin is None else source_origin
            origin_detector = float(size) if origin_detector is None else origin_detector
        if arc is None:
            arc = 2.0 * math.pi if fan else math.pi
        if detector_spacing is None:
            detector_spacing = (source_origin + origin_detector) / source_origin if fan else 1.0
        angles = view_angles(schedule or "bit-reversal", frames, views_per_frame, seed=seed, arc=arc, turns=turns)
        options = dict(detector_spacing=detector_spacing, n_detectors=n_detectors, center_offset=center_offset)
        if geometry != "parallel":
            options.update(geometry=geometry, source_origin=source_origin, origin_detector=origin_detector)
        if grid_factor > 1:
            # ASTRA's strip projector exists for parallel beam only; a fan beam uses its line projector.
            options.update(grid_factor=grid_factor, projector="strip" if geometry == "parallel" else "line")
        return measure_tomography(images, angles, noise=noise, seed=seed, **options)
    if geometry != "parallel" or center_offset or source_origin is not None or origin_detector is not None:
        raise ValueError("geometry, center_offset, source_origin and origin_detector describe tomography, not mri")
    if phase:
        smooth_phase = np.exp(1j * cardiac_phase(frames=frames, size=fine_size, seed=seed))
        images = images * (smooth_phase if slices is None else smooth_phase[:, None])
    coil_maps = synthetic_coil_maps(coils, (fine_size, fine_size)) if coils > 1 else None
    if trajectory == "radial":
        angles = view_angles(schedule or "golden-angle", frames, spokes_per_frame, seed=seed)
        samples = 2 * size if readout_samples is None else readout_samples
        return simulate_radial_mri(
            images, radial_trajectory(angles, samples), coil_maps=coil_maps, noise=noise, seed=seed,
            grid_factor=grid_factor,
        )
    mask = kt_mask(mask_pattern, frames, (size, size), lines_per_frame, center_lines=center_lines, seed=seed)
    return measure_mri(images, mask, coil_maps=coil_maps, noise=noise, seed=seed, grid_factor=grid_factor)


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
    center_offset: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    grid_factor: int = 1,
    projector: str = "line",
) -> Measurements:
    """Dynamic parallel-beam projections of a time-varying volume, slice by slice.

    Every slice is measured at the same angles ``angles[p]`` at time p (one detector row
    per slice). The noise is i.i.d. Gaussian with std ``noise`` times the maximum of the
    full (all-angle) projection data of the *whole volume*, so every slice carries the
    same absolute noise level (:func:`imaging.simulate.simulate_tomography` applied to
    the Z * P frames of all slices at once).

    Parameters
    ----------
    volume : array_like, shape (P, Z, F*N, F*N)
        Real time-varying volume, slices on a grid ``F = grid_factor`` times finer
        than the reconstruction grid.
    angles : array_like, shape (P, V) or (P,)
        View angles per frame in radians, shared by all slices.
    noise, seed, detector_spacing, n_detectors, center_offset, progress, grid_factor, projector :
        As :func:`imaging.simulate.simulate_tomography` (parallel beam: a fan-beam
        detector's rows are fan-beam slices only at the central row).

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
        center_offset=center_offset,
        progress=progress,
        grid_factor=grid_factor,
        projector=projector,
    )
    # (Z*P, V, D) -> (P, Z, V, D) -> (P, V, Z, D)
    sinogram = np.ascontiguousarray(_frames_as_slices(stacked.sinogram, n_slices).transpose(0, 2, 1, 3))
    return Measurements(
        modality="tomography",
        image_shape=(n_slices, *stacked.image_shape),
        sinogram=sinogram,
        angles=angles,
        detector_spacing=stacked.detector_spacing,
        center_offset=stacked.center_offset,
        ground_truth=_frames_as_slices(stacked.ground_truth, n_slices),
        noise_std=stacked.noise_std,
    )


def simulate_volume_mri(
    volume, mask, coil_maps=None, noise: float = 5e-3, seed: int = 0, grid_factor: int = 1
) -> Measurements:
    """Undersampled multi-slice Cartesian k-space of a time-varying volume.

    The noise is circular complex Gaussian with ``E|n|^2 = sigma^2``, ``sigma = noise``
    times the maximum of the fully sampled k-space of the *whole volume* (every frame,
    slice and coil), on the sampled entries only (:func:`imaging.simulate.simulate_mri`
    applied to the Z * P frames of all slices at once).

    Parameters
    ----------
    volume : array_like, shape (P, Z, F*H, F*W)
        Time-varying volume, real or complex, slices on a grid ``F = grid_factor`` times finer
        than the reconstruction grid (H, W).
    mask : array_like bool, shape (P, H, W) or (P, Z, H, W)
        Sampled k-space locations per frame, shared by all slices or per slice.
    coil_maps : array_like complex, shape (C, F*H, F*W), optional
        Coil sensitivities shared by all slices; one unit coil when omitted.
    noise, seed, grid_factor :
        As :func:`imaging.simulate.simulate_mri`.

    Returns
    -------
    Measurements
        A volume: ``kspace`` complex64 (P, Z, C, H, W), ``mask`` as given, ``image_shape``
        (Z, H, W), ``ground_truth`` float32 (P, Z, H, W), ``noise_std`` = sigma.
    """
    volume = _check_volume(volume)
    grid_factor = _check_grid_factor(grid_factor, volume.shape)
    frames, n_slices = volume.shape[:2]
    height, width = volume.shape[2] // grid_factor, volume.shape[3] // grid_factor
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
    stacked = simulate_mri(
        _slices_as_frames(volume), per_frame_mask, coil_maps=coil_maps, noise=noise, seed=seed, grid_factor=grid_factor
    )
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
