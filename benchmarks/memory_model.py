"""Measured peak memory of a reconstruction against the memory model (``Solver.estimate_bytes``).

Each case is simulated once by this process (walnut for tomography, the cardiac phantom
for MRI; no ground truth in the file) and reconstructed in a child process of its own,
one thread. The child records its resident memory after importing ``imaging`` (with
PyTorch and ASTRA) and the peak during the run (``VmHWM``, see ``benchmarks/_memory.py``);
the difference is the
measured peak, which :meth:`imaging.solvers.base.Solver.estimate_bytes` predicts.

Usage::

    python benchmarks/memory_model.py                    # every case, writes the table
    python benchmarks/memory_model.py --cases red-psm:128:64 fbp-window:256:64 --no-write
    python benchmarks/memory_model.py --cases red-psm:128:64 --json    # rows as JSON lines
    python benchmarks/memory_model.py --multicoil    # 8-coil complex MRI: memory_model_multicoil.md

A case is ``method[+preset]:N:P[:modality[:acquisition]]`` (modality ``tomography`` by
default, or ``mri``); the table goes to ``benchmarks/results/memory_model.md``. An MRI
case is a single-coil Cartesian acquisition of real images unless its acquisition, a
comma-separated list, says otherwise: ``coils=C`` receive coils (their maps in the
file), ``phase`` (complex images, as ``imaging simulate``'s MRI default), ``radial``
(radial spokes instead of Cartesian lines), ``no-maps`` (the file holds no coil maps:
the run estimates them with ESPIRiT first). E.g. ``red-psm:64:32:mri:coils=8,phase``,
the acquisition of ``imaging simulate --modality mri``.

``--largest`` prints instead, from the model alone, the largest N of a tomography slice
(one view per frame, a detector of N bins) whose reconstruction fits 8, 16 and 24 GiB
(:func:`imaging.solvers.memory.largest_fitting_size`, the memory available to the run,
the process's own imports included)::

    python benchmarks/memory_model.py --largest --frames 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._memory import peak_rss_bytes, rss_bytes  # noqa: E402

#: Iterations per run: the peak of an iterative method is reached in its first iteration
#: (initialisation, then every step allocates the same temporaries).
ITERATIONS = 3

#: 8-coil complex MRI (``imaging simulate``'s MRI default): Cartesian lines, radial spokes,
#: and Cartesian without coil maps (estimated by ESPIRiT before the run). Small sizes only:
#: the model's multi-coil terms were fitted on these.
MULTICOIL_CASES = [
    f"{method}:{size}:{frames}:mri:coils=8,phase{extra}"
    for extra, sizes in (("", ((48, 32), (64, 32), (96, 64), (128, 32), (128, 64))), (",radial", ((64, 32), (128, 64))),
                         (",no-maps", ((64, 32), (128, 64))))
    for size, frames in sizes
    for method in ("psm", "red-psm", "fbp-window")
]

DEFAULT_CASES = [
    "fbp-window:128:128", "fbp-window:256:256", "fbp-window:512:64", "fbp-window:128:64:mri",
    "psm:128:256", "psm:256:128", "psm:512:128",
    "red-psm:64:64", "red-psm:128:128", "red-psm:128:256", "red-psm:256:128", "red-psm:256:256",
    "red-psm:512:64", "red-psm:512:128", "red-psm:1024:32",
    "red-psm+fast:128:128", "red-psm+fast:256:256", "red-psm:64:64:mri", "red-psm:128:64:mri",
    "td-dip:64:32", "td-dip:128:32",
    *MULTICOIL_CASES,
]


def run_child(data_path: str, method: str, preset: str | None) -> dict:
    """Child process: the run's peak memory above the imports, and the model's estimate."""
    import astra  # noqa: F401  (imported before the baseline, as every run imports it)
    import torch  # noqa: F401

    import imaging
    from imaging.solvers import get_solver

    baseline = rss_bytes()
    measurements = imaging.load_measurements(data_path)
    solver_cls = get_solver(method)
    overrides = {"max_iter": ITERATIONS} if method in ("psm", "red-psm", "td-dip") else {}
    params = solver_cls.make_params(preset, **overrides)
    imaging.reconstruct(measurements, method, preset=preset, threads=1, **overrides)
    peak = peak_rss_bytes()
    return {"measured": peak - baseline, "estimate": solver_cls.estimate_bytes(measurements, params)}


#: Acquisition options of an MRI case (see the module docstring).
ACQUISITION_FLAGS = ("phase", "radial", "no-maps")


def _parse_acquisition(text: str) -> dict:
    """``coils=C,phase,radial,no-maps`` as options of :func:`imaging.simulate.simulate` (and ``no_maps``)."""
    acquisition = {"coils": 1, "phase": False, "trajectory": "cartesian", "no_maps": False}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if key == "coils" and sep and value.isdigit() and int(value) >= 1:
            acquisition["coils"] = int(value)
        elif item in ACQUISITION_FLAGS:
            acquisition.update({"phase": {"phase": True}, "radial": {"trajectory": "radial"},
                                "no-maps": {"no_maps": True}}[item])
        else:
            raise argparse.ArgumentTypeError(
                f"an MRI acquisition is a comma-separated list of coils=C, {', '.join(ACQUISITION_FLAGS)}; got {item!r}"
            )
    if acquisition["no_maps"] and acquisition["coils"] == 1:
        raise argparse.ArgumentTypeError("no-maps needs coils=C with C > 1 (a single coil has no maps to estimate)")
    return acquisition


def _parse_case(text: str) -> tuple[str, str | None, int, int, str, dict]:
    parts = text.split(":")
    if len(parts) not in (3, 4, 5):
        raise argparse.ArgumentTypeError(f"a case is method[+preset]:N:P[:modality[:acquisition]], got {text!r}")
    method, _, preset = parts[0].partition("+")
    modality = parts[3] if len(parts) >= 4 else "tomography"
    if modality not in ("tomography", "mri"):
        raise argparse.ArgumentTypeError(f"modality must be tomography or mri, got {modality!r}")
    if len(parts) == 5 and modality != "mri":
        raise argparse.ArgumentTypeError(f"only an MRI case has acquisition options, got {text!r}")
    acquisition = _parse_acquisition(parts[4] if len(parts) == 5 else "") if modality == "mri" else {}
    return method, preset or None, int(parts[1]), int(parts[2]), modality, acquisition


def measure_case(case: str, workdir: Path) -> dict:
    """Simulate the case, run it in a child process; the row (bytes)."""
    from imaging import save_measurements
    from imaging.simulate import simulate

    method, preset, size, frames, modality, acquisition = _parse_case(case)
    options = dict(acquisition)
    no_maps = options.pop("no_maps", False)
    tag = "-".join(f"{key}{value}" for key, value in sorted(acquisition.items()))
    path = workdir / f"{modality}-N{size}-P{frames}{'-' + tag if tag else ''}.npz"
    if not path.exists():
        measurements = simulate(
            "walnut" if modality == "tomography" else "cardiac", frames=frames, size=size, seed=0, **options
        )
        measurements.ground_truth = None
        if no_maps:
            measurements.coil_maps = None
        save_measurements(path, measurements)
    command = [sys.executable, __file__, "--child", str(path), method, preset or ""]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{completed.stderr}")
    row = json.loads(completed.stdout.strip().splitlines()[-1])
    return {"case": case, "method": method, "preset": preset, "size": size, "frames": frames, "modality": modality,
            "acquisition": _acquisition_text(acquisition), **row}


def _acquisition_text(acquisition: dict) -> str:
    """The table's words for an acquisition ("" for tomography)."""
    if not acquisition:
        return ""
    words = [f"{acquisition['coils']} coil{'s' if acquisition['coils'] > 1 else ''}",
             "complex" if acquisition["phase"] else "real", acquisition["trajectory"]]
    if acquisition["no_maps"]:
        words.append("maps estimated")
    return ", ".join(words)


