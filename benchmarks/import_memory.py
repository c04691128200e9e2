"""Peak memory of ``imaging import`` on a large Data Exchange file (4 rows imported).

Writes a Data Exchange HDF5 file of about ``--gigabytes`` GB of uint16 counts (projections
of ``--rows`` x ``--cols`` pixels, written chunk by chunk so that making it needs little
memory), then imports 4 detector rows of it in a child process and reports that child's
peak resident memory (``ru_maxrss``), next to the peak of a child that only imports the
``imaging`` package (Python, NumPy, PyTorch: the floor of every import). The target of
issue 11 is at most 500 MB for a 4 GB file. Writes ``benchmarks/results/import_memory.md``
(one row per run; earlier rows of other sizes are kept). Run from the repository root::

    python benchmarks/import_memory.py --gigabytes 0.5     # a modest size
    python benchmarks/import_memory.py --gigabytes 4       # the target case (needs 4 GB of disk)
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "import_memory.md"


def write_large_file(path: Path, gigabytes: float, rows: int, cols: int, layout: str) -> int:
    """A Data Exchange file of about ``gigabytes`` GB; returns the number of projections."""
    import h5py

    frame_bytes = rows * cols * 2
    n_projections = max(8, int(gigabytes * 1e9 // frame_bytes))
    rng = np.random.default_rng(0)
    chunks = (1, rows, cols) if layout == "per-image" else None
    with h5py.File(path, "w") as handle:
        group = handle.create_group("exchange")
        data = group.create_dataset("data", (n_projections, rows, cols), dtype=np.uint16, chunks=chunks)
        x = np.arange(cols) - cols / 2
        step = max(1, (64 * 1024**2) // frame_bytes)
        for start in range(0, n_projections, step):
            stop = min(n_projections, start + step)
            centres = 0.2 * cols * np.cos(np.linspace(0, np.pi, n_projections, endpoint=False)[start:stop])
            profile = 2.0 * np.exp(-((x[None] - centres[:, None]) ** 2) / (0.02 * cols**2))
            counts = 3e4 * np.exp(-profile)[:, None, :] + rng.normal(0, 100, (stop - start, rows, 1))
            data[start:stop] = counts.astype(np.uint16)
        group.create_dataset("data_white", data=np.full((10, rows, cols), 30000, np.uint16))
        group.create_dataset("data_dark", data=np.full((5, rows, cols), 100, np.uint16))
        group.create_dataset("theta", data=np.linspace(0.0, 180.0, n_projections, endpoint=False))
    return n_projections


def child_peak_mb(code: str) -> tuple[float, float]:
    """Peak RSS (MB) and wall time (s) of ``python -c code`` in a fresh child process.

    The peak is the child's ``VmHWM`` (``/proc/self/status``): its ``ru_maxrss`` would also
    count the parent's memory at the fork, which ``exec`` does not reset.
    """
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    report = (
        "\nfor line in open('/proc/self/status'):\n"
        "    if line.startswith('VmHWM:'):\n"
        "        print('PEAK_KB', line.split()[1])\n"
    )
    done = subprocess.run([sys.executable, "-c", code + report], check=True, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak_kb = next(int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("PEAK_KB"))
    return peak_kb / 1024.0, elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gigabytes", type=float, default=0.5, help="size of the counts in the file (default 0.5)")
    parser.add_argument("--rows", type=int, default=1024, help="detector rows (default 1024)")
    parser.add_argument("--cols", type=int, default=2048, help="detector columns (default 2048)")
    parser.add_argument("--layout", choices=("contiguous", "per-image"), default="contiguous", help="HDF5 layout")
    parser.add_argument("--directory", help="where to write the file (default: a temporary folder)")
    parser.add_argument("--no-table", action="store_true", help="print only; do not write the results table")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.directory) as folder:
        path = Path(folder) / "large.h5"
        start = time.perf_counter()
        n_projections = write_large_file(path, args.gigabytes, args.rows, args.cols, args.layout)
        written = time.perf_counter() - start
        size_gb = path.stat().st_size / 1e9
        floor, _ = child_peak_mb("import imaging.io.raw")
        first = args.rows // 2 - 2
        code = (
            "from imaging.io import import_raw\n"
            f"r = import_raw({str(path)!r}, rows='{first}:{first + 4}')\n"
            "print(r.measurements.sinogram.shape, r.measurements.sinogram.nbytes)"
        )
        peak, elapsed = child_peak_mb(code)
    row = (
        f"| {size_gb:.2f} GB ({n_projections} x {args.rows} x {args.cols} uint16, {args.layout}) | 4 | "
        f"{peak:.0f} MB | {floor:.0f} MB | {peak - floor:.0f} MB | {elapsed:.1f} s (file written in {written:.0f} s) |"
    )
    print(row)
    if not args.no_table:
        header = [
            "# Peak memory of importing 4 rows of a Data Exchange file",
            "",
            f"`python benchmarks/import_memory.py --gigabytes G` on {platform.platform()}, {os.cpu_count()} cores; "
            "peak resident memory of the child process that imports (`VmHWM`), and of one that only imports "
            "the `imaging` package (the floor: Python, NumPy, PyTorch). Target (issue 11): at most 500 MB for a 4 GB "
            "file. Timings are of a shared machine.",
            "",
            "| file | rows imported | peak RSS | floor (import imaging) | above the floor | import time |",
            "|---|---|---|---|---|---|",
        ]
        rows = [line for line in (RESULTS.read_text().splitlines() if RESULTS.exists() else []) if line.startswith("| ") and "GB (" in line]
        key = row.split(" | ")[0]
        rows = [line for line in rows if line.split(" | ")[0] != key] + [row]
        RESULTS.write_text("\n".join(header + rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
