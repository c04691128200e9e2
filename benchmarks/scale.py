"""Wall time and peak memory of a reconstruction against the image size N and frames P.

Each case is simulated once (walnut, one view per frame, bit-reversal, noise 5e-3) by
this process and reconstructed in a child process of its own, so the peak RSS column
is the reconstruction's alone (Python, PyTorch and ASTRA included, the simulation
not: the child's ``VmHWM``; ``ru_maxrss`` would report the parent's peak, see
``benchmarks/_memory.py``). Every case runs twice: on the file without its ground truth and with it (the
runner then logs PSNR every iteration and a sampled SSIM), which measures what the
logging costs. Cases that exceed ``--timeout`` are reported as such.

Usage::

    python benchmarks/scale.py                                   # N sweep at P=256, P sweep at N=128
    python benchmarks/scale.py --sizes 64 128 --frame-counts 64 --preset fast   # a quick subset
    python benchmarks/scale.py --device cuda --output benchmarks/results/scale-cuda.md

Writes a markdown table (default ``benchmarks/results/scale.md``) after every case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._memory import peak_rss_bytes  # noqa: E402


def run_child(data_path: str, method: str, preset: str | None, device: str, out_json: str) -> None:
    """Child process: one reconstruction; wall time, iterations and its own peak RSS."""
    import torch

    import imaging

    measurements = imaging.load_measurements(data_path)
    start = time.perf_counter()
    result = imaging.reconstruct(measurements, method, preset=preset, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    row = {
        "seconds": time.perf_counter() - start,
        "peak_rss_gb": peak_rss_bytes() / 2**30,
        "iterations": len(result.history),
        "stop_reason": result.stop_reason,
        "final_psnr": result.history[-1].get("psnr") if result.history else None,
    }
    if device == "cuda":
        row["gpu_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    Path(out_json).write_text(json.dumps(row))


def _case_files(size: int, frames: int, workdir: Path) -> tuple[Path, Path]:
    """(file without ground truth, file with it) of the walnut case (size, frames)."""
    from imaging import save_measurements
    from imaging.simulate import simulate

    with_truth = workdir / f"walnut-N{size}-P{frames}-truth.npz"
    without_truth = workdir / f"walnut-N{size}-P{frames}.npz"
    if not with_truth.exists():
        measurements = simulate("walnut", frames=frames, size=size, seed=0)
        save_measurements(with_truth, measurements)
        measurements.ground_truth = None
        save_measurements(without_truth, measurements)
    return without_truth, with_truth


def _format(rows: list[dict], args) -> str:
    lines = [
        "# Scale: wall time and peak RSS against N and P",
        "",
        f"`python benchmarks/scale.py {' '.join(sys.argv[1:])}` — walnut, one view per frame, bit-reversal, "
        f"noise 5e-3; method `{args.method}`{f' preset `{args.preset}`' if args.preset else ''}, device "
        f"`{args.device}`; {platform.node() or 'this machine'}, {os.cpu_count()} cores. Load average at the start "
        f"{args.load_average}. Each run in its own process; RSS includes Python, PyTorch and ASTRA.",
        "",
        "| N | P | ground truth in file | wall (s) | peak RSS (GB) | iterations | stop | PSNR (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['size']} | {row['frames']} | {row['truth']} | {row['error']} | | | | |")
            continue
        psnr = f"{row['final_psnr']:.2f}" if row.get("final_psnr") is not None else "-"
        lines.append(
            f"| {row['size']} | {row['frames']} | {row['truth']} | {row['seconds']:.1f} | {row['peak_rss_gb']:.2f} "
            f"| {row['iterations']} | {row['stop_reason']} | {psnr} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024], help="N at --frames")
    parser.add_argument("--frames", type=int, default=256, help="P of the N sweep (default 256)")
    parser.add_argument("--frame-counts", type=int, nargs="*", default=[64, 128, 256, 512, 1024],
                        help="P of the P sweep at N=128")
    parser.add_argument("--method", default="red-psm")
    parser.add_argument("--preset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run (default 3600)")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "scale.md"))
    parser.add_argument("--child", nargs=5, metavar=("DATA", "METHOD", "PRESET", "DEVICE", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, method, preset, device, out = args.child
        run_child(data, method, preset or None, device, out)
        return 0
    args.load_average = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    cases = list(dict.fromkeys([(n, args.frames) for n in args.sizes] + [(128, p) for p in args.frame_counts]))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="imaging-scale-") as tmp:
        workdir = Path(tmp)
        for size, frames in cases:
            files = _case_files(size, frames, workdir)
            for truth, path in zip(("no", "yes"), files):
                out = workdir / "row.json"
                out.unlink(missing_ok=True)
                row = {"size": size, "frames": frames, "truth": truth}
                command = [sys.executable, __file__, "--child", str(path), args.method, args.preset or "",
                           args.device, str(out)]
                try:
                    subprocess.run(command, check=True, timeout=args.timeout)
                    row.update(json.loads(out.read_text()))
                except subprocess.TimeoutExpired:
                    row["error"] = f"over {args.timeout:.0f} s"
                except subprocess.CalledProcessError as exc:
                    row["error"] = f"failed (exit {exc.returncode})"
                rows.append(row)
                print(json.dumps(row), flush=True)
                Path(args.output).write_text(_format(rows, args))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
