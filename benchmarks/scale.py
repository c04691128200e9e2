"""Wall time and peak memory of a reconstruction against the image size N and frames P.

Each case is simulated once (walnut, one view per frame, bit-reversal, noise 5e-3) by
this process and reconstructed in a child process of its own, so the peak RSS column
is the reconstruction's alone (Python, PyTorch and ASTRA included, the simulation
not: the child's ``VmHWM``; ``ru_maxrss`` would report the parent's peak, see
``benchmarks/_memory.py``). Every case runs twice: on the file without its ground truth and with it (the
runner then logs PSNR every iteration and a sampled SSIM), which measures what the
logging costs (``--truth no`` or ``yes`` runs one of the two). The child reads the file
as ``imaging reconstruct`` does: the ground truth stays in the file and is scored from
there a block of frames at a time (:func:`imaging.io.open_ground_truth`). Cases that exceed
``--timeout`` are reported as such. ``--set KEY=VALUE`` overrides a method parameter
(e.g. ``max_iter=2 coarse_size=0`` for a memory row at N=1024: the peak is reached in
the first iterations on the full grid, which red-psm's coarse-to-fine start would reach
only at its end); the overrides are stated in the table's header.

Usage::

    python benchmarks/scale.py                                   # N sweep at P=256, P sweep at N=128
    python benchmarks/scale.py --sizes 64 128 --frame-counts 64 --preset fast   # a quick subset
    python benchmarks/scale.py --sizes 1024 --frame-counts --truth no --set max_iter=2 --set coarse_size=0   # one memory row
    python benchmarks/scale.py --device cuda --output benchmarks/results/scale-cuda.md
    python benchmarks/scale.py --sizes 256 --frame-counts --repeat 3 --output benchmarks/results/scale-truth-256.md

Writes a markdown table (default ``benchmarks/results/scale.md``) after every case.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._memory import peak_rss_bytes  # noqa: E402


#: Which files each case runs on: without its ground truth, with it, or both.
TRUTH_CHOICES = {"no": ("no",), "yes": ("yes",), "both": ("no", "yes")}


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` method parameters (values as text: the solver's parameters convert them)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise argparse.ArgumentTypeError(f"--set expects KEY=VALUE, got {pair!r}")
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings


def run_child(data_path: str, method: str, preset: str | None, device: str, out_json: str, settings: str) -> None:
    """Child process: one reconstruction; wall time, iterations and its own peak RSS.

    ``settings`` is the JSON object of the method parameters given with ``--set``.
    """
    import torch

    import imaging
    from imaging.io.atomic import write_text_atomic

    from imaging.io import open_ground_truth

    # As `imaging reconstruct` reads a file: the ground truth stays in it and is scored a
    # block of frames at a time.
    measurements = imaging.load_measurements(data_path, ground_truth=False)
    ground_truth = open_ground_truth(data_path, (measurements.n_frames, *measurements.image_shape))
    threads_used = set()  # the budgets the run had (default: the cores other processes leave, re-checked)
    start = time.perf_counter()
    result = imaging.reconstruct(measurements, method, preset=preset, device=device, ground_truth=ground_truth,
                                 callback=lambda info: threads_used.add(torch.get_num_threads()),
                                 **json.loads(settings))
    if device == "cuda":
        torch.cuda.synchronize()
    row = {
        "seconds": time.perf_counter() - start,
        "peak_rss_gb": peak_rss_bytes() / 2**30,
        "iterations": len(result.history),
        "stop_reason": result.stop_reason,
        "final_psnr": result.history[-1].get("psnr") if result.history else None,
        "seconds_per_iteration": _seconds_per_iteration(result.history, measurements.slice_shape[0]),
        "threads": "/".join(map(str, sorted(threads_used))) or "-",
    }
    if device == "cuda":
        row["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    write_text_atomic(out_json, json.dumps(row))


def _seconds_per_iteration(history: list[dict], size: int) -> float | None:
    """Median wall time of an iteration on the full grid (not the first: it holds the
    set-up; not a coarse-to-fine start's coarser grids), from the history's clock."""
    steps = [
        entry["elapsed_seconds"] - previous["elapsed_seconds"]
        for previous, entry in zip(history, history[1:])
        if entry.get("grid_size", size) == size and previous.get("grid_size", size) == size
    ]
    return float(np.median(steps)) if steps else None


def _simulated(size: int, frames: int):
    """The walnut acquisition at N = ``size``, or, where simulating it would not fit the
    memory (N = 1024, P = 256 needs about 24 GiB), the N/2 acquisition with its detector
    resampled to N bins of the fine grid's pixel (linear interpolation of the line
    integrals, doubled: a path crosses twice as many fine pixels) and the ground truth
    repeated 2 x 2. The reconstruction's cost does not depend on which; its PSNR does
    (the table says which rows were made this way)."""
    from imaging._limits import ResourceLimitError
    from imaging.simulate import simulate

    try:
        return simulate("walnut", frames=frames, size=size, seed=0), False
    except ResourceLimitError as exc:
        if size % 2:
            raise
        print(f"N={size}: {exc}; simulating N={size // 2} and resampling its detector", flush=True)
    coarse = simulate("walnut", frames=frames, size=size // 2, seed=0)
    bins = coarse.sinogram.shape[-1]
    coarse_centres = (np.arange(bins) - (bins - 1) / 2) * 2 * coarse.detector_spacing
    fine_centres = (np.arange(2 * bins) - (2 * bins - 1) / 2) * coarse.detector_spacing
    weights = np.interp(fine_centres, coarse_centres, np.arange(bins, dtype=np.float64))
    low = np.clip(np.floor(weights).astype(int), 0, bins - 2)
    fraction = (weights - low).astype(np.float32)
    sinogram = 2 * (coarse.sinogram[..., low] * (1 - fraction) + coarse.sinogram[..., low + 1] * fraction)
    truth = None if coarse.ground_truth is None else coarse.ground_truth.repeat(2, axis=-2).repeat(2, axis=-1)
    resampled = dataclasses.replace(
        coarse, image_shape=(size, size), sinogram=sinogram.astype(np.float32), ground_truth=truth
    )
    return resampled, True


def _case_files(size: int, frames: int, workdir: Path, truths: tuple[str, ...]) -> tuple[dict[str, Path], bool]:
    """The walnut case (size, frames) saved with its ground truth ("yes") and without it ("no"),
    as ``truths`` asks: ({truth: path}, whether it was resampled from N/2)."""
    from imaging import save_measurements

    measurements, resampled = _simulated(size, frames)
    files = {}
    # The file with the ground truth first: the file without it drops it from these measurements.
    for truth in sorted(truths, reverse=True):
        files[truth] = workdir / f"walnut-N{size}-P{frames}{'-truth' if truth == 'yes' else ''}.npz"
        if truth == "no":
            measurements.ground_truth = None
        save_measurements(files[truth], measurements)
    return files, resampled


def _format(rows: list[dict], args) -> str:
    lines = [
        "# Scale: wall time and peak RSS against N and P",
        "",
        f"`python benchmarks/scale.py {' '.join(sys.argv[1:])}` — walnut, one view per frame, bit-reversal, "
        f"noise 5e-3; method `{args.method}`{f' preset `{args.preset}`' if args.preset else ''}, "
        f"{_settings_text(args.settings)}, device "
        f"`{args.device}`; {platform.node() or 'this machine'}, {os.cpu_count()} cores. Load average at the start "
        f"{args.load_average}. Each run in its own process; RSS includes Python, PyTorch and ASTRA; a ground "
        "truth is scored from its file, block by block, as `imaging reconstruct` does.",
        "",
        "| N | P | ground truth in file | wall (s) | peak RSS (GB) | iterations | s / iteration (full grid, median) "
        "| stop | PSNR (dB) | threads |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        size = f"{row['size']} (a)" if row.get("resampled") else row["size"]
        if "error" in row:
            lines.append(f"| {size} | {row['frames']} | {row['truth']} | {row['error']} | | | | | | |")
            continue
        psnr = f"{row['final_psnr']:.2f}" if row.get("final_psnr") is not None else "-"
        per_iteration = f"{row['seconds_per_iteration']:.2f}" if row.get("seconds_per_iteration") is not None else "-"
        lines.append(
            f"| {size} | {row['frames']} | {row['truth']} | {row['seconds']:.1f} | {row['peak_rss_gb']:.2f} "
            f"| {row['iterations']} | {per_iteration} | {row['stop_reason']} | {psnr} | {row.get('threads', '-')} |"
        )
    if any(row.get("resampled") for row in rows):
        lines += ["", "(a) Simulating this size would not fit the memory: the acquisition is the N/2 one with "
                  "its detector resampled to N bins (`_simulated`); the cost is that of N, the PSNR is not comparable."]
    return "\n".join(lines) + "\n"


def _settings_text(settings: dict[str, str]) -> str:
    """The ``--set`` overrides as the table header states them."""
    if not settings:
        return "the method's parameters otherwise at their defaults"
    return "parameters set: " + ", ".join(f"`{key}={value}`" for key, value in settings.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024], help="N at --frames")
    parser.add_argument("--frames", type=int, default=256, help="P of the N sweep (default 256)")
    parser.add_argument("--frame-counts", type=int, nargs="*", default=[64, 128, 256, 512, 1024],
                        help="P of the P sweep at N=128")
    parser.add_argument("--method", default="red-psm")
    parser.add_argument("--preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="a method parameter for every run (repeatable), e.g. max_iter=2")
    parser.add_argument("--truth", choices=sorted(TRUTH_CHOICES), default="both",
                        help="run the file without its ground truth (no), with it (yes) or both (default)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each case this many times, the truth settings interleaved (no, yes, no, yes, ...): "
                             "on a noisy machine the pairs' spread shows what the ground truth costs")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run (default 3600)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "scale.md"))
    parser.add_argument("--child", nargs=6, metavar=("DATA", "METHOD", "PRESET", "DEVICE", "OUT", "SETTINGS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, method, preset, device, out, settings = args.child
        run_child(data, method, preset or None, device, out, settings)
        return 0
    try:
        args.settings = parse_settings(args.settings)
        # Refused here, before any simulation, when the method has no such parameter.
        from imaging.solvers import get_solver

        get_solver(args.method).make_params(args.preset, **args.settings)
    except (argparse.ArgumentTypeError, ValueError, KeyError) as exc:
        parser.error(str(exc))
    from imaging.io.atomic import write_text_atomic

    args.load_average = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    cases = list(dict.fromkeys([(n, args.frames) for n in args.sizes] + [(128, p) for p in args.frame_counts]))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="imaging-scale-") as tmp:
        workdir = Path(tmp)
        for size, frames in cases:
            files, resampled = _case_files(size, frames, workdir, TRUTH_CHOICES[args.truth])
            for truth in TRUTH_CHOICES[args.truth] * max(1, args.repeat):
                path = files[truth]
                out = workdir / "row.json"
                out.unlink(missing_ok=True)
                row = {"size": size, "frames": frames, "truth": truth, "resampled": resampled}
                command = [sys.executable, __file__, "--child", str(path), args.method, args.preset or "",
                           args.device, str(out), json.dumps(args.settings)]
                try:
                    subprocess.run(command, check=True, timeout=args.timeout)
                    row.update(json.loads(out.read_text()))
                except subprocess.TimeoutExpired:
                    row["error"] = f"over {args.timeout:.0f} s"
                except subprocess.CalledProcessError as exc:
                    row["error"] = f"failed (exit {exc.returncode})"
                rows.append(row)
                print(json.dumps(row), flush=True)
                write_text_atomic(args.output, _format(rows, args))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
