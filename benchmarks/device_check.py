"""GPU check: CUDA operator timings and RED-PSM agreement between the CPU and CUDA.

Prints, for ``DynamicTomography`` at N=128 and N=256 with P=256 one-view frames, the
median of 20 synchronised forward and adjoint calls on the device, then runs
``red-psm --preset fast`` on a tiny walnut (N=32, P=16) on the CPU and on the device and
prints both PSNRs and the largest difference. The figures in
``benchmarks/results/quality-cuda.md`` came from this script.

Usage::

    python benchmarks/device_check.py            # needs a CUDA GPU
    python benchmarks/device_check.py --device cpu
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import imaging  # noqa: E402
from imaging.metrics import psnr  # noqa: E402
from imaging.operators import DynamicTomography  # noqa: E402
from imaging.schedules import view_angles  # noqa: E402
from imaging.simulate import simulate  # noqa: E402


def _timed(function, argument, device: str) -> float:
    start = time.perf_counter()
    function(argument)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def operator_timings(device: str, repeats: int = 20) -> None:
    for size, frames in ((128, 256), (256, 256)):
        operator = DynamicTomography(view_angles("bit-reversal", frames), (size, size), device=device)
        image = torch.rand(frames, size, size, device=device)
        data = operator.forward(image)
        for _ in range(3):
            operator.adjoint(operator.forward(image))
        forward = np.median([_timed(operator.forward, image, device) for _ in range(repeats)])
        adjoint = np.median([_timed(operator.adjoint, data, device) for _ in range(repeats)])
        print(
            f"N={size} P={frames} {device}: forward {1e3 * forward:.2f} ms, "
            f"adjoint {1e3 * adjoint:.2f} ms (median of {repeats})"
        )


def red_psm_agreement(device: str) -> None:
    measurements = simulate("walnut", frames=16, size=32, modality="tomography", noise=5e-3, seed=0)
    truth = measurements.ground_truth
    measurements.ground_truth = None
    cpu = imaging.reconstruct(measurements, "red-psm", preset="fast", device="cpu").reconstruction
    other = imaging.reconstruct(measurements, "red-psm", preset="fast", device=device).reconstruction
    print(
        f"red-psm:fast N=32 P=16 PSNR cpu {psnr(cpu, truth):.3f} dB, {device} {psnr(other, truth):.3f} dB, "
        f"max abs difference {np.abs(cpu - other).max():.2e}"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    args = parser.parse_args(argv)
    operator_timings(args.device)
    red_psm_agreement(args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
