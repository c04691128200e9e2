"""Applying a 2D denoiser to a stack of frames, whole or in overlapping patches.

Patch mode is the paper's variant for large images: it bounds the memory of one
network call by the patch size instead of the image size. Patches of side ``B`` are
placed with stride ``B - overlap``; the last patch along each axis is aligned to the
image edge, so every pixel is covered. The patch outputs are blended with separable
weights that are zero within a margin of each patch edge that lies inside the image
(where the patch's zero padding differs from the neighbouring image content), then
rise as a raised cosine across the overlap. On the regular overlaps the weights of
neighbouring patches sum to one; everywhere the result is normalised by the summed
weights. When the network's receptive radius fits inside the margin the blend equals
the full-image output exactly, so there are no seams.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def patch_starts(length: int, patch: int, stride: int) -> list[int]:
    """Start offsets of patches of size ``patch`` covering ``[0, length)``.

    Consecutive starts are ``stride`` apart; the last start is ``length - patch`` so the
    last patch ends at the edge. A patch at least as long as the axis gives ``[0]``.
    """
    if patch >= length:
        return [0]
    count = math.ceil((length - patch) / stride) + 1
    starts = [k * stride for k in range(count - 1)]
    starts.append(length - patch)
    return starts


def _edge_taper(size: int, overlap: int, margin: int, taper_start: bool, taper_end: bool) -> torch.Tensor:
    """1D blending weights of one patch: 0 for ``margin`` pixels at a tapered end, then a
    raised-cosine ramp over ``overlap - 2 * margin`` pixels, then 1."""
    weights = torch.ones(size, dtype=torch.float64)
    ramp_length = overlap - 2 * margin
    if ramp_length <= 0:
        return weights
    phase = (torch.arange(ramp_length, dtype=torch.float64) + 0.5) / ramp_length
    ramp = torch.sin(0.5 * math.pi * phase) ** 2
    rising = torch.cat([torch.zeros(margin, dtype=torch.float64), ramp])
    if taper_start:
        weights[: rising.numel()] *= rising
    if taper_end:
        weights[size - rising.numel():] *= rising.flip(0)
    return weights


def _axis_windows(length: int, patch: int, overlap: int, margin: int) -> list[tuple[int, torch.Tensor]]:
    patch = min(patch, length)
    starts = patch_starts(length, patch, patch - overlap)
    return [
        (s, _edge_taper(patch, overlap, margin, taper_start=s > 0, taper_end=s + patch < length))
        for s in starts
    ]


def _receptive_radius(model: nn.Module) -> int | None:
    field = getattr(model, "receptive_field", None)
    return int(field) // 2 if isinstance(field, int) else None


#: Working memory (bytes) a denoiser call may take when the batch is chosen automatically
#: (:func:`denoise_layout`): activations of the images of one call.
DENOISER_WORKING_BYTES = 256 * 2**20
#: Images per call at most when the batch is chosen automatically (more gains no speed).
MAX_AUTO_BATCH = 8
#: On the CPU, pixels per call at most when the batch is chosen automatically: a call's
#: activations should stay in the caches. Measured in red-psm's f step (P = 256, 2 cores,
#: 32 MiB L3; seconds per iteration): N = 128 batch 8 0.80-0.90, batch 1 1.15; N = 256
#: batch 8 4.7-5.1, 4 3.1, 2 2.6, 1 2.5; N = 512 batch 4 20.1, 1 12.5 (patches of 256 were
#: slower: 26-29). Whole frames larger than this still go one per call.
CPU_PIXELS_PER_CALL = 2**17
#: Side of the patches when a whole frame's activations exceed the working memory.
AUTO_PATCH_SIZE = 256
#: Overlap of neighbouring patches unless the receptive field needs more.
DEFAULT_PATCH_OVERLAP = 16


def working_bytes_per_pixel(model: nn.Module | None) -> int:
    """Peak memory of one call of ``model`` per input pixel (bytes), from its widest layer.

    Measured with channels-last convolutions on the CPU (DnCNN of width 16, 32, 64: 139,
    258, 515 bytes per pixel): two float32 activations of the widest layer are alive at
    a time, plus input and output; modelled as ``8 * width + 40``. The width is the
    model's ``activation_width`` where it states one (a DnCNN ensemble runs its members one
    after another, so one member's width), else its widest ``Conv2d``; a module without
    ``Conv2d`` layers (or ``None``, an unknown one) counts as width 64.
    """
    width = getattr(model, "activation_width", None)
    if width is None:
        modules = [] if model is None else model.modules()
        widths = [layer.out_channels for layer in modules if isinstance(layer, nn.Conv2d)]
        width = max(widths) if widths else 64
    return 8 * width + 40


def exact_patch_overlap(model: nn.Module) -> int:
    """Patch overlap that makes patch mode equal to whole frames (:func:`denoise_frames`):
    ``2 r + 1`` for a receptive radius ``r``, at least :data:`DEFAULT_PATCH_OVERLAP`."""
    radius = _receptive_radius(model)
    return DEFAULT_PATCH_OVERLAP if radius is None else max(DEFAULT_PATCH_OVERLAP, 2 * radius + 1)


def denoise_layout(
    model: nn.Module | None, image_shape: tuple[int, int], patch_size: int = 0, batch_size: int = 0,
    working_bytes: int | None = None, device: str | torch.device = "cpu",
) -> tuple[int | None, int]:
    """How to denoise frames of ``image_shape`` within ``working_bytes``: patches and batch.

    Parameters
    ----------
    model : torch.nn.Module or None
        The denoiser (None: an unknown one, see :func:`working_bytes_per_pixel`).
    image_shape : tuple of int
        (H, W) of a frame.
    patch_size : int
        > 0: patches of this side; 0: whole frames while one frame's activations
        (:func:`working_bytes_per_pixel`) fit ``working_bytes``, otherwise patches of
        :data:`AUTO_PATCH_SIZE`.
    batch_size : int
        > 0: images per call; 0: as many as fit ``working_bytes`` (1 to
        :data:`MAX_AUTO_BATCH`), on the CPU also at most :data:`CPU_PIXELS_PER_CALL`
        pixels (at least one image).
    working_bytes : int, optional
        Default :data:`DENOISER_WORKING_BYTES`.
    device : str or torch.device
        Where the denoiser runs.

    Returns
    -------
    patch : int or None
        The ``patch_size`` argument of :func:`denoise_frames` (None: whole frames).
    batch : int
        Frames or patches per call.
    """
    working_bytes = DENOISER_WORKING_BYTES if working_bytes is None else working_bytes
    per_pixel = working_bytes_per_pixel(model)
    height, width = image_shape
    if patch_size > 0:
        patch = patch_size
    else:
        patch = None if per_pixel * height * width <= working_bytes else AUTO_PATCH_SIZE
    image_pixels = height * width if patch is None else min(patch, height) * min(patch, width)
    if batch_size > 0:
        return patch, batch_size
    batch = min(MAX_AUTO_BATCH, working_bytes // (per_pixel * image_pixels))
    if torch.device(device).type == "cpu":
        batch = min(batch, CPU_PIXELS_PER_CALL // image_pixels)
    return patch, max(1, batch)


#: Arithmetic a denoiser may run in (:func:`denoise_frames`'s ``precision``).
PRECISIONS = ("float32", "bfloat16")


def native_bfloat16(device: torch.device | str = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (fast, not emulated).

    CPUs with AVX512-BF16 or AMX do (on the 2-core benchmark machine oneDNN's bfloat16
    convolutions of the shipped DnCNN ran about twice as fast as float32,
    ``benchmarks/results/denoiser.md``); CPUs without them emulate bfloat16, which is not
    expected to pay (not measured here). CUDA devices answer ``False``: their float32
    denoiser is fast enough that the rounding is not worth it.
    """
    if torch.device(device).type != "cpu":
        return False
    # Private helpers of torch.cpu (present since torch 2.3); without them, assume no.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def resolve_precision(precision: str, device: torch.device | str = "cpu") -> str:
    """``precision`` ("auto" or one of :data:`PRECISIONS`) as a run on ``device`` uses it:
    "auto" is bfloat16 where :func:`native_bfloat16`, else float32."""
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def _model_device(model: nn.Module) -> torch.device:
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def denoise_frames(
    model: nn.Module,
    frames: torch.Tensor | np.ndarray,
    patch_size: int | None = None,
    patch_overlap: int = DEFAULT_PATCH_OVERLAP,
    batch_size: int = 32,
    precision: str = "float32",
) -> torch.Tensor | np.ndarray:
    """Denoise each frame of a stack with a 2D denoiser.

    Parameters
    ----------
    model : torch.nn.Module
        Maps float32 ``(B, 1, h, w)`` to ``(B, 1, h, w)``, e.g. from
        :func:`~imaging.denoisers.load_denoiser`.
    frames : torch.Tensor or numpy.ndarray
        Real stack of shape ``(P, H, W)``.
    patch_size : int or None
        ``None``: full-image mode, the model sees whole frames, ``batch_size`` frames
        per call. An integer ``B``: patch mode with ``B x B`` patches (clipped to the
        frame size), ``batch_size`` patches per call.
    patch_overlap : int
        Overlap of neighbouring patches in pixels, ``0 <= patch_overlap < patch_size``.
        The blending margin is the model's receptive radius (``receptive_field // 2``)
        when it reports one, capped at ``(patch_overlap - 1) // 2``, otherwise
        ``patch_overlap // 4``; the result equals full-image mode exactly when the
        receptive radius does not exceed the margin.
    batch_size : int
        Images (frames or patches) per network call; bounds the memory.
    precision : {"float32", "bfloat16"}
        Arithmetic of the network's layers. ``"bfloat16"`` runs them under
        ``torch.autocast`` (inputs and weights rounded to 8 significant bits); a residual
        network's final ``x - residual`` and the result stay float32, so the rounding
        scales with the removed residual, not with the image. Fast only where
        :func:`native_bfloat16` says so.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        Denoised stack, same shape, dtype, device and array type as ``frames``.
        Computed without autograd (``torch.no_grad``), so the result can be used as a
        constant in later autograd computations.
    """
    as_numpy = isinstance(frames, np.ndarray)
    stack = torch.from_numpy(frames) if as_numpy else frames
    if not isinstance(stack, torch.Tensor):
        raise TypeError(f"denoise_frames expects a torch tensor or numpy array, got {type(frames).__name__}")
    if stack.ndim != 3:
        raise ValueError(f"denoise_frames expects frames of shape (P, H, W), got {tuple(stack.shape)}")
    if stack.is_complex():
        raise ValueError("denoise_frames expects real frames, got a complex tensor")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = _model_device(model)

    def network(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            return model(batch)

    with torch.no_grad():
        if patch_size is None:
            result = _denoise_full(network, stack, device, batch_size)
        else:
            if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
                raise ValueError(f"patch_size must be a positive integer or None, got {patch_size!r}")
            if isinstance(patch_overlap, bool) or not isinstance(patch_overlap, int) or not (
                0 <= patch_overlap < patch_size
            ):
                raise ValueError(
                    f"patch_overlap must be an integer with 0 <= patch_overlap < patch_size "
                    f"({patch_size}), got {patch_overlap!r}"
                )
            radius = _receptive_radius(model)
            result = _denoise_patches(network, radius, stack, device, patch_size, patch_overlap, batch_size)
    result = result.to(device=stack.device, dtype=stack.dtype)
    return result.numpy() if as_numpy else result


def _denoise_full(network, stack: torch.Tensor, device: torch.device, batch_size: int) -> torch.Tensor:
    out = torch.empty(stack.shape, dtype=torch.float32, device=device)
    for first in range(0, stack.shape[0], batch_size):
        batch = stack[first:first + batch_size].to(device=device, dtype=torch.float32)
        out[first:first + batch.shape[0]] = network(batch[:, None])[:, 0]
    return out


def _denoise_patches(
    network, radius: int | None, stack: torch.Tensor, device: torch.device, patch_size: int, overlap: int,
    batch_size: int,
) -> torch.Tensor:
    n_frames, height, width = stack.shape
    margin = min(radius, (overlap - 1) // 2) if radius is not None else overlap // 4
    margin = max(margin, 0)
    rows = _axis_windows(height, patch_size, overlap, margin)
    cols = _axis_windows(width, patch_size, overlap, margin)
    ph, pw = min(patch_size, height), min(patch_size, width)

    weight_sum = torch.zeros(height, width, dtype=torch.float64)
    windows = {}
    for r, wr in rows:
        for c, wc in cols:
            window = torch.outer(wr, wc)
            windows[(r, c)] = window.to(device=device, dtype=torch.float32)
            weight_sum[r:r + ph, c:c + pw] += window
    # The construction guarantees coverage; this guards against a future change of it.
    if not bool((weight_sum > 0).all()):
        raise RuntimeError("patch blending left pixels without weight; this is a bug in the patch layout")

    accum = torch.zeros((n_frames, height, width), dtype=torch.float32, device=device)
    jobs = [(p, r, c) for p in range(n_frames) for r, _ in rows for c, _ in cols]
    for first in range(0, len(jobs), batch_size):
        chunk = jobs[first:first + batch_size]
        batch = torch.stack([stack[p, r:r + ph, c:c + pw] for p, r, c in chunk])
        denoised = network(batch.to(device=device, dtype=torch.float32)[:, None])[:, 0].float()
        for (p, r, c), patch in zip(chunk, denoised):
            accum[p, r:r + ph, c:c + pw] += windows[(r, c)] * patch
    return accum / weight_sum.to(device=device, dtype=torch.float32)
