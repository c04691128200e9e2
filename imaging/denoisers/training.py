"""Training a DnCNN denoiser for RED-PSM, with a provenance record.

Inside the ADMM loop of RED-PSM the denoiser meets the low-rank (PSM) estimate plus
residual artefacts, not white Gaussian noise, and it must leave nearly clean frames
alone. The training noise reflects that:

- white Gaussian noise with a standard deviation drawn independently for every image
  of every batch, uniformly from ``noise_range`` (relative to the image maximum 1);
- a fraction ``clean_fraction`` of the images gets no noise at all, which pins the
  network to the identity on clean input;
- a fraction ``streak_fraction`` of the images also gets streak noise: one to three
  smooth 1D random profiles smeared along random directions, the shape of the errors
  that single-view-per-frame tomography leaves behind (back-projected residuals).

Blur is deliberately not used as a perturbation: undoing blur is deconvolution, which
amplifies noise and would make the denoiser expansive on clean input.

The loss is the MSE with each image weighted by ``1 / (std**2 + loss_floor**2)``: plain
MSE is dominated by the noisiest images and leaves the network sloppy on clean ones. The
floor sets the balance: with 0.005 (``dncnn-v2``) a clean crop weighs about 250 times a
reconstruction pair (std about 0.08) and the network barely learns the pairs; with 0.02
(``dncnn-v3``, pairs half of each batch, red-psm iterates among them) RED-PSM gains
0.9-2.4 dB on the tuning cases at the price of clean-in/clean-out PSNR 40-56 dB instead
of 48-69 (``benchmarks/results/tune_red_psm.md``, section 7).
Images are augmented by random flips and 90-degree rotations; a held-out set of images
gives the validation loss (plain MSE over white noise at fixed levels, fixed draw).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._version import __version__
from ..operators.base import resolve_device
from .dncnn import DnCNN
from .training_data import FAMILIES, ImagePairs, generate_static_objects, load_image_files
from .weights import save_denoiser, weights_record, write_provenance

#: Noise levels at which the validation PSNR is reported (those inside ``noise_range``,
#: plus its end points).
VALIDATION_LEVELS = (0.0, 0.01, 0.02, 0.05, 0.1)

_FINAL_LR_FRACTION = 0.05

#: Noise samplings of the training perturbations; "log-uniform" draws ``log(std)``
#: uniformly between ``log(max(low, LOG_UNIFORM_LOWEST))`` and ``log(high)``, so nearly
#: clean images are as common as noisy ones.
NOISE_SAMPLINGS = ("uniform", "log-uniform")
LOG_UNIFORM_LOWEST = 1e-3

#: Held-out pairs whose centre crops give the validation PSNR of the pair source.
_VALIDATION_PAIRS = 256


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_fraction(name: str, value, low_open: bool) -> float:
    value = float(value)
    ok = (0.0 < value < 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        bounds = "0 < x < 1" if low_open else "0 <= x <= 1"
        raise ValueError(f"{name} must satisfy {bounds}, got {value!r}")
    return value


def _random_crops(images: list[torch.Tensor], indices: np.ndarray, patch: int,
                  rng: np.random.Generator, partners: list[torch.Tensor] | None = None):
    """One random ``patch x patch`` crop of each selected image, randomly flipped and rotated.

    With ``partners`` (images of the same shapes, e.g. the clean targets of degraded
    inputs) the same crops of the partners are returned too: ``(crops, partner_crops)``.
    """
    crops, partner_crops = [], []
    for index in indices:
        image = images[index]
        top = rng.integers(0, image.shape[0] - patch + 1)
        left = rng.integers(0, image.shape[1] - patch + 1)
        flip, turns = rng.random() < 0.5, int(rng.integers(4))
        for source, out in ((image, crops), (None if partners is None else partners[index], partner_crops)):
            if source is None:
                continue
            crop = source[top:top + patch, left:left + patch]
            crop = torch.rot90(crop.flip(1) if flip else crop, turns, dims=(0, 1))
            out.append(crop)
    stacked = torch.stack(crops)[:, None]
    return stacked if partners is None else (stacked, torch.stack(partner_crops)[:, None])


def _streaks(count: int, shape: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``count`` unit-std fields ``(count, h, w)``, each the sum of 1-3 smooth random 1D
    profiles smeared along random directions."""
    height, width = shape
    length = int(math.ceil(math.hypot(height, width))) + 4
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32) - (height - 1) / 2,
                            torch.arange(width, dtype=torch.float32) - (width - 1) / 2, indexing="ij")
    n_profiles = 3 * count
    angles = torch.rand(n_profiles, 1, 1, generator=generator) * math.pi
    smoothing = 0.5 + 2.5 * torch.rand(n_profiles, 1, generator=generator)
    taps = torch.arange(-8, 9, dtype=torch.float32)
    kernels = torch.exp(-0.5 * (taps / smoothing) ** 2)
    kernels = (kernels / kernels.norm(dim=1, keepdim=True))[:, None]
    white = torch.randn(1, n_profiles, length + 16, generator=generator)
    profiles = F.conv1d(white, kernels, groups=n_profiles)[0]
    position = (xx * torch.cos(angles) + yy * torch.sin(angles) + length / 2).clamp(0, length - 1.001)
    left = position.floor().long().reshape(n_profiles, -1)
    frac = (position.reshape(n_profiles, -1) - left)
    values = torch.gather(profiles, 1, left) * (1 - frac) + torch.gather(profiles, 1, left + 1) * frac
    # Each field uses its first 1, 2 or 3 profiles.
    active = torch.arange(3)[None, :] < torch.randint(1, 4, (count, 1), generator=generator)
    fields = (values.reshape(count, 3, height, width) * active[:, :, None, None]).sum(1)
    return fields / fields.flatten(1).std(dim=1).clamp_min(1e-6)[:, None, None]


