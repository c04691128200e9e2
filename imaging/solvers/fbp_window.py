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
from typing import ClassVar

import numpy as np
import torch

from ..operators import DynamicMRI, DynamicTomography, LinearOperator, ifft2c
from ..operators.nufft import DynamicNonCartesianMRI, radial_density_weights
from ..schedules import MAX_INTERVAL_RATIO, angular_weights  # noqa: F401  (MAX_INTERVAL_RATIO: importable from here as before)
from .registry import register
from .base import ParameterError, Solver, SolverParams, image_array, param

FILTERS = ("ramp", "shepp-logan", "cosine", "hann")

#: Frames gridded at once by the radial MRI baseline (bounds the windowed samples' memory).
_GRIDDING_CHUNK_FRAMES = 8

#: Views per window when ``window`` is 0 (tomography).
DEFAULT_TOMOGRAPHY_WINDOW = 32


@dataclasses.dataclass
class FBPWindowParams(SolverParams):
    """Parameters of :class:`FBPWindow`."""

    # One step, no random choice: the shared parameters mean nothing here.
    max_iter: int = param(1, "fbp-window computes its result in one step", applies=False)
    seed: int = param(0, "fbp-window makes no random choice", applies=False)
    window: int = param(
        0,
        "views (tomography) or frames (MRI) nearest in time combined into each frame; 0 = automatic: "
        f"{DEFAULT_TOMOGRAPHY_WINDOW} views, or for MRI the frames needed to fill k-space once on average "
        "(radial: pi/2 N spokes, the angular Nyquist rate)",
        minimum=0,
        basic=True,
    )
    filter: str = param(
        "ramp", "ramp filter apodisation (tomography): ramp, shepp-logan, cosine or hann", choices=FILTERS, basic=True
    )

    def validate(self) -> None:
        super().validate()
        if self.window < 0:
            raise ParameterError(f"window must be >= 0 (0 = automatic), got {self.window}")


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


def sliding_view_weights(angles: np.ndarray, window_views: int, period: float = np.pi) -> torch.Tensor:
    """Weights of the views in each frame's sliding window (tomography).

    Parameters
    ----------
    angles : numpy.ndarray
        (P, V) view angles in radians.
    window_views : int
        Views per window; the window is the ``ceil(window_views / V)`` whole frames
        nearest in time (:func:`window_starts`).
    period : float
        The rotation after which views repeat the same rays (:func:`angular_weights`):
        pi for parallel beam, 2 pi for a fan beam.

    Returns
    -------
    torch.Tensor
        Sparse CSR float32 (P, P * V) on the CPU: ``w_{p,m}`` (:func:`angular_weights`)
        of view ``m`` (frame-major order) in frame ``p``.
    """
    n_frames, n_views = angles.shape
    window_frames = min(n_frames, math.ceil(window_views / n_views))
    views_per_window = window_frames * n_views
    starts = window_starts(n_frames, window_frames)
    values = np.concatenate([angular_weights(angles[s : s + window_frames].ravel(), period) for s in starts])
    columns = (starts[:, None] * n_views + np.arange(views_per_window)).ravel()
    row_pointers = np.arange(n_frames + 1) * views_per_window
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(row_pointers),
            torch.from_numpy(columns),
            torch.from_numpy(values.astype(np.float32)),
            size=(n_frames, n_frames * n_views),
        )


class SlidingWindowMethod:
    """How ``fbp-window`` turns the data nearest in time into a frame, for one operator class.

    The method differs by physics (filtered back-projection, zero-filled inverse FFT), so
    each operator class has one (:data:`WINDOW_METHODS`); a new modality adds its own.
    """

    def default_window(self, measurements) -> int:
        """The window used when the parameter ``window`` is 0 (automatic)."""
        raise NotImplementedError

    def reconstruct(self, measurements, window: int, filter_kind: str, device) -> tuple[torch.Tensor, float]:
        """Frames float32 (P, N, N) on ``device`` and their relative data residual."""
        raise NotImplementedError


