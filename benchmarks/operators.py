"""Operator benchmark: build time, forward and adjoint time, memory (issue 2, item 8).

Cases (the paper's protocol sizes):

- tomography, P=256 frames, 1 view per frame (bit-reversal over [0, pi)), N=128 and
  N=256, detector of N bins; at N=512 and N=1024 also with the matrix-free back end
  (``-matrix-free``: ASTRA's projector on the fly, no stored weights), the sparse one
  being the default whose weights grow to 2 GB at N=1024;
- dynamic MRI, 128 x 128, P=256 frames, 8 phase-encode lines per frame
  (variable-density, 4 centre lines), single coil and 8 coils.

Each case runs in a fresh Python process so that its memory figures are its own: the
operator's build time, the median (and minimum) over ``--repeats`` timed calls of the
forward and of the adjoint after ``--warmup`` untimed calls, the memory the operator
holds (its ``nbytes``: the tomography weights and indices, the MRI mask and coil maps),
the growth of the process's resident set size (RSS) across construction, the process's
peak RSS, and the relative adjointness error. The table goes to ``benchmarks/results/operators.md``
and to standard output. Targets (issue 2): tomography forward + adjoint <= 30 ms at
N=128 and <= 120 ms at N=256, operator memory <= 150 MB at N=256.

Timings depend on other load on the machine: the table records the load average before
and after the run. Run it on a quiet machine from the repository root::

    python benchmarks/operators.py                  # all cases, torch's default threads
    python benchmarks/operators.py --threads 2 --repeats 20
    python benchmarks/operators.py --cases tomo-128 mri-8coils
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks._memory import peak_rss_bytes, rss_bytes  # noqa: E402
DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "operators.md"

FRAMES = 256
CASES = {
    "tomo-128": {"modality": "tomography", "size": 128},
    "tomo-256": {"modality": "tomography", "size": 256},
    "tomo-512": {"modality": "tomography", "size": 512, "backend": "sparse"},
    "tomo-512-matrix-free": {"modality": "tomography", "size": 512, "backend": "matrix-free"},
    "tomo-1024": {"modality": "tomography", "size": 1024, "backend": "sparse"},
    "tomo-1024-matrix-free": {"modality": "tomography", "size": 1024, "backend": "matrix-free"},
    "mri-1coil": {"modality": "mri", "size": 128, "coils": 1, "lines": 8},
    "mri-8coils": {"modality": "mri", "size": 128, "coils": 8, "lines": 8},
}
#: Forward + adjoint time (ms) and operator memory (MB) targets of issue 2.
TARGETS = {"tomo-128": {"ms": 30.0}, "tomo-256": {"ms": 120.0, "mb": 150.0}}


def _time_calls(function, argument, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        function(argument)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument)
        seconds.append(time.perf_counter() - start)
    return seconds


def _build(case: dict):
    """The operator of a case."""
    from imaging.operators import DynamicMRI, DynamicTomography
    from imaging.schedules import kt_mask, view_angles

    size = case["size"]
    if case["modality"] == "tomography":
        backend = case.get("backend", "auto")
        return DynamicTomography(view_angles("bit-reversal", FRAMES), (size, size), projector_backend=backend)
    from imaging.simulate import synthetic_coil_maps

    mask = kt_mask("variable-density", FRAMES, (size, size), case["lines"], center_lines=4, seed=0)
    maps = synthetic_coil_maps(case["coils"], (size, size)) if case["coils"] > 1 else None
    return DynamicMRI(mask, maps)


def run_case(name: str, warmup: int, repeats: int, threads: int | None) -> dict:
    """Measure one case in this process; returns a JSON-serialisable dict."""
    import numpy as np
    import torch

    if threads:
        torch.set_num_threads(threads)
    # Libraries are loaded first: their import is not the operator's memory.
    import astra  # noqa: F401
    import imaging.operators  # noqa: F401
    import imaging.schedules  # noqa: F401
    import imaging.simulate  # noqa: F401

    rss_before = rss_bytes()
    start = time.perf_counter()
    operator = _build(CASES[name])
    build_seconds = time.perf_counter() - start
    rss_growth = rss_bytes() - rss_before
    generator = torch.Generator().manual_seed(0)
    x = operator.random_domain(generator)
    y = operator.random_range(generator)
    with torch.no_grad():
        forward = _time_calls(operator.forward, x, warmup, repeats)
        adjoint = _time_calls(operator.adjoint, y, warmup, repeats)
    return {
        "case": name,
        "threads": torch.get_num_threads(),
        "build_s": build_seconds,
        "forward_ms": 1e3 * statistics.median(forward),
        "forward_min_ms": 1e3 * min(forward),
        "adjoint_ms": 1e3 * statistics.median(adjoint),
        "adjoint_min_ms": 1e3 * min(adjoint),
        "held_mb": operator.nbytes / 1e6,
        "rss_growth_mb": rss_growth / 1e6,
        "peak_rss_mb": peak_rss_bytes() / 1e6,
        "adjointness": operator.adjointness_error(),
        "shape": f"{tuple(operator.domain_shape)} -> {tuple(operator.range_shape)}",
        "numpy": np.__version__,
    }


def _run_in_subprocess(name: str, args) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--single-case", name]
    command += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])))
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"case {name} failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _machine_info(load_before, load_after, rows) -> list[str]:
    import astra
    import scipy
    import torch

    cpu_model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu_model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    busy = max(load_before, load_after) > 0.5 * (os.cpu_count() or 1)
    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {cpu_model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"- torch threads: {rows[0]['threads']}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {rows[0]['numpy']}, scipy {scipy.__version__}, astra {astra.__version__}",
        f"- load average (1 min) before / after the run: {load_before:.2f} / {load_after:.2f}"
        + ("  (other processes were running: timings are pessimistic)" if busy else ""),
    ]


def _verdict(row: dict) -> str:
    target = TARGETS.get(row["case"])
    if target is None:
        return "-"
    checks = [f"fwd+adj {'<=' if row['forward_ms'] + row['adjoint_ms'] <= target['ms'] else '>'} {target['ms']:.0f} ms"]
    if "mb" in target:
        checks.append(f"memory {'<=' if row['held_mb'] <= target['mb'] else '>'} {target['mb']:.0f} MB")
    return ", ".join(checks)


def format_report(rows: list[dict], info: list[str], args) -> str:
    header = (
        "| case | domain -> range | build (s) | forward (ms) | adjoint (ms) | fwd + adj (ms) | "
        "held (MB) | RSS growth (MB) | peak RSS (MB) | adjointness | target |"
    )
    lines = [
        "# Operator benchmark",
        "",
        f"`python benchmarks/operators.py` (median of {args.repeats} calls after {args.warmup} warm-up calls; "
        "minimum in parentheses). \"held\": the operator's `nbytes` (tomography: sparse weights and "
        "indices, none for the matrix-free back end; MRI: mask and coil maps, plain and modulated); \"RSS growth\": the process's resident "
        "memory after construction minus before (libraries already imported); each case runs in a "
        "fresh process.",
        "",
        *info,
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for row in rows:
        lines.append(
            f"| {row['case']} | {row['shape']} | {row['build_s']:.2f} | "
            f"{row['forward_ms']:.1f} ({row['forward_min_ms']:.1f}) | "
            f"{row['adjoint_ms']:.1f} ({row['adjoint_min_ms']:.1f}) | "
            f"{row['forward_ms'] + row['adjoint_ms']:.1f} | {row['held_mb']:.1f} | {row['rss_growth_mb']:.1f} | "
            f"{row['peak_rss_mb']:.0f} | {row['adjointness']:.1e} | {_verdict(row)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per direction (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file to write")
    parser.add_argument("--single-case", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.single_case:
        print(json.dumps(run_case(args.single_case, args.warmup, args.repeats, args.threads)))
        return 0
    load_before = os.getloadavg()[0]
    rows = []
    for name in args.cases:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.append(_run_in_subprocess(name, args))
    report = format_report(rows, _machine_info(load_before, os.getloadavg()[0], rows), args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
