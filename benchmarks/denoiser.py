"""Properties of a denoiser that RED-PSM relies on, measured (issue 10, item 3).

For each denoiser (a shipped name or a weights path) the script reports

- **clean in, clean out**: PSNR(D(x), x) on clean static frames the denoiser was not
  trained on, scaled as RED-PSM scales them (the 0.999 quantile of the frames is 1):
  generated static objects of a held-out seed, and frames of the dynamic phantoms
  (walnut, material, shepp_logan, cardiac; CT- and MRI-like), at N = 64 and 128;
- **repeated application**: PSNR(D^10(x), x), and the relative growth of the image mean
  per application;
- **denoising**: PSNR of D(x + n) against x for white noise of std 0.02 and 0.05;
- **cost**: milliseconds per 128 x 128 frame with one thread, in batches of 8
  channels-last frames as RED-PSM calls it (the median of 5 timed passes over 64
  frames). Timing figures belong to a quiet machine.

Usage::

    python benchmarks/denoiser.py default data/denoiser/my_weights.pt
    python benchmarks/denoiser.py default --quick          # N = 64 only, fewer frames
    python benchmarks/denoiser.py default --output benchmarks/results/denoiser.md
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging.denoisers import denoise_frames, generate_static_objects, load_denoiser  # noqa: E402
from imaging.denoisers.inference import native_bfloat16  # noqa: E402
from imaging.phantoms import get_phantom  # noqa: E402

#: Seed of the generated static objects used here; training uses other seeds (0 by default).
HELD_OUT_OBJECT_SEED = 90_001
PHANTOM_SEED = 0
REPEATS = 10


def solver_scaled(frames: np.ndarray) -> torch.Tensor:
    """Frames divided by their 0.999 quantile of |x| (RED-PSM's normalisation)."""
    scale = float(np.quantile(np.abs(frames), 0.999)) or 1.0
    return torch.from_numpy(np.ascontiguousarray(frames / scale, dtype=np.float32))


def test_sets(sizes: tuple[int, ...], frames_per_set: int) -> dict[str, torch.Tensor]:
    """Named stacks (F, N, N) of clean frames, solver-scaled."""
    sets = {}
    for size in sizes:
        objects = generate_static_objects(frames_per_set, size, seed=HELD_OUT_OBJECT_SEED + size)
        sets[f"generated objects N={size}"] = solver_scaled(objects)
        for name in ("walnut", "material", "shepp_logan", "cardiac"):
            movie = get_phantom(name)(frames=frames_per_set, size=size, seed=PHANTOM_SEED)
            sets[f"{name} N={size}"] = solver_scaled(movie)
    return sets


def psnr(estimate: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR over the stack, data range max - min of the reference."""
    error = float(torch.mean((estimate.double() - reference.double()) ** 2))
    data_range = float(reference.max() - reference.min())
    return math.inf if error == 0 else 10 * math.log10(data_range**2 / error)


def apply(model, frames: torch.Tensor, precision: str = "float32") -> torch.Tensor:
    return denoise_frames(model, frames, batch_size=8, precision=precision)


def properties(model, frames: torch.Tensor, seed: int = 0) -> dict[str, float]:
    once = apply(model, frames)
    repeated = frames
    mean_growth = []
    for _ in range(REPEATS):
        previous_mean = float(repeated.mean())
        repeated = apply(model, repeated)
        mean_growth.append(float(repeated.mean()) / previous_mean - 1.0)
    generator = torch.Generator().manual_seed(seed)
    out = {"clean": psnr(once, frames), f"clean x{REPEATS}": psnr(repeated, frames)}
    out["mean growth %"] = 100 * statistics.mean(mean_growth)
    for sigma in (0.02, 0.05):
        noisy = frames + sigma * torch.randn(frames.shape, generator=generator)
        out[f"noisy {sigma}"] = psnr(noisy, frames)
        out[f"denoised {sigma}"] = psnr(apply(model, noisy), frames)
    return out


def milliseconds_per_frame(model, size: int = 128, frames: int = 64, passes: int = 5, precision: str = "float32") -> float:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = model.to(memory_format=torch.channels_last)
        stack = torch.rand(frames, size, size)
        apply(model, stack, precision)  # warm-up
        times = []
        for _ in range(passes):
            start = time.perf_counter()
            apply(model, stack, precision)
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 1000 * statistics.median(times) / frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("denoisers", nargs="+", help="shipped names or weights files")
    parser.add_argument("--quick", action="store_true", help="N = 64 only, 8 frames per set, no timing")
    parser.add_argument("--output", help="also write the markdown table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes, per_set = ((64,), 8) if args.quick else ((64, 128), 16)
    sets = test_sets(sizes, per_set)
    lines = []
    for name in args.denoisers:
        model = load_denoiser(name)
        n_parameters = sum(p.numel() for p in model.parameters())
        cost = ""
        if not args.quick:
            cost = f", {milliseconds_per_frame(model):.2f} ms/frame at N=128 (1 thread)"
            if native_bfloat16():  # what red-psm's automatic precision uses on this CPU
                cost += f", {milliseconds_per_frame(model, precision='bfloat16'):.2f} ms/frame in bfloat16"
        lines.append(f"\n### {name}: {n_parameters} parameters{cost}\n")
        header = None
        worst = {}
        for set_name, frames in sets.items():
            row = properties(model, frames)
            if header is None:
                header = list(row)
                lines.append("| frames | " + " | ".join(header) + " |")
                lines.append("|---" * (len(header) + 1) + "|")
            lines.append(f"| {set_name} | " + " | ".join(f"{row[k]:.2f}" for k in header) + " |")
            size = set_name.rpartition("N=")[2]
            for key in ("clean", f"clean x{REPEATS}"):
                worst[size, key] = min(worst.get((size, key), math.inf), row[key])
        lines.append("")
        for size in dict.fromkeys(size for size, _ in worst):
            lines.append(
                f"- N={size}: worst clean PSNR {worst[size, 'clean']:.2f} dB (target >= 45), "
                f"after {REPEATS} applications {worst[size, f'clean x{REPEATS}']:.2f} dB (target >= 40)"
            )
        print("\n".join(lines[-(len(sets) + 6):]), flush=True)
    if args.output:
        text = "# Denoiser properties\n\nCommand: `python benchmarks/denoiser.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        ) + "`\n" + "\n".join(lines) + "\n"
        Path(args.output).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
