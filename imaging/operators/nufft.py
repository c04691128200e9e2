"""Dynamic non-Cartesian MRI (radial and other trajectories) through the NUFFT.

``forward``: image stack (P, H, W) -> k-space (P, C, S, R) complex64 with

    y[p, c, s, r] = (1 / sqrt(H W)) * sum_x coil_maps[c, x] * x_p[x] * exp(-2 pi i k[p, s, r] . x)

``k`` in cycles per pixel, (ky, kx), within [-1/2, 1/2]; pixel ``(i, j)`` sits at
``x = (i - H // 2, j - W // 2)``, so on a Cartesian grid of ``k`` this is exactly the
orthonormal centred FFT of :class:`imaging.operators.DynamicMRI`. Frame p is measured
along S shots (spokes for radial sampling) of R samples each.

Backend: FINUFFT (Barnett, Magland, af Klinteberg, SIAM J. Sci. Comput. 41, 2019), a
type-2 transform forward and a type-1 transform as the adjoint. The two use the same
spreading kernel, so they are adjoint to single-precision rounding (about 1e-7), while
each approximates the exact non-uniform DFT to ``eps`` (default 1e-4, well below MRI noise
levels; at upsampling 1.25 FINUFFT reaches about 2e-5 at best). FINUFFT was chosen over torchkbnufft after measuring both on the benchmark case
(P = 128, C = 8, N = 128, 8 spokes of 128 samples per frame, one thread): 0.3 s per
forward with FINUFFT at upsampling 1.25 against 3.3 s with torchkbnufft (see
benchmarks/results/mri_operators.md); both are adjoint to about 2e-7. FINUFFT runs on
the CPU: on a CUDA device the operator moves its inputs to the CPU and the results back.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from ..schedules import angular_weights
from ._pool import run_on_threads
from .base import LinearOperator, linear_map, resolve_device
from .mri import coil_support

#: FINUFFT accuracy: relative error of each transform against the exact non-uniform DFT.
DEFAULT_EPS = 1e-4
#: FINUFFT's grid upsampling factor: 1.25 needs FFTs of 1.25 N instead of 2 N, about three
#: times faster at this accuracy.
DEFAULT_UPSAMPLING = 1.25


def _finufft():
    try:
        import finufft
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError(
            "non-Cartesian MRI needs the 'finufft' package: pip install 'imaging-redpsm[mri]'"
        ) from None
    return finufft


def check_trajectory(trajectory, n_frames: int | None = None) -> np.ndarray:
    """A float64 (P, S, R, 2) trajectory, or ``ValueError`` saying what is wrong.

    Parameters
    ----------
    trajectory : array_like, shape (P, S, R, 2)
        k-space coordinates (ky, kx) in cycles per pixel, within [-1/2, 1/2].
    n_frames : int, optional
        The number of frames P it must have.
    """
    trajectory = np.asarray(trajectory)
    if trajectory.ndim != 4 or trajectory.shape[-1] != 2 or min(trajectory.shape) < 1:
        raise ValueError(
            f"'trajectory' must have shape (P, S, R, 2): frames, shots, samples per shot and (ky, kx); "
            f"got {trajectory.shape}"
        )
    if trajectory.dtype.kind not in "iuf":
        raise ValueError(f"'trajectory' must be real-valued, got dtype {trajectory.dtype}")
    if n_frames is not None and trajectory.shape[0] != n_frames:
        raise ValueError(f"'trajectory' has {trajectory.shape[0]} frames, the k-space {n_frames}")
    if not np.all(np.isfinite(trajectory)):
        raise ValueError("'trajectory' contains NaN or infinite values")
    if np.abs(trajectory).max() > 0.5 + 1e-6:
        raise ValueError(
            f"'trajectory' reaches |k| = {np.abs(trajectory).max():.3g} cycles per pixel; coordinates must lie "
            "within [-1/2, 1/2] (cycles per pixel, not radians)"
        )
    return trajectory.astype(np.float64, copy=False)


def radial_trajectory(angles, readout_samples: int) -> np.ndarray:
    """Full-diameter radial spokes through the k-space centre.

    Parameters
    ----------
    angles : array_like, shape (P, S)
        Spoke angles in radians, from the kx axis towards ky.
    readout_samples : int
        Samples R per spoke at radii ``k_r = (r - R // 2) / R`` cycles per pixel: the
        spoke spans [-1/2, 1/2) with a sample at the centre; R = N samples the readout at
        the Nyquist spacing 1/N of an N x N image, more oversample it.

    Returns
    -------
    numpy.ndarray
        float64 (P, S, R, 2), (ky, kx) in cycles per pixel.
    """
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim != 2:
        raise ValueError(f"angles must have shape (P, S), got {angles.shape}")
    if isinstance(readout_samples, bool) or not isinstance(readout_samples, (int, np.integer)) or readout_samples < 2:
        raise ValueError(f"readout_samples must be an integer >= 2, got {readout_samples!r}")
    radius = (np.arange(readout_samples) - readout_samples // 2) / readout_samples
    return np.stack([np.sin(angles)[..., None] * radius, np.cos(angles)[..., None] * radius], axis=-1)


def radial_spokes(trajectory) -> tuple[np.ndarray, np.ndarray]:
    """Spoke angles and sample radii of a radial trajectory, or ``ValueError`` if it is not one.

    Radial: every shot is a straight line through the k-space centre, sampled at the
    same equally spaced, increasing radii ``k_r`` (signed, along the spoke's direction).

    Parameters
    ----------
    trajectory : array_like, shape (P, S, R, 2)

    Returns
    -------
    angles : numpy.ndarray
        float64 (P, S), radians: the direction of the spoke's last sample.
    radii : numpy.ndarray
        float64 (R,), the signed radius of each sample, the same on every spoke.
    """
    trajectory = check_trajectory(trajectory)
    last = trajectory[:, :, -1]
    angles = np.arctan2(last[..., 0], last[..., 1])
    direction = np.stack([np.sin(angles), np.cos(angles)], axis=-1)  # (P, S, 2)
    radii_per_shot = np.einsum("psrd,psd->psr", trajectory, direction)
    radii = radii_per_shot[0, 0]
    steps = np.diff(radii)
    radial = (
        steps.size > 0
        and steps[0] > 0
        and np.allclose(steps, steps[0], atol=1e-6)
        and np.allclose(radii_per_shot, radii, atol=1e-6)
        and np.allclose(radii_per_shot[..., None] * direction[:, :, None, :], trajectory, atol=1e-6)
    )
    if not radial:
        raise ValueError(
            "the trajectory is not radial (straight spokes through the centre, all with the same equally "
            "spaced samples); density compensation is implemented for radial trajectories only"
        )
    return angles, radii


def radial_density_weights(trajectory, image_shape) -> np.ndarray:
    """Density compensation of radial spokes, frame by frame (gridding quadrature weights).

    Each sample stands for the k-space area around it: ``dtheta_s * dk * |k_r|`` off the
    centre and ``dtheta_s * dk^2 / 4`` at it, with ``dtheta_s`` the angular interval of
    its spoke among the frame's spokes (:func:`imaging.schedules.angular_weights`, which
    sum to pi: each full-diameter spoke covers theta and theta + pi) and ``dk`` the
    sample spacing; times ``H * W``, the samples per unit area of a full Cartesian grid,
    so that the gridding estimate ``A^H (w * y)`` of a fully sampled frame reproduces the
    image (it is the plain inverse FFT on a Cartesian grid, where every weight is 1).

    Parameters
    ----------
    trajectory : array_like, shape (P, S, R, 2)
        A radial trajectory (:func:`radial_spokes`); group the spokes of several frames
        into one "frame" to weight them together (sliding windows, time averages).
    image_shape : tuple (H, W)

    Returns
    -------
    numpy.ndarray
        float64 (P, S, R), positive.
    """
    angles, radii = radial_spokes(trajectory)
    spacing = radii[1] - radii[0] if radii.size > 1 else 1.0
    radial_extent = np.where(np.abs(radii) < 0.5 * spacing, 0.25 * spacing, np.abs(radii))
    spoke_intervals = np.stack([angular_weights(frame) for frame in angles])  # (P, S)
    return image_shape[0] * image_shape[1] * spacing * spoke_intervals[..., None] * radial_extent


def gridded_coil_images(kspace, trajectory, image_shape) -> np.ndarray:
    """Density-compensated adjoint NUFFT of every coil over all the samples at once.

    The samples of all frames are weighted together (:func:`radial_density_weights` of
    the P * S spokes as one set), so the result is the time-averaged image seen by each
    coil: with many frames the spokes cover k-space densely.

    Parameters
    ----------
    kspace : array_like complex, shape (P, C, S, R)
    trajectory : array_like, shape (P, S, R, 2)
        Radial.
    image_shape : tuple (H, W)

    Returns
    -------
    numpy.ndarray
        complex64 (C, H, W).
    """
    kspace = np.asarray(kspace)
    n_frames, n_coils, n_shots, n_samples = kspace.shape
    all_spokes = np.asarray(trajectory).reshape(1, n_frames * n_shots, n_samples, 2)
    weights = radial_density_weights(all_spokes, image_shape)[0]  # (P * S, R)
    single_coil = DynamicNonCartesianMRI(all_spokes, image_shape, complex_image=True)
    weighted = torch.from_numpy(
        (kspace.transpose(1, 0, 2, 3).reshape(n_coils, 1, 1, n_frames * n_shots, n_samples) * weights).astype(
            np.complex64
        )
    )
    with torch.no_grad():
        return np.stack([single_coil.adjoint(coil)[0].numpy() for coil in weighted])


class _Transforms:
    """FINUFFT plans (type 2 forward, type 1 adjoint), one single-threaded pair per worker thread.

    Frames are handed to ``torch.get_num_threads()`` threads one at a time
    (:func:`imaging.operators._pool.run_on_threads`; FINUFFT runs without the GIL); each
    thread keeps its own plans, holding the upsampled grids of the C coils, and sets each
    frame's sample points before executing (sorting a frame's points costs little next
    to the FFTs). Threads over frames rather than FINUFFT's OpenMP threads within a
    frame: on a loaded 2-core machine the OpenMP threads' busy waiting made a product
    up to ten times slower than on one thread.
    """

    def __init__(self, trajectory, image_shape, n_coils, eps, upsampling):
        self._finufft = _finufft()
        self.points = [
            (np.ascontiguousarray(2 * np.pi * frame[..., 0].ravel(), dtype=np.float32),
             np.ascontiguousarray(2 * np.pi * frame[..., 1].ravel(), dtype=np.float32))
            for frame in trajectory
        ]
        self.image_shape = tuple(image_shape)
        self.scale = 1.0 / math.sqrt(image_shape[0] * image_shape[1])
        self._options = dict(n_trans=n_coils, eps=eps, dtype="complex64", upsampfac=upsampling, modeord=0, nthreads=1)
        self._local = threading.local()

    def _plan(self, kind: int):
        plans = getattr(self._local, "plans", None)
        if plans is None:
            plans = self._local.plans = {}
        if kind not in plans:
            plans[kind] = self._finufft.Plan(kind, self.image_shape, **self._options)
        return plans[kind]

    def _per_frame(self, kind: int, inputs: np.ndarray, out: np.ndarray) -> np.ndarray:
        def transform(p: int) -> None:
            plan = self._plan(kind)
            plan.setpts(*self.points[p])
            out[p] = plan.execute(np.ascontiguousarray(inputs[p])).reshape(out.shape[1:])

        run_on_threads(transform, range(len(self.points)))
        out *= self.scale
        return out

    def forward(self, coil_images: np.ndarray) -> np.ndarray:
        """(P, C, H, W) complex64 -> (P, C, M) complex64."""
        out = np.empty((coil_images.shape[0], coil_images.shape[1], self.points[0][0].size), dtype=np.complex64)
        return self._per_frame(2, coil_images, out)

    def adjoint(self, samples: np.ndarray, image_shape) -> np.ndarray:
        """(P, C, M) complex64 -> (P, C, H, W) complex64."""
        out = np.empty((samples.shape[0], samples.shape[1], *image_shape), dtype=np.complex64)
        return self._per_frame(1, samples, out)


class DynamicNonCartesianMRI(LinearOperator):
    """Dynamic MRI along an arbitrary 2D k-space trajectory (radial spokes, spirals...).

    Parameters
    ----------
    trajectory : array_like, shape (P, S, R, 2)
        Per frame, S shots of R samples, (ky, kx) in cycles per pixel within [-1/2, 1/2].
    image_shape : tuple (H, W)
    coil_maps : array_like complex, shape (C, H, W), optional
        Coil sensitivities; a single coil of unit sensitivity when omitted.
    device : {"cpu", "cuda", "auto"}
        Where inputs and outputs live (the transforms run on the CPU).
    complex_image : bool
        As :class:`imaging.operators.DynamicMRI`: False takes real images and returns
        the real part of the adjoint.
    eps, upsampling : float
        FINUFFT's accuracy and grid upsampling factor.
    """

    #: PSM initialisation: the fbp-window reconstruction (sliding-window gridding, radial).
    initialisations = ("fbp-svd",)

    def __init__(
        self,
        trajectory,
        image_shape,
        coil_maps=None,
        device="cpu",
        complex_image=False,
        eps: float = DEFAULT_EPS,
        upsampling: float = DEFAULT_UPSAMPLING,
    ):
        trajectory = check_trajectory(trajectory)
        image_shape = tuple(int(s) for s in image_shape)
        if len(image_shape) != 2 or min(image_shape) < 2:
            raise ValueError(f"image_shape must be two integers >= 2, got {image_shape}")
        height, width = image_shape
        if coil_maps is None:
            coil_maps = np.ones((1, height, width), dtype=np.complex64)
        coil_maps = np.asarray(coil_maps)
        if coil_maps.ndim != 3 or coil_maps.shape[1:] != image_shape:
            raise ValueError(f"coil_maps must have shape (C, {height}, {width}), got {coil_maps.shape}")
        if not np.all(np.isfinite(coil_maps)):
            raise ValueError("coil_maps contain NaN or infinite values")
        self.device = resolve_device(device)
        self.complex_image = bool(complex_image)
        self.trajectory = trajectory
        self.image_shape = image_shape
        self.coil_maps = torch.from_numpy(np.ascontiguousarray(coil_maps, dtype=np.complex64))
        n_frames, n_shots, n_samples, _ = trajectory.shape
        self.domain_shape = (n_frames, height, width)
        self.range_shape = (n_frames, coil_maps.shape[0], n_shots, n_samples)
        self.domain_dtype = torch.complex64 if self.complex_image else torch.float32
        self.range_dtype = torch.complex64
        self._transforms = _Transforms(trajectory, image_shape, coil_maps.shape[0], eps, upsampling)

    @classmethod
    def from_measurements(cls, measurements, device="cpu", **options) -> "DynamicNonCartesianMRI":
        """The operator of single-slice non-Cartesian measurements (``trajectory``, ``coil_maps``);
        complex images unless ``complex_image=False`` (as :meth:`DynamicMRI.from_measurements`)."""
        options.setdefault("complex_image", True)
        return cls(measurements.trajectory, measurements.image_shape, measurements.coil_maps, device=device, **options)

    @property
    def n_frames(self) -> int:
        return self.domain_shape[0]

    def support_mask(self) -> torch.Tensor | None:
        """Pixels some coil is sensitive to (see :func:`imaging.operators.mri.coil_support`)."""
        return coil_support(self.coil_maps)

    @property
    def nbytes(self) -> int:
        """Memory held by the operator: trajectory, sample points and coil maps (bytes)."""
        points = sum(ky.nbytes + kx.nbytes for ky, kx in self._transforms.points)
        return self.trajectory.nbytes + points + self.coil_maps.numel() * self.coil_maps.element_size()

    def _apply_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach().cpu().to(torch.complex64)
        coil_images = (self.coil_maps[None] * x[:, None]).contiguous().numpy()
        samples = self._transforms.forward(coil_images)
        return torch.from_numpy(samples).reshape(self.range_shape).to(self.device)

    def _apply_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        y = y.detach().cpu().to(torch.complex64).resolve_conj().reshape(*self.range_shape[:2], -1)
        coil_images = torch.from_numpy(self._transforms.adjoint(y.contiguous().numpy(), self.image_shape))
        image = torch.sum(self.coil_maps.conj()[None] * coil_images, dim=1)
        return (image if self.complex_image else image.real.contiguous()).to(self.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(P, H, W) image -> (P, C, S, R) complex k-space samples."""
        x = self._check_input(x, self.domain_shape, "forward")
        if not self.complex_image and x.is_complex():
            raise ValueError("this operator takes real images; build it with complex_image=True")
        return linear_map(x, self._apply_forward, self._apply_adjoint)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(P, C, S, R) k-space samples -> (P, H, W) image (real part unless complex_image)."""
        y = self._check_input(y, self.range_shape, "adjoint")
        return linear_map(y, self._apply_adjoint, self._apply_forward)
