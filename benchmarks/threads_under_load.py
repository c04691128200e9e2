"""A run's thread budget while another process takes a core (issue 10, item 6; a measurement).

Runs red-psm with its defaults (``max_iter`` iterations, no stopping rule) on the walnut
(N = 128, P = 256) several times: once on the quiet machine, then with a second process
that keeps one core busy (a Python busy loop) from iteration ``--load-from`` to
``--load-until``, once with the default budget (the idle cores at the start, then the
cores the other processes leave, re-checked between iterations: ``imaging.run.threads``)
and once with each fixed budget from 1 to the usable cores. Reported per run: the threads
it had, and the median seconds per iteration before, during and after the load.

Usage::

    python benchmarks/threads_under_load.py --output benchmarks/results/threads_under_load.md

Run it on an otherwise quiet machine: the load is the one it makes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BUSY_LOOP = "while True: pass"


def _stop(busy: subprocess.Popen | None) -> None:
    if busy is not None:
        busy.kill()
        busy.wait()


def run_under_load(measurements, threads: int | None, iterations: int, load_window: tuple[int, int] | None) -> dict:
    """One red-psm run; a busy process runs from the end of iteration ``load_window[0]``
    to the end of ``load_window[1]`` (None: no load). Per iteration: seconds and threads."""
    import torch

    from imaging import iterate

    seconds, threads_seen = [], []
    busy = None
    previous = time.perf_counter()
    try:
        for info in iterate(measurements, "red-psm", threads=threads, max_iter=iterations, tol=0.0):
            now = time.perf_counter()
            seconds.append(now - previous)
            threads_seen.append(torch.get_num_threads())
            if load_window is not None and info.iteration == load_window[0]:
                busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
            if busy is not None and info.iteration == load_window[1]:
                _stop(busy)
                busy = None
            previous = time.perf_counter()
    finally:
        _stop(busy)
    return {"seconds": np.array(seconds), "threads": np.array(threads_seen)}


def _phase(values: np.ndarray, first: int, last: int) -> str:
    """Median of iterations ``first`` .. ``last`` (1-based, inclusive) to two decimals."""
    chosen = values[first - 1:last]
    return f"{np.median(chosen):.2f}" if chosen.size else "-"


def _threads_text(threads: np.ndarray, first: int, last: int) -> str:
    return "/".join(str(t) for t in sorted(set(threads[first - 1:last].tolist()))) or "-"


def main(argv=None) -> int:
    from benchmarks._report import write_report
    from imaging.run.threads import usable_cores
    from imaging.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--load-from", type=int, default=8, help="the busy process starts after this iteration")
    parser.add_argument("--load-until", type=int, default=20, help="and stops after this one")
    parser.add_argument("--output", "-o", help="markdown table to write (default: print only)")
    args = parser.parse_args(argv)
    if not 1 <= args.load_from < args.load_until < args.iterations:
        print("error: need 1 <= --load-from < --load-until < --iterations", file=sys.stderr)
        return 2
    measurements = simulate("walnut", frames=256, size=128, modality="tomography", noise=5e-3, seed=0)
    measurements.ground_truth = None
    load_before = os.getloadavg()
    window = (args.load_from, args.load_until)
    runs = [("default, quiet machine", None, None)]
    runs += [("default", None, window)]
    runs += [(f"threads={n}", n, window) for n in range(1, usable_cores() + 1)]
    # Iterations measured under load: the first one after the start is partly before it.
    before = (2, args.load_from)
    during = (args.load_from + 2, args.load_until)
    after = (args.load_until + 2, args.iterations)
    lines = [
        "# Thread budget under load",
        "",
        f"red-psm defaults, walnut N = 128, P = 256, {args.iterations} iterations without the stopping rule; "
        f"a second process keeps one core busy after iteration {args.load_from} until after iteration "
        f"{args.load_until}. Median seconds per iteration before (iterations {before[0]}-{before[1]}), "
        f"during ({during[0]}-{during[1]}) and after ({after[0]}-{after[1]}) the load, and the threads "
        "the run had in each phase.",
        "",
        "| budget | s / it before | threads | s / it during | threads | s / it after | threads | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, threads, load in runs:
        result = run_under_load(measurements, threads, args.iterations, load)
        s, t = result["seconds"], result["threads"]
        row = (f"| {label} | {_phase(s, *before)} | {_threads_text(t, *before)} | {_phase(s, *during)} | "
               f"{_threads_text(t, *during)} | {_phase(s, *after)} | {_threads_text(t, *after)} | {s.sum():.1f} |")
        print(row, flush=True)
        lines.append(row)
    lines.append("")
    if args.output:
        write_report(lines, "threads_under_load.py", argv, load_before, Path(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
