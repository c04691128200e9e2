"""Does red-psm semi-converge on the reported cases? (issue 10, item 5; a measurement only).

Runs red-psm with its defaults but ``max_iter`` iterations (default 100) and no stopping rule
(``tol = 0``) on the quality benchmark's CT cases (``benchmarks/quality.py``: fine-grid
protocol, N = 128, seed 0, noise 5e-3, one view per frame), scores every iterate against the
ground truth (volume PSNR) and reports where the default run stops (its rule, ``tol`` after
``min_iter``, replayed on the logged relative change and primal residual; else its
``max_iter``), the best iterate and the last one. Nothing is chosen from these figures: the
defaults were chosen on tuning seeds (``benchmarks/tune_red_psm.py``).

Usage::

    python benchmarks/long_run_drift.py --cases walnut:64 walnut:128 walnut:256 material:256 \\
        --output benchmarks/results/long_run_drift.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np


def drift(phantom: str, frames: int, size: int, iterations: int) -> dict:
    """PSNR, relative change and primal residual of every red-psm iterate on one seed-0 case
    (the solver never sees the truth)."""
    from imaging import iterate
    from imaging.metrics import psnr
    from imaging.simulate import simulate

    measurements = simulate(phantom, frames=frames, size=size, modality="tomography", noise=5e-3, seed=0,
                            protocol="fine-grid")
    truth = measurements.ground_truth
    measurements.ground_truth = None
    curve, rule = [], []
    for info in iterate(measurements, "red-psm", max_iter=iterations, tol=0.0):
        curve.append(psnr(info.estimate(), truth))
        rule.append(max(info.entry["relative_change"], info.entry["primal_residual"]))
    return {"case": f"{phantom} P={frames}", "curve": np.array(curve), "rule": np.array(rule)}


def default_stop(rule: np.ndarray, params, frames: int) -> int:
    """The 0-based iterate where red-psm's rule with ``params`` stops a logged run of
    ``frames`` frames: the first iteration >= ``min_iter`` whose relative change and primal
    residual are both below ``tol``, else ``max_iter`` (0: the automatic cap for these
    frames; or the run's end)."""
    from imaging.solvers.red_psm import automatic_max_iter

    last = min(params.max_iter or automatic_max_iter(frames), len(rule))
    below = [k for k in range(max(params.min_iter, 1), last + 1) if rule[k - 1] < params.tol]
    return (below[0] if below else last) - 1


def main(argv=None) -> int:
    from imaging.solvers.red_psm import RedPSMParams

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=["walnut:64", "walnut:128", "walnut:256", "material:256"],
                        help="PHANTOM:FRAMES (default: walnut 64/128/256, material 256)")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--output", "-o", help="markdown table to write (default: print only)")
    args = parser.parse_args(argv)
    defaults = RedPSMParams()
    rows = []
    for spec in args.cases:
        phantom, _, frames = spec.partition(":")
        result = drift(phantom, int(frames), args.size, args.iterations)
        c = result["curve"]
        best = int(c.argmax())
        stop = default_stop(result["rule"], defaults, int(frames))
        row = (f"| {result['case']} | {c[stop]:.2f} @ {stop + 1} | {c[best]:.2f} @ {best + 1} | {c[-1]:.2f} @ {len(c)} "
               f"| {c[stop] - c[best]:+.2f} | {c[-1] - c[best]:+.2f} |")
        print(row, flush=True)
        rows.append(row)
    text = "\n".join([
        "# red-psm over long runs on the reported cases (seed 0)",
        "",
        f"Command: `python benchmarks/long_run_drift.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        "",
        f"red-psm defaults, `max_iter={args.iterations}`, `tol=0`; fine-grid protocol, N={args.size}, noise 5e-3, "
        f"seed 0; volume PSNR (dB) of every iterate. {platform.machine()}, {time.strftime('%Y-%m-%d')}. "
        "A measurement only: no parameter was chosen from it.",
        "",
        f"| case | default stop (tol {defaults.tol:g} after {defaults.min_iter}, max_iter "
        f"{defaults.max_iter or 'automatic: 45 x 256 / P, 45-100'}) "
        "| best | last | stop - best | last - best |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
    ])
    if args.output:
        from imaging.io import write_text_atomic

        write_text_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
