"""What scoring against a ground truth costs per scored iteration, and in a whole run.

A run's wall time varies by +-20 % between identical runs on the 2-core VM (see
``benchmarks/results/scale-512.md``), more than the logging costs, so the cost is timed
here directly: the runner's scoring (:class:`imaging.run.runner.ReferenceScorer`) of a
(P, N, N) estimate against the ground truth kept in a measurement file
(:func:`imaging.io.open_ground_truth`: the one-off check, the scorer's set-up, a scored
iteration with PSNR only and one with the sampled SSIM too) and, for comparison, against
the same truth in memory. The values do not change the cost: random images, which
``imaging.simulate`` would take minutes to make at N = 512.

Usage::

    python benchmarks/scoring_cost.py --size 512 --frames 256
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

def _median_seconds(action, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _peak_mib(action) -> float:
    """The most NumPy memory ``action`` holds at once (NumPy reports to tracemalloc), MiB;
    a separate pass: tracing slows the timed ones down."""
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default="benchmarks/results/scoring-cost.md")
    args = parser.parse_args(argv)
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())

    from imaging.io import open_ground_truth, save_measurements
    from imaging.measurements import Measurements
    from imaging.run.runner import ReferenceScorer

    rng = np.random.default_rng(0)
    shape = (args.frames, args.size, args.size)
    truth = rng.random(shape, dtype=np.float32)
    estimate = truth + np.float32(0.05) * rng.standard_normal(shape, dtype=np.float32)
    measurements = Measurements(
        modality="tomography", image_shape=(args.size, args.size),
        sinogram=np.zeros((args.frames, 1, args.size), np.float32),
        angles=np.linspace(0, np.pi, args.frames, endpoint=False).reshape(-1, 1), ground_truth=truth,
    )
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "truth.npz"
        save_measurements(path, measurements)
        opened = _median_seconds(lambda: open_ground_truth(path, shape).close(), args.repeats)
        with open_ground_truth(path, shape) as stored:
            setup = _median_seconds(lambda: ReferenceScorer(stored), args.repeats)
            scorer = ReferenceScorer(stored)
            psnr_only = _median_seconds(lambda: scorer.score(estimate, with_ssim=False), args.repeats)
            with_ssim = _median_seconds(lambda: scorer.score(estimate, with_ssim=True), args.repeats)
        peak = _peak_mib(lambda: ReferenceScorer(open_ground_truth(path, shape)).score(estimate, with_ssim=True))
        rows.append(("in its file (StoredFrames)", opened, setup, psnr_only, with_ssim, 0.0, peak))
        in_memory = ReferenceScorer(truth)
        rows.append((
            "in memory (NumPy array)", 0.0, _median_seconds(lambda: ReferenceScorer(truth), args.repeats),
            _median_seconds(lambda: in_memory.score(estimate, with_ssim=False), args.repeats),
            _median_seconds(lambda: in_memory.score(estimate, with_ssim=True), args.repeats),
            truth.nbytes / 2**20, _peak_mib(lambda: ReferenceScorer(truth).score(estimate, with_ssim=True)),
        ))
    lines = [
        "# Scoring against a ground truth: cost per scored iteration",
        "",
        f"`python benchmarks/scoring_cost.py --size {args.size} --frames {args.frames}` — a float32 ({args.frames}, "
        f"{args.size}, {args.size}) truth and estimate (random values: the cost does not depend on them), median of "
        f"{args.repeats}; {platform.node() or 'this machine'}, {os.cpu_count()} cores, load average at the start "
        f"{load}. The file is freshly written, so it is read from the operating system's cache.",
        "",
        "| ground truth | check on opening (s) | scorer set-up (s) | PSNR only (s) | PSNR + sampled SSIM (s) "
        "| truth held during the run (MiB) | peak of the scoring's temporaries (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, opened, setup, psnr_only, with_ssim, held, peak in rows:
        lines.append(
            f"| {name} | {opened:.3f} | {setup:.3f} | {psnr_only:.3f} | {with_ssim:.3f} | {held:.0f} | {peak:.0f} |"
        )
    lines += [
        "",
        "Temporaries: the most NumPy memory held at once while opening, setting up and scoring once with SSIM "
        "(tracemalloc, a separate untimed pass): a block of frames and its float64 copies, freed after each block.",
    ]
    Path(args.output).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
