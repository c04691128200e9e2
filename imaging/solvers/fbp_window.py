"""The sliding-window baseline ("fbp-window"): each frame from the data nearest in time.

Tomography (sliding-window filtered back-projection). Frame ``p`` is the FBP of the
``W`` views nearest to it in time: the ``F = ceil(W / V)`` whole frames ``[s, s + F)``
around ``p`` (V views per frame), with the window shifted so that it stays inside
``[0, P)``. Each view is filtered along the detector with a ramp filter (Ram-Lak, in the
spatial-domain form of Kak & Slaney, applied by FFT with zero padding to at least twice
the detector length, optionally apodised) and back-projected with the exact adjoint of
:class:`imaging.operators.DynamicTomography`::

    f_p = sum_{m in window(p)} w_{p,m} A_m^T (h * g_m)

with ``h`` the ramp kernel in units of detector bins. This is the adjoint of a
``DynamicTomography`` built with the window angles ``(P, F * V)`` applied to the weighted,
filtered views; since every view's back-projection ``A_m^T (h * g_m)`` is shared by all
the windows that contain it, each is computed once and the frames are their weighted
sums. The weight ``w_{p,m}`` is the angular interval (modulo pi) that view ``m`` stands
for within frame p's window: half the gap to its angular neighbours, ``pi / M`` for ``M``
equispaced views (the FBP quadrature), which suits windows of irregular angles (random or
golden-angle schedules). An interval is capped at three times the median interval so
that a window covering only a limited arc (e.g. a linear schedule) does not give its end
views the whole missing arc, and the weights are scaled to sum to pi, which keeps the
object's mean value (see :func:`angular_weights`).

Scaling: for a ray spacing of ``d`` pixels the continuous filter is ``h(s / d) / d^2``
and the back-projection of ASTRA's line-integral weights sums ``1 / d`` per view, so
the spacing cancels and a static object measured at many views reconstructs to its own
values.

MRI (sliding-window zero filling). Frame ``p`` combines the k-space of the ``W`` frames
nearest in time (same clipped window): every k-space location sampled in the window gets
the average of its samples, the rest stays zero; the coil images are the centred inverse
FFT and are combined as ``sum_c conj(S_c) x_c / sum_c |S_c|^2`` (plain ``conj(S)`` for
maps normalised to ``sum |S|^2 = 1``); the real part is the frame. With full sampling and
``W = 1`` this is the exact inverse.

Radial MRI (sliding-window gridding). Frame ``p`` is the density-compensated adjoint
NUFFT of the spokes of the ``W`` frames nearest in time, ``A^H (w * y)``, with the radial
quadrature weights of those spokes together (``|k|`` times the angular interval of each
spoke; :func:`imaging.operators.nufft.radial_density_weights`), coil-combined as above.
The automatic window holds ``pi/2 N`` spokes, the angular Nyquist rate of an ``N x N``
image.

The method is not iterative: one :meth:`FBPWindow.step` computes every frame.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import torch

from ..operators import DynamicTomography, ifft2c
from ..operators.nufft import DynamicNonCartesianMRI, radial_density_weights
from ..schedules import MAX_INTERVAL_RATIO, angular_weights  # noqa: F401  (public names of this module before)
from .registry import register
from .base import ParameterError, Solver, SolverParams, param

FILTERS = ("ramp", "shepp-logan", "cosine", "hann")

#: Frames gridded at once by the radial MRI baseline (bounds the windowed samples' memory).
_GRIDDING_CHUNK_FRAMES = 8

#: Views per window when ``window`` is 0 (tomography).
DEFAULT_TOMOGRAPHY_WINDOW = 32


@dataclasses.dataclass
class FBPWindowParams(SolverParams):
    """Parameters of :class:`FBPWindow`."""

    window: int = param(
        0,
        "views (tomography) or frames (MRI) nearest in time combined into each frame; 0 = automatic: "
        f"{DEFAULT_TOMOGRAPHY_WINDOW} views, or for MRI the frames needed to fill k-space once on average "
        "(radial: pi/2 N spokes, the angular Nyquist rate)",
    )
    filter: str = param("ramp", "ramp filter apodisation (tomography): ramp, shepp-logan, cosine or hann")

    def validate(self) -> None:
        super().validate()
        if self.window < 0:
            raise ParameterError(f"window must be >= 0 (0 = automatic), got {self.window}")
        if self.filter not in FILTERS:
            raise ParameterError(f"filter must be one of {', '.join(FILTERS)}, got {self.filter!r}")


def window_starts(n_frames: int, window_frames: int) -> np.ndarray:
    """First frame of each frame's window of ``window_frames`` frames nearest in time.

    The window ``[s, s + F)`` is centred on frame ``p`` (``s = p - F // 2``) and shifted
    to stay inside ``[0, n_frames)``.

    Returns
    -------
    numpy.ndarray
        int64 (n_frames,).
    """
    window_frames = min(max(1, window_frames), n_frames)
    return np.clip(np.arange(n_frames) - window_frames // 2, 0, n_frames - window_frames)


def ramp_filter_response(n_detectors: int, kind: str = "ramp") -> tuple[np.ndarray, int]:
    """Frequency response of the (apodised) ramp filter for an rFFT of the padded length.

    The Ram-Lak kernel in detector-bin units, ``h(0) = 1/4``, ``h(n) = -1 / (pi n)^2`` for
    odd ``n`` and 0 for even ``n``, is transformed on the padded grid (which keeps the
    right DC value, unlike sampling ``|nu|``) and multiplied by the apodisation window of
    ``kind`` (``nu`` in cycles per bin): ramp 1, shepp-logan ``sinc(nu)``, cosine
    ``cos(pi nu)``, hann ``(1 + cos(2 pi nu)) / 2``.

    Returns
    -------
    response : numpy.ndarray
        float64 (L // 2 + 1,).
    length : int
        The padded length ``L``, a power of two of at least ``2 * n_detectors`` and 64.
    """
    if kind not in FILTERS:
        raise ValueError(f"filter must be one of {FILTERS}, got {kind!r}")
    length = max(64, 1 << math.ceil(math.log2(2 * n_detectors)))
    offsets = np.fft.fftfreq(length, 1.0 / length)  # 0, 1, ..., -1 (circular lags)
    kernel = np.zeros(length)
    kernel[0] = 0.25
    odd = offsets % 2 == 1
    kernel[odd] = -1.0 / (np.pi * offsets[odd]) ** 2
    response = np.fft.rfft(kernel).real
    nu = np.fft.rfftfreq(length)
    if kind == "shepp-logan":
        response *= np.sinc(nu)
    elif kind == "cosine":
        response *= np.cos(np.pi * nu)
    elif kind == "hann":
        response *= 0.5 * (1.0 + np.cos(2.0 * np.pi * nu))
    return response, length


def filter_views(views: torch.Tensor, kind: str = "ramp") -> torch.Tensor:
    """Ramp-filter views along the detector (last axis), in detector-bin units.

    Parameters
    ----------
    views : torch.Tensor
        float32 (..., D).

    Returns
    -------
    torch.Tensor
        float32 (..., D), same device.
    """
    n_detectors = views.shape[-1]
    response, length = ramp_filter_response(n_detectors, kind)
    spectrum = torch.fft.rfft(views.double(), n=length, dim=-1)
    spectrum *= torch.from_numpy(response).to(views.device)
    return torch.fft.irfft(spectrum, n=length, dim=-1)[..., :n_detectors].float()


def window_average_kspace(kspace: np.ndarray, mask: np.ndarray, window_frames: int) -> np.ndarray:
    """Sliding-window k-space: each location gets the mean of its samples in the window.

    Parameters
    ----------
    kspace : numpy.ndarray
        complex64 (P, C, H, W).
    mask : numpy.ndarray
        bool (P, H, W), the sampled locations of each frame.
    window_frames : int
        Frames per window (see :func:`window_starts`).

    Returns
    -------
    numpy.ndarray
        complex64 (P, C, H, W); zero where no frame of the window sampled.
    """
    n_frames = kspace.shape[0]
    samples = (np.asarray(kspace, dtype=np.complex64) * mask[:, None]).view(np.float32)  # real (P, C, H, 2W)
    combined = np.empty_like(samples)
    # Running sums over the window (starts and stops never decrease), in double precision
    # so that removing a frame's samples leaves no trace of them. NumPy, single-threaded,
    # is much faster than PyTorch's threaded kernels for these small in-place updates.
    window_sum = np.zeros(samples.shape[1:], dtype=np.float64)
    window_count = np.zeros(mask.shape[1:], dtype=np.int64)
    first, stop = 0, 0
    for p, start in enumerate(window_starts(n_frames, window_frames)):
        while stop < start + window_frames:
            window_sum += samples[stop]
            window_count += mask[stop]
            stop += 1
        while first < start:
            window_sum -= samples[first]
            window_count -= mask[first]
            first += 1
        # Each complex sample is two adjacent floats: repeat the counts along the last axis.
        np.divide(window_sum, np.repeat(np.maximum(window_count, 1), 2, axis=-1), out=combined[p], casting="same_kind")
    return combined.view(np.complex64)


def _relative_residual(prediction: torch.Tensor, data: torch.Tensor) -> float:
    """``||prediction - data|| / ||data||`` (inf for all-zero data)."""
    residual = prediction - data
    if residual.is_complex():  # the same norms on real views, which PyTorch computes much faster
        residual, data = torch.view_as_real(residual), torch.view_as_real(data)
    data_norm = float(torch.linalg.vector_norm(data))
    return float(torch.linalg.vector_norm(residual)) / data_norm if data_norm > 0 else math.inf


@register
class FBPWindow(Solver):
    """Sliding-window FBP (tomography) and sliding-window zero filling (MRI).

    See the module docstring for the method. Non-iterative: one :meth:`step` computes
    the reconstruction and logs ``data_residual`` = ``||A f - g|| / ||g||`` with the
    measurement operator ``A``.
    """

    name = "fbp-window"
    Params = FBPWindowParams

    def __init__(self, measurements, params: FBPWindowParams, device="cpu"):
        super().__init__(measurements, params, device)
        self._estimate: torch.Tensor | None = None

    def window_size(self) -> int:
        """The window actually used: views (tomography) or frames (MRI)."""
        m = self.measurements
        if self.params.window > 0:
            return self.params.window
        if m.modality == "tomography":
            return DEFAULT_TOMOGRAPHY_WINDOW
        if not m.is_cartesian:
            spokes_per_frame = m.trajectory.shape[1]
            return max(1, math.ceil(0.5 * math.pi * max(m.image_shape) / spokes_per_frame))
        sampled_fraction = float(np.mean(m.mask))
        return max(1, math.ceil(1.0 / sampled_fraction)) if sampled_fraction > 0 else m.n_frames

    def step(self) -> dict[str, float]:
        with torch.no_grad():
            if self.measurements.modality == "tomography":
                self._estimate, residual = self._tomography()
            else:
                self._estimate, residual = self._mri()
        return {"data_residual": residual}

    def converged(self) -> bool:
        return self._estimate is not None

    def estimate(self) -> np.ndarray:
        if self._estimate is None:
            n = self.measurements.n_frames
            return np.zeros((n, *self.measurements.image_shape), dtype=np.float32)
        return self._estimate.cpu().numpy().astype(np.float32, copy=False)

    def state_dict(self):
        state = super().state_dict()
        if self._estimate is not None:
            state["estimate"] = self._estimate.cpu()
        return state

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        if "estimate" in state:
            self._estimate = state["estimate"].to(self.device)

    # -- tomography -------------------------------------------------------------------------
    def _tomography(self) -> tuple[torch.Tensor, float]:
        m = self.measurements
        n_frames, n_views, n_detectors = m.sinogram.shape
        size = m.image_shape[0]
        # One "frame" per view: its adjoint back-projects every view on its own.
        per_view = DynamicTomography(
            m.angles.reshape(-1, 1), m.image_shape, n_detectors, m.detector_spacing, device=self.device
        )
        data = torch.from_numpy(m.sinogram).to(self.device)
        filtered = filter_views(data.reshape(-1, 1, n_detectors), self.params.filter)
        backprojections = per_view.adjoint(filtered).reshape(n_frames * n_views, size * size)
        frames = (self._view_weights(n_frames, n_views) @ backprojections).reshape(n_frames, size, size)
        measured = per_view.forward(frames.repeat_interleave(n_views, dim=0)).reshape(data.shape)
        return frames, _relative_residual(measured, data)

    def _view_weights(self, n_frames: int, n_views: int) -> torch.Tensor:
        """Sparse CSR (P, P * V) float32: ``w_{p,m}`` of view m (frame-major order) in frame p."""
        window_frames = min(n_frames, math.ceil(self.window_size() / n_views))
        views_per_window = window_frames * n_views
        angles = self.measurements.angles
        starts = window_starts(n_frames, window_frames)
        values = np.concatenate([angular_weights(angles[s : s + window_frames].ravel()) for s in starts])
        columns = (starts[:, None] * n_views + np.arange(views_per_window)).ravel()
        row_pointers = np.arange(n_frames + 1) * views_per_window
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(
                torch.from_numpy(row_pointers),
                torch.from_numpy(columns),
                torch.from_numpy(values.astype(np.float32)),
                size=(n_frames, n_frames * n_views),
            ).to(self.device)

    # -- MRI --------------------------------------------------------------------------------
    def _mri(self) -> tuple[torch.Tensor, float]:
        m = self.measurements
        n_frames = m.n_frames
        window_frames = min(n_frames, self.window_size())
        maps = torch.ones((1, *m.image_shape), dtype=torch.complex64) if m.coil_maps is None else m.coil_maps
        maps = torch.as_tensor(maps).to(self.device)
        if m.is_cartesian:
            combined = torch.from_numpy(window_average_kspace(m.kspace, m.mask, window_frames)).to(self.device)
            combined_image = torch.sum(maps.conj()[None] * ifft2c(combined), dim=1)
        else:
            combined_image = self._radial_gridding(window_frames)
        sensitivity = maps.abs().square().sum(dim=0)
        frames = torch.where(sensitivity > 0, combined_image.real / sensitivity.clamp_min(1e-30), 0.0)
        frames = frames.float().contiguous()
        kspace = torch.from_numpy(m.kspace).to(self.device)
        return frames, _relative_residual(m.operator(device=self.device).forward(frames), kspace)

    def _radial_gridding(self, window_frames: int) -> torch.Tensor:
        """Coil-combined gridding of each frame's window of radial spokes, complex (P, H, W).

        Frame p is ``A_p^H (w * y)`` over the spokes of its window, with ``w`` the radial
        density compensation of those spokes together
        (:func:`imaging.operators.nufft.radial_density_weights`), done a few frames at a
        time to bound the memory of the windowed samples.
        """
        m = self.measurements
        n_frames, n_coils, n_shots, n_samples = m.kspace.shape
        window = window_starts(n_frames, window_frames)[:, None] + np.arange(window_frames)  # (P, F)
        frames = []
        for first in range(0, n_frames, _GRIDDING_CHUNK_FRAMES):
            chunk = window[first : first + _GRIDDING_CHUNK_FRAMES]
            trajectory = m.trajectory[chunk].reshape(len(chunk), window_frames * n_shots, n_samples, 2)
            samples = np.moveaxis(m.kspace[chunk], 2, 1).reshape(len(chunk), n_coils, window_frames * n_shots, n_samples)
            weights = radial_density_weights(trajectory, m.image_shape)[:, None]
            gridding = DynamicNonCartesianMRI(trajectory, m.image_shape, m.coil_maps, device=self.device, complex_image=True)
            frames.append(gridding.adjoint(torch.from_numpy((samples * weights).astype(np.complex64))))
        return torch.cat(frames)