def _format(rows: list[dict]) -> str:
    lines = [
        "# Memory model: measured peak against `Solver.estimate_bytes`",
        "",
        f"`python benchmarks/memory_model.py {' '.join(sys.argv[1:])}` on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} cores), one thread, {ITERATIONS} iterations; no ground truth "
        "in the file. Measured: peak resident memory of the run minus the resident memory after importing "
        "`imaging` (PyTorch, ASTRA).",
        "",
        "| case | modality | acquisition | N | P | measured (MiB) | estimate (MiB) | estimate / measured |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['method']}{' ' + row['preset'] if row['preset'] else ''} | {row['modality']} | "
            f"{row['acquisition']} | {row['size']} | "
            f"{row['frames']} | {row['measured'] / 2**20:.0f} | {row['estimate'] / 2**20:.0f} | "
            f"{row['estimate'] / row['measured']:.2f} |"
        )
    return "\n".join(lines) + "\n"


#: (method, preset) rows of ``--largest``.
LARGEST_METHODS = [("red-psm", None), ("red-psm", "fast"), ("psm", None), ("fbp-window", None), ("td-dip", None)]


def largest_table(frames: int, memories_gib=(8, 16, 24)) -> str:
    """Markdown table: the largest N that fits each memory, per method (from the model)."""
    from imaging.solvers import get_solver
    from imaging.solvers.memory import largest_fitting_size

    lines = [
        f"| method | {' | '.join(f'{m} GiB' for m in memories_gib)} |",
        "|---|" + "---|" * len(memories_gib),
    ]
    for method, preset in LARGEST_METHODS:
        solver_cls = get_solver(method)
        params = solver_cls.make_params(preset)
        sizes = [largest_fitting_size(solver_cls, m * 2**30, frames=frames, params=params) for m in memories_gib]
        lines.append(f"| {method}{' ' + preset if preset else ''} | " + " | ".join(f"N <= {n}" for n in sizes) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", help="method[+preset]:N:P[:modality[:acquisition]] (default: all cases)")
    parser.add_argument("--multicoil", action="store_true",
                        help="the multi-coil MRI cases only, into benchmarks/results/memory_model_multicoil.md")
    parser.add_argument("--json", action="store_true", help="print each row as a JSON line")
    parser.add_argument("--no-write", action="store_true", help="do not write the table")
    parser.add_argument("--output", help="the table (default benchmarks/results/memory_model.md)")
    parser.add_argument("--largest", action="store_true", help="print the largest N that fits 8, 16, 24 GiB")
    parser.add_argument("--frames", type=int, default=256, help="P of --largest (default 256)")
    parser.add_argument("--child", nargs=3, metavar=("DATA", "METHOD", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, method, preset = args.child
        print(json.dumps(run_child(data, method, preset or None)))
        return 0
    if args.largest:
        print(largest_table(args.frames), end="")
        return 0
    if args.multicoil and args.cases:
        parser.error("--multicoil and --cases both choose the cases; give one")
    args.cases = MULTICOIL_CASES if args.multicoil else args.cases or DEFAULT_CASES
    table = "memory_model_multicoil.md" if args.multicoil else "memory_model.md"
    args.output = args.output or str(ROOT / "benchmarks" / "results" / table)
    for case in args.cases:
        try:
            _parse_case(case)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(str(exc))
    rows = []
    with tempfile.TemporaryDirectory(prefix="imaging-memory-") as tmp:
        for case in args.cases:
            row = measure_case(case, Path(tmp))
            rows.append(row)
            print(json.dumps(row) if args.json else
                  f"{case}: measured {row['measured'] / 2**20:.0f} MiB, estimate {row['estimate'] / 2**20:.0f} MiB "
                  f"({row['estimate'] / row['measured']:.2f})", flush=True)
            if not args.no_write:
                from imaging.io.atomic import write_text_atomic

                write_text_atomic(args.output, _format(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