def _noise_levels(count: int, noise_range: tuple[float, float], sampling: str,
                  generator: torch.Generator) -> torch.Tensor:
    """``count`` standard deviations drawn from ``noise_range``, uniformly or log-uniformly."""
    low, high = noise_range
    draw = torch.rand(count, generator=generator)
    if sampling == "uniform":
        return low + (high - low) * draw
    low = max(low, LOG_UNIFORM_LOWEST)
    return low * (high / low) ** draw


def _corrupt(clean: torch.Tensor, noise_range: tuple[float, float], clean_fraction: float,
             streak_fraction: float, generator: torch.Generator,
             sampling: str = "uniform") -> tuple[torch.Tensor, torch.Tensor]:
    """Add the training perturbations of the module docstring to a batch ``(B, 1, h, w)``.

    Returns the perturbed batch and the total perturbation std of each image ``(B,)``.
    """
    batch = clean.shape[0]
    sigma = _noise_levels(batch, noise_range, sampling, generator)
    sigma[torch.rand(batch, generator=generator) < clean_fraction] = 0.0
    noisy = clean + sigma[:, None, None, None] * torch.randn(clean.shape, generator=generator)
    variance = sigma**2
    chosen = torch.nonzero((torch.rand(batch, generator=generator) < streak_fraction) & (sigma > 0)).flatten()
    if chosen.numel():
        streak_sigma = _noise_levels(chosen.numel(), noise_range, sampling, generator)
        noisy[chosen, 0] += streak_sigma[:, None, None] * _streaks(chosen.numel(), tuple(clean.shape[-2:]), generator)
        variance[chosen] += streak_sigma**2
    return noisy, variance.sqrt()


def _weighted_mse(estimate: torch.Tensor, clean: torch.Tensor, level: torch.Tensor, floor: float | None) -> torch.Tensor:
    """Mean squared error, each image weighted by ``1 / (level**2 + floor**2)`` (weights
    normalised to mean 1), so that low-noise and clean images count as much as noisy ones."""
    per_image = torch.mean((estimate - clean) ** 2, dim=(1, 2, 3))
    if floor is None:
        return per_image.mean()
    weights = 1.0 / (level.to(per_image.device) ** 2 + floor**2)
    return torch.sum(per_image * weights) / torch.sum(weights)


def _centre_crops(images, patch: int) -> torch.Tensor:
    """The centre ``patch x patch`` crop of each 2D image (tensors or arrays), as ``(B, 1, patch, patch)``."""
    crops = []
    for image in images:
        image = torch.as_tensor(image)
        top, left = (image.shape[0] - patch) // 2, (image.shape[1] - patch) // 2
        crops.append(image[top:top + patch, left:left + patch])
    return torch.stack(crops)[:, None]


def _validation_set(images: list[torch.Tensor], patch: int, levels: list[float], seed: int):
    """Centre crops of the held-out images and one fixed noisy copy per level."""
    clean = _centre_crops(images, patch)
    generator = torch.Generator().manual_seed(seed + 7919)
    noisy = [clean + level * torch.randn(clean.shape, generator=generator) for level in levels]
    return clean, noisy


