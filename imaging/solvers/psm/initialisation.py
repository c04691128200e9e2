"""Initial estimates for the PSM-based solvers (``psm``, ``red-psm``).

Each initialiser returns a frame sequence (P, N, N) in the units of the data; the
solver turns it into PSM factors with :func:`imaging.models.psm.psm_from_frames`
(truncated SVD in the span of the temporal interpolation) and derives the amplitude
normalisation from it (:func:`amplitude_scale`).

- ``"fbp-svd"`` (tomography, default): the ``fbp-window`` reconstruction with its default
  settings (sliding-window FBP).
- ``"projection"`` (tomography; ProSep-like, Iskender et al. IVMSP 2022): the sinogram of
  a PSM object is itself partially separable. With the parallel-beam symmetry
  ``g(s, theta + pi) = g(-s, theta)`` every view is used twice (at ``theta`` and, with the
  detector flipped, at ``theta + pi``), and the data are fitted by

      g(s, theta, t) ~= sum_n sum_k eta[n, k](s) phi_n(theta) psi_k(t),

  real angular harmonics ``phi_n`` (1, cos n theta, sin n theta; n <= N_h) times ``r``
  smooth temporal functions ``psi = U_t z^T`` (cubic, ``d`` knots). For fixed ``z`` the
  coefficients ``eta`` solve a ridge-regularised linear least-squares problem (all
  detector bins at once). The residual with ``eta`` eliminated (variable projection)
  depends on ``z`` only through the span of ``Psi``, so with ``r = d`` (the default) it
  is constant and the fit is one linear solve; with ``r < d``, ``z`` is optimised by
  L-BFGS from the leading temporal subspace of the ``r = d`` fit. Each temporal
  function's harmonic sinogram is synthesised on a full set of angles and reconstructed
  by FBP, which gives image-domain spatial bases (FBP is linear, so the result is a PSM).
- ``"kspace-centre"`` (MRI): the k-space rows sampled in every frame (the always-sampled
  centre) give a low-resolution but fully sampled frame sequence, whose temporal
  subspace is the classic PS-MRI navigator estimate (the solvers then fit the spatial
  bases to all the data with these temporal bases fixed).

Measured on the tuning walnut (seed 1, N=128, P=256, one view per frame; ``python
benchmarks/tune_red_psm.py grid --method M --grid init=projection,fbp-svd``, 2-core CPU):

============  =========  ===========================  ===========================
init          init time  psm (3 sweeps)               red-psm (stopped by its rule)
============  =========  ===========================  ===========================
projection    0.6 s      22.71 dB                     25.20 dB (16 iterations)
fbp-svd       2.5 s      23.43 dB                     25.38 dB (15 iterations)
============  =========  ===========================  ===========================

The projection-domain fit is angularly band-limited (N_h ~ 25): its spatial bases lack
the fine detail that the fbp-window frames keep (with streaks that the denoiser and the
low-rank fit remove), so both solvers end higher from ``fbp-svd``, which is therefore
the default; ``init=projection`` selects the method paper's initialisation. A variable
projection with r = 6 < d = 11 took 10-50 s and gave 19.8 dB (frames), below the
determined fit with r = d = 6.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ...models.psm import interpolation_matrix
from ...operators import ifft2c
from ...operators.geometry import shift_bins
from ..fbp_window import FBPWindow

#: Bytes of the k-space block whose coil images :func:`kspace_centre_frames` makes at once.
KSPACE_CENTRE_BLOCK_BYTES = 4 * 2**20

#: Every initialisation; those that suit a modality, the default first, are its
#: operator's ``initialisations`` (:class:`imaging.operators.LinearOperator`).
INITIALISATIONS = ("projection", "fbp-svd", "kspace-centre")


def amplitude_scale(frames: torch.Tensor, quantile: float = 0.999) -> float:
    """Robust amplitude of a frame sequence: a high quantile of its absolute values.

    Parameters
    ----------
    frames : torch.Tensor
        (P, N, N) estimate in data units.
    quantile : float
        The quantile of ``|frames|`` used (robust to a few outlier pixels).

    Returns
    -------
    float
        Positive scale (1.0 for an all-zero estimate).
    """
    values = frames.detach().abs().reshape(-1).float().cpu().numpy()
    if values.size > 4_000_000:  # a regular subsample keeps the quantile cheap and deterministic
        values = values[:: math.ceil(values.size / 4_000_000)]
    scale = float(np.quantile(values, quantile))
    return scale if scale > 0 and math.isfinite(scale) else 1.0


def filtered_backprojection(sinograms: np.ndarray, angles: np.ndarray, image_size: int, detector_spacing: float = 1.0) -> np.ndarray:
    """ASTRA's CPU FBP (Ram-Lak) of static sinograms that share one set of angles.

    Parameters
    ----------
    sinograms : numpy.ndarray
        (B, M, D) sinograms, M views at ``angles`` and D detector bins.
    angles : numpy.ndarray
        (M,) radians, ASTRA parallel-beam convention.
    image_size : int
        N of the (N, N) reconstruction grid.
    detector_spacing : float
        Bin width in pixel units.

    Returns
    -------
    numpy.ndarray
        float32 (B, N, N).
    """
    import astra

    n_detectors = sinograms.shape[2]
    vol_geom = astra.create_vol_geom(image_size, image_size)
    proj_geom = astra.create_proj_geom("parallel", float(detector_spacing), n_detectors, np.asarray(angles, np.float64))
    projector = astra.create_projector("line", proj_geom, vol_geom)
    out = np.empty((sinograms.shape[0], image_size, image_size), dtype=np.float32)
    try:
        for b, sinogram in enumerate(sinograms):
            sino_id = astra.data2d.create("-sino", proj_geom, np.ascontiguousarray(sinogram, dtype=np.float32))
            rec_id = astra.data2d.create("-vol", vol_geom, 0.0)
            config = astra.astra_dict("FBP")
            config["ProjectorId"] = projector
            config["ProjectionDataId"] = sino_id
            config["ReconstructionDataId"] = rec_id
            algorithm = astra.algorithm.create(config)
            try:
                astra.algorithm.run(algorithm)
                out[b] = astra.data2d.get(rec_id)
            finally:
                astra.algorithm.delete(algorithm)
                astra.data2d.delete([sino_id, rec_id])
    finally:
        astra.projector.delete(projector)
    return out


def _harmonics(theta: torch.Tensor, order: int) -> torch.Tensor:
    """Real angular harmonics (len(theta), 2 order + 1): 1, cos theta, sin theta, cos 2 theta, ..."""
    n = torch.arange(1, order + 1, dtype=theta.dtype)
    phase = theta[:, None] * n[None]
    return torch.cat([torch.ones_like(theta)[:, None], torch.cos(phase), torch.sin(phase)], dim=1)


class _HarmonicFit:
    """Ridge least squares of the symmetrised sinogram on harmonics x temporal functions."""

    def __init__(self, sinogram: np.ndarray, angles: np.ndarray, harmonics: int, knot_basis: torch.Tensor, ridge: float):
        n_frames, n_views, n_detectors = sinogram.shape
        g = torch.from_numpy(np.asarray(sinogram, np.float64).reshape(n_frames * n_views, n_detectors))
        theta = torch.from_numpy(np.asarray(angles, np.float64).reshape(-1))
        frame = torch.arange(n_frames).repeat_interleave(n_views)
        # Each view counts twice: at theta, and at theta + pi with the detector flipped.
        self.data = torch.cat([g, torch.flip(g, dims=[1])])
        self.angular = _harmonics(torch.cat([theta, theta + math.pi]), harmonics)
        self.temporal_rows = knot_basis.double()[torch.cat([frame, frame])]
        self.ridge = ridge

    def design(self, knots: torch.Tensor) -> torch.Tensor:
        temporal = self.temporal_rows @ knots.T  # (rows, r)
        return (self.angular[:, :, None] * temporal[:, None, :]).reshape(self.data.shape[0], -1)

    def solve(self, knots: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coefficients (H r, D) for given knots and the regularised residual (a scalar)."""
        design = self.design(knots)
        normal = design.T @ design
        damping = self.ridge * normal.diagonal().mean().clamp_min(1e-30)
        eye = torch.eye(normal.shape[0], dtype=normal.dtype)
        coefficients = torch.linalg.solve(normal + damping * eye, design.T @ self.data)
        misfit = design @ coefficients - self.data
        return coefficients, misfit.square().sum() + damping * coefficients.square().sum()


