"""PSNR against wall time for TD-DIP and RED-PSM on one case (issue 10, item 2).

Each method runs on the same simulated acquisition (fine-grid protocol unless
``--protocol inverse-crime``) without seeing the ground truth. After every outer
iteration the clock is paused, the estimate is scored against the ground truth, and the
clock resumes, so the curves show the methods' own time (scoring excluded; for TD-DIP an
estimate means generating all P frames, which is not part of its optimisation).
RED-PSM runs with its defaults and stops by its own rule (the marker); ``--red-psm-more``
continues it to that many iterations with the rule off, to show the plateau. TD-DIP runs
its preset's whole step budget or until ``--max-seconds``.

Usage (the lead's figure; a quiet machine, or ``--device cuda`` where a GPU is lent)::

    python benchmarks/psnr_vs_time.py --frames 256 --size 128 \\
        --methods red-psm td-dip:light td-dip:paper --max-seconds 3600

A small smoke run::

    python benchmarks/psnr_vs_time.py --frames 32 --size 32 --methods red-psm td-dip:light \\
        --max-seconds 60 --output /tmp/psnr_vs_time
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imaging import iterate  # noqa: E402
from imaging.metrics import psnr  # noqa: E402
from imaging.simulate import PROTOCOLS, simulate  # noqa: E402


def curve(measurements, truth, method: str, preset: str | None, max_seconds: float, device: str, threads,
          **params) -> dict:
    """Run one method; PSNR after every outer iteration against the run's own wall time."""
    run = iterate(measurements, method, preset=preset, device=device, threads=threads, **params)
    seconds, points, stop_reason = 0.0, [], "max_iter"
    started = time.perf_counter()
    try:
        while True:
            info = next(run)
            seconds += time.perf_counter() - started
            points.append({"iteration": info.iteration, "seconds": seconds, "psnr": psnr(info.estimate(), truth)})
            print(f"{method}:{preset or 'default'} it {info.iteration:4d} {seconds:8.1f} s {points[-1]['psnr']:.2f} dB",
                  flush=True)
            if seconds > max_seconds:
                stop_reason = f"time budget {max_seconds:g} s"
                run.close()
                break
            started = time.perf_counter()
    except StopIteration as finished:
        stop_reason = finished.value.stop_reason
    return {"method": method, "preset": preset, "params": params, "points": points, "stop_reason": stop_reason}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantom", default="walnut")
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", choices=tuple(PROTOCOLS), default="fine-grid")
    parser.add_argument("--methods", nargs="+", default=["red-psm", "td-dip:light", "td-dip:paper"],
                        help="METHOD[:PRESET] entries")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="wall-time budget of each method")
    parser.add_argument("--red-psm-more", type=int, default=0,
                        help="also run red-psm to this many iterations with its stopping rule off")
    parser.add_argument("--td-dip-steps-per-point", type=int, default=0,
                        help="optimiser steps between two points of a TD-DIP curve (default: the preset's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "psnr_vs_time"),
                        help="path prefix of the .png, .json and .md written")
    args = parser.parse_args(argv)

    measurements = simulate(args.phantom, frames=args.frames, size=args.size, seed=args.seed, protocol=args.protocol)
    truth = measurements.ground_truth
    measurements.ground_truth = None  # the runs never see it
    runs = []
    for spec in args.methods:
        method, _, preset = spec.partition(":")
        params = {}
        if method == "td-dip" and args.td_dip_steps_per_point:
            params["steps_per_iteration"] = args.td_dip_steps_per_point
        runs.append(curve(measurements, truth, method, preset or None, args.max_seconds, args.device, args.threads,
                          **params))
    if args.red_psm_more:
        runs.append(curve(measurements, truth, "red-psm", None, args.max_seconds, args.device, args.threads,
                          max_iter=args.red_psm_more, tol=0.0))

    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    case = (f"{args.phantom} seed {args.seed}, P={args.frames}, N={args.size}, one view per frame, "
            f"{PROTOCOLS[args.protocol]}")
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, device {args.device}, "
               f"threads {args.threads or 'default'}, {time.strftime('%Y-%m-%d')}")
    output.with_suffix(".json").write_text(json.dumps({"case": case, "machine": machine, "runs": runs}, indent=1))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    lines = ["# PSNR against wall time", "", f"Case: {case}. Machine: {machine}.", "",
             f"Command: `python benchmarks/psnr_vs_time.py {' '.join(argv if argv is not None else sys.argv[1:])}`", "",
             "| method | points | last PSNR (dB) | best PSNR (dB) | seconds | stop |", "|---|---|---|---|---|---|"]
    for run in runs:
        label = run["method"] + (f":{run['preset']}" if run["preset"] else "")
        if run["params"].get("tol") == 0.0:
            label += f" (rule off, {run['params']['max_iter']} iterations)"
        seconds = [p["seconds"] for p in run["points"]]
        values = [p["psnr"] for p in run["points"]]
        ax.plot(seconds, values, marker="." if len(values) < 60 else None, label=label)
        if run["method"] == "red-psm" and run["params"].get("tol") != 0.0:
            ax.plot(seconds[-1:], values[-1:], "k*", markersize=10)
        lines.append(f"| {label} | {len(values)} | {values[-1]:.2f} | {max(values):.2f} | {seconds[-1]:.1f} "
                     f"| {run['stop_reason']} |")
    ax.set_xscale("log")
    ax.set_xlabel("wall time of the method (s, log scale; scoring excluded)")
    ax.set_ylabel("volume PSNR (dB)")
    ax.set_title(textwrap.fill(case, 100), fontsize=8)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(output.with_suffix(".png"), dpi=120)
    output.with_suffix(".md").write_text("\n".join(lines) + f"\n\n![PSNR against time]({output.name}.png)\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