class SlidingFBP(SlidingWindowMethod):
    """Tomography: every frame is the weighted FBP of the ``window`` views nearest in time."""

    def default_window(self, measurements) -> int:
        return DEFAULT_TOMOGRAPHY_WINDOW

    def reconstruct(self, measurements, window, filter_kind, device):
        m = measurements
        n_frames, n_views, n_detectors = m.sinogram.shape
        size = m.image_shape[0]
        geometry = m.projection_geometry()
        # One "frame" per view: its adjoint back-projects every view on its own. Applied
        # twice, so ASTRA projects on the fly (on the CPU, also for a CUDA run): storing
        # the weights would cost their memory and about 40 products' time.
        per_view = DynamicTomography(
            m.angles.reshape(-1, 1),
            m.image_shape,
            n_detectors,
            m.detector_spacing,
            device=device,
            projector_backend="matrix-free",
            **m.geometry_fields(),
        )
        data = torch.from_numpy(m.sinogram).to(device)
        # Fan beam: cosine pre-weights, and distance weights on the matched back-projection
        # (imaging.operators.geometry.ProjectionGeometry.fbp_pixel_weights).
        detector_weights = torch.from_numpy(geometry.fbp_detector_weights()).float().to(device)
        filtered = filter_views((data * detector_weights).reshape(-1, 1, n_detectors), filter_kind)
        backprojections = per_view.adjoint(filtered).reshape(n_frames * n_views, size * size)
        pixel_weights = geometry.fbp_pixel_weights(m.angles, size)
        if pixel_weights is not None:
            backprojections *= torch.from_numpy(pixel_weights).reshape(n_frames * n_views, -1).to(device)
        weights = sliding_view_weights(m.angles, window, geometry.angular_period).to(device)
        frames = (weights @ backprojections).reshape(n_frames, size, size)
        per_view_frames = frames if n_views == 1 else frames.repeat_interleave(n_views, dim=0)
        measured = per_view.forward(per_view_frames).reshape(data.shape)
        return frames, _relative_residual(measured, data)


class SlidingZeroFilling(SlidingWindowMethod):
    """Cartesian MRI: every frame from the k-space averaged over the ``window`` frames nearest in time."""

    def default_window(self, measurements) -> int:
        # The frames needed to fill k-space once on average.
        sampled_fraction = float(np.mean(measurements.mask))
        return max(1, math.ceil(1.0 / sampled_fraction)) if sampled_fraction > 0 else measurements.n_frames

    def reconstruct(self, measurements, window, filter_kind, device):
        m = measurements
        window_frames = min(m.n_frames, window)
        combined = torch.from_numpy(window_average_kspace(m.kspace, m.mask, window_frames)).to(device)
        return _coil_combined(m, ifft2c(combined), device)


class SlidingGridding(SlidingWindowMethod):
    """Radial MRI: every frame is the density-compensated gridding of the spokes of the ``window`` nearest frames."""

    def default_window(self, measurements) -> int:
        # The frames that hold pi/2 N spokes, the angular Nyquist rate.
        spokes_per_frame = measurements.trajectory.shape[1]
        return max(1, math.ceil(0.5 * math.pi * max(measurements.image_shape) / spokes_per_frame))

    def reconstruct(self, measurements, window, filter_kind, device):
        m = measurements
        n_frames, n_coils, n_shots, n_samples = m.kspace.shape
        window_frames = min(n_frames, window)
        frames_in_window = window_starts(n_frames, window_frames)[:, None] + np.arange(window_frames)  # (P, F)
        gridded = []
        # A few frames at a time: the windowed samples are F times the data.
        for first in range(0, n_frames, _GRIDDING_CHUNK_FRAMES):
            chunk = frames_in_window[first : first + _GRIDDING_CHUNK_FRAMES]
            trajectory = m.trajectory[chunk].reshape(len(chunk), window_frames * n_shots, n_samples, 2)
            samples = np.moveaxis(m.kspace[chunk], 2, 1).reshape(len(chunk), n_coils, window_frames * n_shots, n_samples)
            weights = radial_density_weights(trajectory, m.image_shape)[:, None]
            per_coil = DynamicNonCartesianMRI(trajectory, m.image_shape, device=device, complex_image=True)
            coil_samples = torch.from_numpy((samples * weights).astype(np.complex64)).to(device)
            gridded.append(torch.stack([per_coil.adjoint(coil_samples[:, c : c + 1]) for c in range(n_coils)], dim=1))
        return _coil_combined(m, torch.cat(gridded), device)