def _psnr(estimate: torch.Tensor, reference: torch.Tensor) -> float | None:
    """PSNR in dB for data range 1; None when the images are identical."""
    mse = float(torch.mean((estimate - reference) ** 2))
    return None if mse == 0.0 else 10.0 * math.log10(1.0 / mse)


def _evaluate(model: DnCNN, clean: torch.Tensor, noisy: list[torch.Tensor], device: torch.device,
              batch_size: int) -> list[torch.Tensor]:
    was_training = model.training
    model.eval()
    outputs = []
    with torch.no_grad():
        for stack in noisy:
            parts = [model(stack[i:i + batch_size].to(device)).cpu() for i in range(0, stack.shape[0], batch_size)]
            outputs.append(torch.cat(parts))
    model.train(was_training)
    return outputs


def _validation_mse(outputs: list[torch.Tensor], clean: torch.Tensor) -> float:
    return float(np.mean([float(torch.mean((out - clean) ** 2)) for out in outputs]))


#: Bytes per activation of a training step: the float32 feature map, kept for the
#: backward pass with its ReLU mask and gradient (a generous 4 copies).
_BYTES_PER_ACTIVATION = 16
#: Bytes per network parameter while training: weight, gradient, two AdamW moments (float32).
_BYTES_PER_PARAMETER = 16


def _check_training_memory(depth: int, width: int, batch_size: int, patch_size: int) -> None:
    """Refuse an architecture or batch whose training would not fit the memory available."""
    from .._limits import check_memory

    depth = _check_int("depth", depth, 2)
    width = _check_int("width", width, 1)
    need = _BYTES_PER_PARAMETER * DnCNN.parameter_count(depth, width)
    need += _BYTES_PER_ACTIVATION * batch_size * patch_size**2 * width * depth
    check_memory(need, f"training a DnCNN of depth {depth} and width {width} on {batch_size} crops of {patch_size}^2",
                 hint="use a smaller depth, width, batch_size or patch_size")