def projection_domain_frames(
    sinogram: np.ndarray,
    angles: np.ndarray,
    image_size: int,
    detector_spacing: float = 1.0,
    rank: int = 6,
    knots: int = 11,
    harmonics: int | None = None,
    ridge: float = 1e-3,
    varpro_iterations: int = 30,
) -> torch.Tensor:
    """Frames of the projection-domain (harmonic) PSM fit of a dynamic sinogram.

    Parameters
    ----------
    sinogram : numpy.ndarray
        (P, V, D) dynamic sinogram (any amplitude).
    angles : numpy.ndarray
        (P, V) view angles in radians.
    image_size : int
        N of the (N, N) frames.
    detector_spacing : float
        Bin width in pixel units.
    rank : int
        Number of temporal functions r of the sinogram model (<= knots).
    knots : int
        Knots d of the cubic temporal interpolation; the temporal functions are
        optimised in its span (variable projection) when ``rank < knots``.
    harmonics : int, optional
        Highest angular harmonic N_h; by default the largest with
        ``(2 N_h + 1) r <= 0.6 * 2 P V`` (a determined fit), at most ``N``.
    ridge : float
        Ridge weight, relative to the mean diagonal of the normal matrix.
    varpro_iterations : int
        L-BFGS iterations on the variable-projection residual (0: keep the initial subspace).

    Returns
    -------
    torch.Tensor
        float32 (P, N, N) frames in the units of the sinogram.
    """
    n_frames, n_views, _ = sinogram.shape
    if not 1 <= rank <= knots <= n_frames:
        raise ValueError(
            f"the projection-domain fit needs 1 <= rank <= knots <= frames ({n_frames}), got rank {rank}, knots {knots}"
        )
    if harmonics is None:
        harmonics = int((0.6 * 2 * n_frames * n_views / rank - 1) // 2)
        harmonics = max(0, min(harmonics, image_size))
    knot_basis = interpolation_matrix(n_frames, knots, "cubic")
    fit = _HarmonicFit(sinogram, angles, harmonics, knot_basis, ridge)
    d = knot_basis.shape[1]
    full_knots = torch.eye(d, dtype=torch.float64)
    if rank < d:
        # Leading temporal subspace of the fit with all d knot functions as the start.
        coefficients, _ = fit.solve(full_knots)
        per_knot = coefficients.reshape(2 * harmonics + 1, d, -1).transpose(0, 1).reshape(d, -1)
        basis, triangular = torch.linalg.qr(knot_basis.double())
        left, _, _ = torch.linalg.svd(triangular @ per_knot, full_matrices=False)
        start = torch.linalg.solve_triangular(triangular, left[:, :rank], upper=True).T  # (r, d)
        knots_var = start.clone().requires_grad_(True)
        if varpro_iterations > 0:
            optimizer = torch.optim.LBFGS(
                [knots_var], lr=1.0, max_iter=varpro_iterations, history_size=10, line_search_fn="strong_wolfe"
            )

            def closure():
                optimizer.zero_grad()
                _, loss = fit.solve(knots_var)
                loss.backward()
                return loss

            optimizer.step(closure)
        temporal_knots = knots_var.detach()
    else:
        temporal_knots = full_knots
    with torch.no_grad():
        coefficients, _ = fit.solve(temporal_knots)
    r = temporal_knots.shape[0]
    n_detectors = sinogram.shape[2]
    full_angles = np.linspace(0.0, math.pi, max(2 * harmonics + 2, int(math.ceil(math.pi * image_size / 2))), endpoint=False)
    angular = _harmonics(torch.from_numpy(full_angles), harmonics)  # (M, H)
    per_function = coefficients.reshape(2 * harmonics + 1, r, n_detectors)
    sinograms = torch.einsum("mh,hrd->rmd", angular, per_function).float().numpy()
    spatial = torch.from_numpy(filtered_backprojection(sinograms, full_angles, image_size, detector_spacing))
    temporal = (knot_basis.double() @ temporal_knots.T).float()  # (P, r)
    return (temporal @ spatial.reshape(r, -1)).reshape(n_frames, image_size, image_size)


def kspace_centre_frames(measurements, device="cpu") -> torch.Tensor:
    """Low-resolution frames from the k-space locations sampled in every frame (MRI).

    Parameters
    ----------
    measurements : Measurements
        MRI measurements (``kspace`` (P, C, H, W), ``mask`` (P, H, W), optional coil maps).
    device : str or torch.device
        Where the inverse FFT runs and the frames are returned.

    Returns
    -------
    torch.Tensor
        complex64 (P, H, W): the coil-combined inverse FFT of the k-space restricted to
        the common locations (or, when no location is sampled in every frame, of the
        zero-filled k-space).
    """
    mask = np.asarray(measurements.mask)
    kspace = np.asarray(measurements.kspace)
    n_frames, n_coils, height, width = kspace.shape
    common = mask.all(axis=0)
    # The common locations of every frame, or each frame's own when there are none.
    keep = torch.from_numpy(common[None] if common.any() else mask).to(device)
    maps = None if measurements.coil_maps is None else torch.from_numpy(np.asarray(measurements.coil_maps)).to(device)
    if maps is not None:
        conj_maps = maps.conj()
        sensitivity = maps.abs().square().sum(dim=0) + 1e-12
    frames = torch.empty((n_frames, height, width), dtype=torch.complex64, device=device)
    # A block of frames at a time: the coil images of all frames are C times the frames (and
    # the centred inverse FFT makes three copies of them).
    block = max(1, KSPACE_CENTRE_BLOCK_BYTES // (8 * n_coils * height * width))
    for first in range(0, n_frames, block):
        chunk = slice(first, first + block)
        sampled = torch.from_numpy(kspace[chunk]).to(device) * keep[chunk if len(keep) > 1 else slice(None), None]
        coil_images = ifft2c(sampled)
        del sampled
        frames[chunk] = coil_images[:, 0] if maps is None else (conj_maps[None] * coil_images).sum(dim=1) / sensitivity
    return frames


def fbp_window_frames(measurements, device="cpu") -> torch.Tensor:
    """The ``fbp-window`` reconstruction with its default settings, (P, N, N) float32.

    The solver object is run directly (one step, no runner): no seeding of any random
    generator, no scoring against a ground truth, on ``device`` (the result stays there).
    """
    solver = FBPWindow(measurements, FBPWindow.make_params(), device=device)
    solver.step()
    return solver.frames()


def initial_frames(
    measurements, method: str, knots: int = 6, rank: int | None = None, device="cpu"
) -> torch.Tensor:
    """Initial frame sequence (P, N, N) float32 in data units by ``method``.

    Parameters
    ----------
    measurements : Measurements
        One slice.
    method : {"projection", "fbp-svd", "kspace-centre"}
        See the module docstring; must be one of the ``initialisations`` of the
        measurements' operator class.
    knots, rank : int
        Temporal model of the projection-domain fit: cubic knots and temporal functions
        (default ``rank = knots``, the determined linear fit).
    device : str or torch.device
        The run's device: the fbp-window and k-space-centre initialisations compute
        there; the projection-domain fit runs on the CPU (ASTRA) and is moved there.
    """
    allowed = measurements.operator_class.initialisations
    if method not in allowed:
        raise ValueError(
            f"initialisation {method!r} does not apply to {measurements.modality} data "
            f"(use one of: {', '.join(allowed)})"
        )
    if method == "projection":
        if measurements.geometry != "parallel":
            raise ValueError(
                f"initialisation 'projection' relies on the parallel-beam symmetry g(s, theta + pi) = g(-s, theta); "
                f"these are {measurements.geometry}-beam measurements: use init=fbp-svd"
            )
        sinogram = measurements.sinogram
        if measurements.center_offset:  # the symmetry holds about the rotation axis: move it to the centre
            sinogram = shift_bins(sinogram, -measurements.center_offset)
        frames = projection_domain_frames(
            sinogram,
            measurements.angles,
            measurements.image_shape[0],
            measurements.detector_spacing,
            rank=knots if rank is None else min(rank, knots),
            knots=min(knots, measurements.n_frames),
        )
        return frames.to(device)
    if method == "fbp-svd":
        return fbp_window_frames(measurements, device)
    return kspace_centre_frames(measurements, device)