def _coil_combined(measurements, coil_images: torch.Tensor, device) -> tuple[torch.Tensor, float]:
    """Frames from coil images (P, C, H, W), ``sum_c conj(S_c) x_c / sum_c |S_c|^2``, and their data residual.

    The frames are complex when the operator's images are (MRI), else the real part.
    """
    m = measurements
    operator = m.operator(device=device)
    if m.coil_maps is None:
        frames = coil_images[:, 0]
    else:
        maps = torch.from_numpy(m.coil_maps).to(device)
        sensitivity = maps.abs().square().sum(dim=0)
        combined_image = torch.sum(maps.conj()[None] * coil_images, dim=1)
        frames = torch.where(sensitivity > 0, combined_image / sensitivity.clamp_min(1e-30), 0.0)
    frames = (frames.to(torch.complex64) if operator.is_complex_domain else frames.real.float()).contiguous()
    return frames, _relative_residual(operator.forward(frames), operator.measured(m.kspace))


#: The sliding-window method of each operator class (a subclass inherits its base's).
WINDOW_METHODS: dict[type[LinearOperator], SlidingWindowMethod] = {
    DynamicTomography: SlidingFBP(),
    DynamicMRI: SlidingZeroFilling(),
    DynamicNonCartesianMRI: SlidingGridding(),
}


def window_method(operator_class: type[LinearOperator]) -> SlidingWindowMethod:
    """The :class:`SlidingWindowMethod` of an operator class (or of its nearest base)."""
    for cls in operator_class.__mro__:
        if cls in WINDOW_METHODS:
            return WINDOW_METHODS[cls]
    raise ParameterError(f"fbp-window has no sliding-window method for {operator_class.__name__} data")


@register
class FBPWindow(Solver):
    """Sliding-window FBP (tomography) and sliding-window zero filling (MRI).

    See the module docstring for the method; the operator class of the measurements
    picks the variant (:func:`window_method`). Non-iterative: one :meth:`step` computes
    the reconstruction and logs ``data_residual`` = ``||A f - g|| / ||g||`` with the
    measurement operator ``A``.
    """

    name = "fbp-window"
    Params = FBPWindowParams
    # Memory model (fitted with benchmarks/memory_model.py): tomography builds no stored
    # operator (the per-view projector is matrix-free) and holds the back-projections, the
    # frames and a temporary (3.2 stacks); MRI the windowed k-space, the coil images and the
    # frames (7 stacks) besides the operator of its residual.
    fixed_bytes = 12 * 2**20
    state_copies = 3.2
    mri_state_copies: ClassVar[float] = 3.5
    multicoil_includes_stacks = True
    multicoil_coil_copies = {"cartesian": 3.6, "non-cartesian": 4.5}
    multicoil_fixed_bytes = 16 * 2**20

    @classmethod
    def operator_bytes(cls, size, device_type="cpu", memory_bytes=None) -> int:
        return 0 if size.modality == "tomography" else super().operator_bytes(size, device_type, memory_bytes)

    @classmethod
    def state_bytes(cls, size, params) -> int:
        if size.multicoil:
            return 0  # in multicoil_coil_copies
        copies = cls.state_copies if size.modality == "tomography" else cls.mri_state_copies
        return int(copies * size.stack_bytes)

    def __init__(self, measurements, params: FBPWindowParams, device="cpu"):
        super().__init__(measurements, params, device)
        self.method = window_method(measurements.operator_class)
        self._estimate: torch.Tensor | None = None

    def window_size(self) -> int:
        """The window actually used: views (tomography) or frames (MRI)."""
        return self.params.window if self.params.window > 0 else self.method.default_window(self.measurements)

    def step(self) -> dict[str, float]:
        with torch.no_grad():
            self._estimate, residual = self.method.reconstruct(
                self.measurements, self.window_size(), self.params.filter, self.device
            )
        return {"data_residual": residual}

    def converged(self) -> bool:
        return self._estimate is not None

    def frames(self) -> torch.Tensor:
        """The reconstruction, float32 (P, N, N) on the solver's device (zeros before :meth:`step`)."""
        if self._estimate is None:
            return torch.zeros((self.measurements.n_frames, *self.measurements.image_shape), device=self.device)
        return self._estimate

    def estimate(self) -> np.ndarray:
        return image_array(self.frames())

    def state_dict(self):
        state = super().state_dict()
        if self._estimate is not None:
            state["estimate"] = self._estimate.cpu()
        return state

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        if "estimate" in state:
            self._estimate = state["estimate"].to(self.device)