def train_denoiser(
    output: str | os.PathLike,
    data: str | os.PathLike | list | None = None,
    *,
    n_images: int = 512,
    size: int = 96,
    depth: int = 5,
    width: int = 24,
    residual: bool = True,
    bias: bool = False,
    dilations: list[int] | None = None,
    epochs: int = 800,
    batch_size: int = 16,
    patch_size: int = 32,
    noise_range: tuple[float, float] = (0.0, 0.1),
    noise_sampling: str = "log-uniform",
    clean_fraction: float = 0.25,
    streak_fraction: float = 0.25,
    pairs: ImagePairs | Callable[[], ImagePairs] | None = None,
    pair_fraction: float = 0.0,
    loss_floor: float | None = 0.02,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    val_fraction: float = 0.1,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict:
    """Train a DnCNN denoiser and save its weights and provenance.

    The defaults are the settings of the shipped default ``imaging/data/denoiser/dncnn_v3.pt``
    except its second data source, the reconstruction pairs and their share of each batch
    (``imaging train-denoiser`` makes them by default, ``pair_fraction`` 0.5; see its
    provenance JSON for the exact command; 17 minutes with ``threads=1`` while other jobs ran).

    Parameters
    ----------
    output : str or os.PathLike
        Weights file to write (``.pt``); the provenance goes to the same stem with
        ``.json``. Both are written atomically at the end.
    data : str, os.PathLike, list or None
        Folder or list of static images (``.npy``, ``.tif``/``.tiff``, ``.png``; 2D or
        stacks ``(Z, H, W)``; each image min-max normalised to ``[0, 1]``). ``None``:
        ``n_images`` generated static objects of side ``size`` (see
        :func:`~imaging.denoisers.training_data.generate_static_objects`).
    n_images, size : int
        Number and side length of generated images (used only when ``data`` is None).
    depth, width, residual, bias, dilations
        DnCNN architecture (see :class:`~imaging.denoisers.DnCNN`).
    epochs : int
        Passes over the training images; each pass takes one random crop per image.
    batch_size : int
        Crops per optimisation step.
    patch_size : int
        Side of the random training crops; every image must be at least this large.
    noise_range : (float, float)
        ``(low, high)``: white-noise standard deviation, relative to the image maximum
        1, drawn for each image of each batch.
    noise_sampling : {"uniform", "log-uniform"}
        How the standard deviations are drawn from ``noise_range`` (see
        :data:`NOISE_SAMPLINGS`).
    clean_fraction : float
        Fraction of training images left without noise (teaches identity on clean input).
    streak_fraction : float
        Fraction of noisy training images that also get streak noise with a standard
        deviation drawn from ``noise_range``.
    pairs : ImagePairs or callable, optional
        A second source: (degraded input, clean target) pairs, e.g. intermediate
        reconstructions of dynamic objects (:func:`imaging.run.training_pairs.reconstruction_pairs`);
        their groups are split into training and validation like the images. A function
        returning the pairs is called once the other arguments and the images have been
        checked (so a mistake is reported before the pairs' cost is spent).
    pair_fraction : float
        Expected fraction of each batch drawn from ``pairs`` (0 without pairs).
    loss_floor : float or None
        The squared error of each training image is weighted by
        ``1 / (std**2 + loss_floor**2)``, where ``std`` is its total perturbation, so
        that the network is accurate on nearly clean input too (plain MSE lets the
        noisiest images dominate). None: plain MSE.
    lr, weight_decay : float
        AdamW learning rate (cosine-annealed to 5 % of it) and weight decay.
    val_fraction : float
        Fraction of the images held out for validation (at least one image each side).
    seed : int
        Seed of the data generator, the split, the crops, the noise and the weights.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    threads : int or None
        Number of CPU threads for torch during training (restored afterwards); None
        leaves torch's setting alone.
    progress : bool
        Show a tqdm progress bar.
    command : str or None
        The command line that started the training, recorded in the provenance
        (the CLI passes it); None records this function call.

    Returns
    -------
    dict
        The provenance record, also written as JSON beside the weights: arguments,
        data description, seed, epochs, validation MSE before/after training and PSNR
        (noisy and denoised) per noise level, SHA-256 of the weights, versions, date.
    """
    output = Path(output)
    if output.suffix.lower() not in (".pt", ".pth"):
        raise ValueError(f"output must be a .pt (or .pth) weights file, got {str(output)!r}")
    epochs = _check_int("epochs", epochs, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    patch_size = _check_int("patch_size", patch_size, 8)
    seed = _check_int("seed", seed, 0)
    try:
        low, high = (float(v) for v in noise_range)
    except (TypeError, ValueError):
        raise ValueError(f"noise_range must be two numbers (low, high), got {noise_range!r}") from None
    if not (0.0 <= low <= high and high > 0.0 and math.isfinite(high)):
        raise ValueError(f"noise_range must satisfy 0 <= low <= high and high > 0, got {noise_range!r}")
    if noise_sampling not in NOISE_SAMPLINGS:
        raise ValueError(f"noise_sampling must be one of {NOISE_SAMPLINGS}, got {noise_sampling!r}")
    pair_fraction = _check_fraction("pair_fraction", pair_fraction, low_open=False)
    if pair_fraction > 0 and pairs is None:
        raise ValueError("pair_fraction > 0 needs pairs")
    if pairs is not None and not (isinstance(pairs, ImagePairs) or callable(pairs)):
        raise TypeError(f"pairs must be an ImagePairs or a function making one, got {type(pairs).__name__}")
    clean_fraction = _check_fraction("clean_fraction", clean_fraction, low_open=False)
    streak_fraction = _check_fraction("streak_fraction", streak_fraction, low_open=False)
    val_fraction = _check_fraction("val_fraction", val_fraction, low_open=True)
    if not (float(lr) > 0 and float(weight_decay) >= 0):
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got lr={lr!r}, weight_decay={weight_decay!r}")
    if loss_floor is not None and not float(loss_floor) > 0:
        raise ValueError(f"loss_floor must be > 0 or None, got {loss_floor!r}")
    if threads is not None:
        threads = _check_int("threads", threads, 1)
    torch_device = resolve_device(device)
    arguments = {
        "output": str(output), "data": None if data is None else (
            str(data) if isinstance(data, (str, os.PathLike)) else [str(p) for p in data]),
        "n_images": n_images, "size": size, "depth": depth, "width": width, "residual": residual,
        "bias": bias, "dilations": dilations,
        "epochs": epochs, "batch_size": batch_size, "patch_size": patch_size, "noise_range": [low, high],
        "noise_sampling": noise_sampling, "clean_fraction": clean_fraction, "streak_fraction": streak_fraction,
        "pair_fraction": pair_fraction,
        "loss_floor": None if loss_floor is None else float(loss_floor), "lr": float(lr),
        "weight_decay": float(weight_decay), "val_fraction": val_fraction, "seed": seed,
        "device": str(torch_device), "threads": threads,
    }

    if data is None:
        n_images = _check_int("n_images", n_images, 2)
        size = _check_int("size", size, 16)
        arrays = list(generate_static_objects(n_images, size, seed=seed))
        data_record = {
            "source": "generated static objects",
            "generator": "imaging.denoisers.training_data.generate_static_objects",
            "families": list(FAMILIES), "n_images": n_images, "size": size, "seed": seed,
            "note": "not the dynamic test phantoms or their frames",
        }
    else:
        arrays = load_image_files(data)
        data_record = {"source": "image files", "location": arguments["data"], "n_images": len(arrays)}
    too_small = [i for i, a in enumerate(arrays) if min(a.shape) < patch_size]
    if too_small:
        raise ValueError(
            f"{len(too_small)} training image(s) are smaller than patch_size={patch_size} "
            f"(e.g. shape {arrays[too_small[0]].shape}); use a smaller patch_size"
        )
    if len(arrays) < 2:
        raise ValueError("training needs at least 2 images (one for validation)")
    images = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays]
    _check_training_memory(depth, width, batch_size, patch_size)
    if callable(pairs):  # made only once everything else has been checked
        pairs = pairs()
        if not isinstance(pairs, ImagePairs):
            raise TypeError(f"the pairs function must return an ImagePairs, got {type(pairs).__name__}")
    if pairs is not None and len(np.unique(pairs.groups)) < 2:
        raise ValueError("pairs need at least 2 groups (one for validation)")
    if pairs is not None and min(pairs.inputs.shape[1:]) < patch_size:
        raise ValueError(f"pairs of shape {pairs.inputs.shape[1:]} are smaller than patch_size={patch_size}")

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    n_val = min(max(1, round(val_fraction * len(images))), len(images) - 1)
    val_images = [images[i] for i in order[:n_val]]
    train_images = [images[i] for i in order[n_val:]]
    data_record.update({"n_train": len(train_images), "n_validation": n_val})
    levels = sorted({low, high, *[lv for lv in VALIDATION_LEVELS if low <= lv <= high]})
    val_clean, val_noisy = _validation_set(val_images, patch_size, levels, seed)
    if pairs is not None:
        groups = np.unique(pairs.groups)
        val_groups = rng.permutation(groups)[: min(max(1, round(val_fraction * len(groups))), len(groups) - 1)]
        held_out = np.isin(pairs.groups, val_groups)
        train_pairs, val_pairs = pairs.subset(~held_out), pairs.subset(held_out)
        pair_inputs = [torch.from_numpy(a) for a in train_pairs.inputs]
        pair_targets = [torch.from_numpy(a) for a in train_pairs.targets]
        shown = rng.permutation(len(val_pairs.inputs))[:_VALIDATION_PAIRS]
        val_pair_inputs = _centre_crops(val_pairs.inputs[shown], patch_size)
        val_pair_targets = _centre_crops(val_pairs.targets[shown], patch_size)
        data_record["pairs"] = {
            **pairs.record, "n_train": len(train_pairs.inputs), "n_validation": len(val_pairs.inputs),
            "validation_groups": sorted(int(g) for g in val_groups), "fraction_of_each_batch": pair_fraction,
        }

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = DnCNN(depth, width, residual, bias=bias, dilations=dilations).to(torch_device)
        if residual:
            # Start near the identity map (small predicted noise); not exactly zero, so
            # the gradient reaches the hidden layers from the first step.
            last = model.net[-1]
            with torch.no_grad():
                last.weight.mul_(0.1)
                if last.bias is not None:
                    last.bias.zero_()
        model.train()
        optimiser = torch.optim.AdamW(model.parameters(), lr=float(lr), weight_decay=float(weight_decay))
        steps_per_epoch = math.ceil(len(train_images) / batch_size)
        total_steps = epochs * steps_per_epoch
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=total_steps, eta_min=float(lr) * _FINAL_LR_FRACTION)
        noise_generator = torch.Generator().manual_seed(seed + 1)

        mse_before = _validation_mse(_evaluate(model, val_clean, val_noisy, torch_device, batch_size), val_clean)
        history = [{"epoch": 0, "validation_mse": mse_before}]
        evaluate_every = max(1, epochs // 10)
        started = time.perf_counter()
        bar = tqdm(total=total_steps, desc="train denoiser", unit="step", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        for epoch in range(1, epochs + 1):
            permutation = rng.permutation(len(train_images))
            running = 0.0
            for first in range(0, len(permutation), batch_size):
                chosen = permutation[first:first + batch_size]
                n_pairs = int(rng.binomial(len(chosen), pair_fraction)) if pair_fraction > 0 else 0
                clean = _random_crops(train_images, chosen[n_pairs:], patch_size, rng) if n_pairs < len(chosen) else None
                noisy, level = (None, None) if clean is None else _corrupt(
                    clean, (low, high), clean_fraction, streak_fraction, noise_generator, noise_sampling)
                if n_pairs:
                    degraded, target = _random_crops(
                        pair_inputs, rng.integers(0, len(pair_inputs), n_pairs), patch_size, rng, partners=pair_targets)
                    pair_level = torch.sqrt(torch.mean((degraded - target) ** 2, dim=(1, 2, 3)))
                    noisy, clean, level = (
                        (degraded, target, pair_level) if clean is None else
                        (torch.cat([noisy, degraded]), torch.cat([clean, target]), torch.cat([level, pair_level])))
                loss = _weighted_mse(model(noisy.to(torch_device)), clean.to(torch_device), level, loss_floor)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                running += float(loss.detach())
                bar.update(1)
            if epoch % evaluate_every == 0 or epoch == epochs:
                mse = _validation_mse(_evaluate(model, val_clean, val_noisy, torch_device, batch_size), val_clean)
                history.append({"epoch": epoch, "train_mse": running / steps_per_epoch, "validation_mse": mse})
                bar.set_postfix(val_psnr=f"{10 * math.log10(1 / max(mse, 1e-12)):.2f} dB")
        bar.close()
        training_seconds = time.perf_counter() - started

        outputs = _evaluate(model, val_clean, val_noisy, torch_device, batch_size)
        psnr_table = [
            {"noise_std": level, "noisy_psnr": _psnr(noisy, val_clean), "denoised_psnr": _psnr(out, val_clean)}
            for level, noisy, out in zip(levels, val_noisy, outputs)
        ]
        if pairs is not None:
            (pair_outputs,) = _evaluate(model, val_pair_targets, [val_pair_inputs], torch_device, batch_size)
            data_record["pairs"]["validation_psnr_db"] = {
                "input": _psnr(val_pair_inputs, val_pair_targets), "denoised": _psnr(pair_outputs, val_pair_targets)}
        model.eval()
        sha256 = save_denoiser(model.cpu(), output)
    finally:
        torch.set_num_threads(previous_threads)

    provenance = {
        **weights_record(model, output, sha256),
        "command": command if command is not None else "imaging.denoisers.train_denoiser(" + ", ".join(
            f"{k}={v!r}" for k, v in arguments.items()) + ")",
        "arguments": arguments,
        "data": data_record,
        "noise": {
            "white_std_range": [low, high],
            "sampling": noise_sampling,
            "relative_to": "image maximum (images scaled to [0, 1])",
            "drawn": "independently for each image of each batch",
            "clean_fraction": clean_fraction,
            "streak_fraction": streak_fraction,
            "streak_std_range": [low, high],
            "pairs": "no added noise: the pair inputs are degraded already" if pairs is not None else None,
        },
        "augmentation": "random horizontal flip and 90-degree rotations of each crop",
        "optimiser": {"name": "AdamW", "lr": float(lr), "weight_decay": float(weight_decay),
                      "schedule": f"cosine annealing to {_FINAL_LR_FRACTION:g} x lr over {total_steps} steps"},
        "loss": "MSE" if loss_floor is None else (
            f"MSE weighted per image by 1 / (std^2 + {float(loss_floor):g}^2), std the rms perturbation"),
        "seed": seed,
        "epochs": epochs,
        "steps": total_steps,
        "batch_size": batch_size,
        "patch_size": patch_size,
        "validation": {
            "set": f"centre {patch_size}x{patch_size} crops of {n_val} held-out images, fixed white noise",
            "mse_before": mse_before,
            "mse_after": history[-1]["validation_mse"],
            "history": history,
            "psnr_db": psnr_table,
        },
        "training_seconds": round(training_seconds, 1),
        "torch_version": torch.__version__,
        "imaging_version": __version__,
        "python_version": platform.python_version(),
        "device": str(torch_device),
        "threads": threads if threads is not None else previous_threads,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_provenance(output, provenance)
    return provenance
