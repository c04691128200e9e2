"""Time-varying volumes: stacks of 2D slices, reconstructed slice by slice.

A volume measurement (see :class:`imaging.measurements.Measurements`) holds Z slices
that share the time axis and the acquisition schedule. For parallel-beam tomography a
slice is measured by its own detector row, so reconstructing slice by slice is exact
(no approximation against a 3D cone-beam model, and ASTRA's 3D projectors need CUDA);
for Cartesian multi-slice MRI every slice has its own k-space. Every slice is therefore
an independent 2D problem, which :func:`reconstruct_volume` solves in turn and
:mod:`imaging.batch` spreads over Dask workers.

Shapes, time first (P frames, Z slices, N x N or H x W grid, V views, D detector bins,
C coils):

==================  ==========================  =====================================
array               one slice                   volume
==================  ==========================  =====================================
``image_shape``     (N, N)                      (Z, N, N)
``sinogram``        (P, V, D)                   (P, V, Z, D)
``angles``          (P, V)                      (P, V), shared by all slices
``kspace``          (P, C, H, W)                (P, Z, C, H, W)
``mask``            (P, H, W)                   (P, H, W) shared, or (P, Z, H, W)
``coil_maps``       (C, H, W)                   (C, H, W) shared, or (Z, C, H, W)
``ground_truth``    (P, N, N)                   (P, Z, N, N)
reconstruction      (P, N, N)                   (P, Z, N, N)
==================  ==========================  =====================================
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .measurements import MeasurementError, Measurements
from .solvers import IterationInfo, ReconstructionResult, reconstruct


@dataclasses.dataclass
class SliceIterationInfo(IterationInfo):
    """:class:`imaging.solvers.IterationInfo` of one slice of a volume reconstruction.

    ``estimate()`` returns the current (P, N, N) estimate of slice ``slice_index``.
    """

    slice_index: int
    n_slices: int


def slice_checkpoint(checkpoint: str | os.PathLike, z: int) -> Path:
    """The checkpoint file of slice ``z`` for a volume run given ``checkpoint``.

    ``reconstruct_volume(..., checkpoint="out.npz.ckpt")`` writes one checkpoint per
    slice, ``out.npz.ckpt.z0000``, ``out.npz.ckpt.z0001``, ...; remove them with this
    function once the volume is saved.
    """
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.name}.z{z:04d}")


def assemble_volume(slice_results: Sequence[ReconstructionResult], n_slices: int) -> ReconstructionResult:
    """Stack per-slice results into one volume result.

    Parameters
    ----------
    slice_results : sequence of ReconstructionResult
        Results of slices 0, 1, ..., k-1 in order (k <= ``n_slices``), each with a
        float32 (P, N, N) reconstruction, all by the same method and parameters.
    n_slices : int
        Z; slices without a result (a run stopped early) are left at zero.

    Returns
    -------
    ReconstructionResult
        ``reconstruction`` float32 (P, Z, N, N); ``history`` every slice's entries in
        slice order, each tagged with ``"slice": z``; ``elapsed_seconds`` the sum over
        slices; ``stop_reason`` the slices' reasons, distinct ones joined by ", " in
        slice order (e.g. "max_iter" or "converged, max_iter"); ``extras[name]`` the
        slices' extras stacked on a leading slice axis (k, ...).
    """
    if not slice_results:
        raise ValueError("assemble_volume needs the result of at least one slice")
    if len(slice_results) > n_slices:
        raise ValueError(f"got {len(slice_results)} slice results for a volume of {n_slices} slices")
    first = slice_results[0]
    frames, height, width = first.reconstruction.shape
    reconstruction = np.zeros((frames, n_slices, height, width), dtype=np.float32)
    history: list[dict[str, Any]] = []
    reasons: list[str] = []
    for z, result in enumerate(slice_results):
        if result.reconstruction.shape != first.reconstruction.shape:
            raise ValueError(
                f"slice {z} has a reconstruction of shape {result.reconstruction.shape}, "
                f"slice 0 has {first.reconstruction.shape}"
            )
        if result.method != first.method or result.params != first.params:
            raise ValueError(f"slice {z} was reconstructed with other settings than slice 0")
        reconstruction[:, z] = result.reconstruction
        history.extend({"slice": z, **entry} for entry in result.history)
        if result.stop_reason not in reasons:
            reasons.append(result.stop_reason)
    extras = {
        name: np.stack([np.asarray(result.extras[name]) for result in slice_results])
        for name in first.extras
        if all(name in result.extras for result in slice_results)
    }
    return ReconstructionResult(
        reconstruction=reconstruction,
        method=first.method,
        params=first.params,
        history=history,
        elapsed_seconds=float(sum(result.elapsed_seconds for result in slice_results)),
        stop_reason=", ".join(reasons),
        extras=extras,
    )


def reconstruct_volume(
    measurements: Measurements,
    method: str = "red-psm",
    callback: Callable[[SliceIterationInfo], Any] | None = None,
    *,
    checkpoint: str | os.PathLike | None = None,
    **kwargs,
) -> ReconstructionResult:
    """Reconstruct every slice of a volume with ``method``, one after the other.

    Each slice runs :func:`imaging.solvers.reconstruct` with the same method, parameters
    and seed, so slice z of the result equals a single-slice run on
    ``measurements.slice(z)``.

    Parameters
    ----------
    measurements : Measurements
        A volume (``measurements.is_volume``).
    method : str
        A key of :data:`imaging.solvers.METHODS`.
    callback : callable, optional
        Called after every outer iteration of every slice with a
        :class:`SliceIterationInfo`. Returning ``False`` or raising ``StopIteration``
        stops the current slice and skips the remaining ones (their images stay zero,
        ``stop_reason`` then contains "stopped").
    checkpoint : path, optional
        Base name of the checkpoints: slice z checkpoints to
        :func:`slice_checkpoint` ``(checkpoint, z)``. With ``resume=True`` every slice
        continues from its own checkpoint, so a finished slice is not recomputed.
    **kwargs
        Passed to :func:`imaging.solvers.reconstruct` for every slice: ``device``,
        ``preset``, ``resume``, ``checkpoint_every``, ``metrics_every`` and the method's
        parameters.

    Returns
    -------
    ReconstructionResult
        ``reconstruction`` float32 (P, Z, N, N); see :func:`assemble_volume` for the
        other fields.
    """
    if not measurements.is_volume:
        raise MeasurementError(
            "reconstruct_volume needs volume measurements (image_shape (Z, N, N)); "
            "reconstruct a single slice with imaging.reconstruct"
        )
    n_slices = measurements.n_slices
    results: list[ReconstructionResult] = []
    for z in range(n_slices):
        slice_kwargs = dict(kwargs)
        if checkpoint is not None:
            slice_kwargs["checkpoint"] = slice_checkpoint(checkpoint, z)
        slice_callback = None
        if callback is not None:

            def slice_callback(info: IterationInfo, z=z):
                fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(IterationInfo)}
                return callback(SliceIterationInfo(**fields, slice_index=z, n_slices=n_slices))

        result = reconstruct(measurements.slice(z), method, callback=slice_callback, **slice_kwargs)
        results.append(result)
        if result.stop_reason == "stopped":
            break
    return assemble_volume(results, n_slices)


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
    from . import metrics

    reconstruction = np.asarray(reconstruction, dtype=np.float32)
    reference = np.asarray(reference, dtype=np.float32)
    if reconstruction.ndim != 4 or reconstruction.shape != reference.shape:
        raise ValueError(
            f"evaluate_volume needs two (P, Z, N, N) arrays of equal shape, got {reconstruction.shape} "
            f"and {reference.shape}"
        )
    frames, n_slices, height, width = reference.shape
    per_slice = [metrics.evaluate(reconstruction[:, z], reference[:, z]) for z in range(n_slices)]
    scores = {name: float(np.mean([s[name] for s in per_slice])) for name in per_slice[0]}
    # PSNR is pointwise, so the (P, Z, N, N) volume may be laid out as P frames of (Z*N, N).
    flat_reconstruction = reconstruction.reshape(frames, n_slices * height, width)
    flat_reference = reference.reshape(frames, n_slices * height, width)
    scores["psnr"] = float(metrics.psnr(flat_reconstruction, flat_reference))
    scores["psnr_frame_mean"] = float(np.mean(metrics.psnr_frames(flat_reconstruction, flat_reference)))
    return scores


# -- simulation ---------------------------------------------------------------------------
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
    from .simulate import frame_angles, simulate_tomography

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
        Real time-varying volume.
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
    from .simulate import simulate_mri

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
    from .simulate import simulate

    return simulate(phantom, frames=frames, size=size, slices=slices, **options)


__all__ = [
    "SliceIterationInfo",
    "assemble_volume",
    "evaluate_volume",
    "reconstruct_volume",
    "simulate_volume",
    "simulate_volume_mri",
    "simulate_volume_tomography",
    "slice_checkpoint",
]
