"""MRI operator benchmark: multi-coil Cartesian and radial operators, coil-map estimation (issue 12).

Cases (P = 128 frames, C = 8 coils, N = 128, the issue's sizes):

- ``cartesian-lines``: 8 whole phase-encode lines per frame (variable density, 4 centre
  lines), the line-sampled layout of :class:`imaging.operators.DynamicMRI` (only the
  sampled rows are computed); complex images. Target: forward + adjoint <= 50 ms on the
  2-core CPU.
- ``cartesian-points``: the same density (1/16) as random k-space points, which keeps the
  full-grid layout (the FFTs of every coil image), for comparison.
- ``radial-finufft``: 8 golden-angle spokes of 2N samples per frame through
  :class:`imaging.operators.nufft.DynamicNonCartesianMRI` (FINUFFT, upsampling 1.25,
  eps 1e-4).
- ``radial-torchkbnufft``: the same trajectory through torchkbnufft's ``KbNufft`` /
  ``KbNufftAdjoint`` (table interpolation, default settings), when it is installed:
  the measurement behind choosing FINUFFT.
- ``espirit``: :func:`imaging.operators.coils.espirit_maps` from a 24 x 24 calibration
  region of 8 synthetic coils on the cardiac phantom, its agreement with the true maps
  (largest per-pixel deviation from parallel coil vectors inside the object) and, when
  sigpy is installed, with ``sigpy.mri.app.EspiritCalib`` (same calibration width,
  kernel and thresholds) and sigpy's time.

Timings: the median and the minimum over ``--repeats`` calls after one untimed call; the
adjointness error on random inputs. The table goes to ``benchmarks/results/mri_operators.md``
and to standard output, with the load average before and after. Run it on a quiet
machine from the repository root::

    python benchmarks/mri_operators.py --threads 2
    python benchmarks/mri_operators.py --threads 2 --cases cartesian-lines --repeats 3   # smoke run
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks._report import write_report  # noqa: E402
from imaging.operators import DynamicMRI, fft2c  # noqa: E402
from imaging.operators.coils import coil_combination_error, espirit_maps  # noqa: E402
from imaging.operators.nufft import DynamicNonCartesianMRI, radial_trajectory  # noqa: E402
from imaging.phantoms import cardiac  # noqa: E402
from imaging.schedules import kt_mask, view_angles  # noqa: E402
from imaging.simulate import synthetic_coil_maps  # noqa: E402

DEFAULT_OUTPUT = REPOSITORY / "benchmarks" / "results" / "mri_operators.md"
FRAMES, COILS, SIZE, LINES, SPOKES = 128, 8, 128, 8, 8
CASES = ("cartesian-lines", "cartesian-points", "radial-finufft", "radial-torchkbnufft", "espirit")
TARGET_MS = {"cartesian-lines": 50.0}


def _timed(function, repeats: int) -> tuple[float, float]:
    """Median and minimum wall time (ms) of ``repeats`` calls after one untimed call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(1000.0 * (time.perf_counter() - start))
    return statistics.median(times), min(times)


def _cpu_time(function, repeats: int) -> float:
    """Minimum CPU time (ms, all threads of the process) of ``repeats`` calls: less sensitive
    to other load than wall time (with one thread it is the computation's own time)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        function()
        times.append(1000.0 * (time.process_time() - start))
    return min(times)


def _operator_row(name: str, operator, repeats: int) -> dict:
    x = operator.random_domain(torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = operator.forward(x)
        forward = _timed(lambda: operator.forward(x), repeats)
        adjoint = _timed(lambda: operator.adjoint(y), repeats)
        both = _timed(lambda: operator.adjoint(operator.forward(x)), repeats)
        cpu = _cpu_time(lambda: operator.adjoint(operator.forward(x)), repeats)
    return {
        "case": name,
        "range": "x".join(str(s) for s in operator.range_shape),
        "forward": forward,
        "adjoint": adjoint,
        "both": both,
        "cpu": cpu,
        "adjointness": operator.adjointness_error(),
    }


def _trajectory():
    return radial_trajectory(view_angles("golden-angle", FRAMES, SPOKES), 2 * SIZE)


def _torchkbnufft_row(repeats: int) -> dict | None:
    try:
        import torchkbnufft
    except ImportError:
        return None
    maps = torch.from_numpy(synthetic_coil_maps(COILS, (SIZE, SIZE)))[None]
    points = torch.from_numpy(2 * np.pi * _trajectory().reshape(FRAMES, -1, 2).transpose(0, 2, 1)).float()
    forward_op = torchkbnufft.KbNufft(im_size=(SIZE, SIZE))
    adjoint_op = torchkbnufft.KbNufftAdjoint(im_size=(SIZE, SIZE))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(FRAMES, 1, SIZE, SIZE, dtype=torch.complex64, generator=generator)
    y = torch.randn(FRAMES, COILS, points.shape[-1], dtype=torch.complex64, generator=generator)
    with torch.no_grad():
        ax = forward_op(x, points, smaps=maps)
        ahy = adjoint_op(y, points, smaps=maps)
        lhs, rhs = torch.vdot(y.flatten(), ax.flatten()), torch.vdot(ahy.flatten(), x.flatten())
        error = float(abs(lhs - rhs) / (torch.linalg.vector_norm(ax) * torch.linalg.vector_norm(y)))
        return {
            "case": "radial-torchkbnufft",
            "range": "x".join(str(s) for s in ax.shape),
            "forward": _timed(lambda: forward_op(x, points, smaps=maps), repeats),
            "adjoint": _timed(lambda: adjoint_op(y, points, smaps=maps), repeats),
            "both": _timed(lambda: adjoint_op(forward_op(x, points, smaps=maps), points, smaps=maps), repeats),
            "cpu": _cpu_time(lambda: adjoint_op(forward_op(x, points, smaps=maps), points, smaps=maps), repeats),
            "adjointness": error,
        }


def _espirit_rows(repeats: int) -> list[str]:
    truth = synthetic_coil_maps(COILS, (SIZE, SIZE))
    image = cardiac(frames=1, size=SIZE)[0]
    kspace = fft2c(torch.from_numpy((truth * image).astype(np.complex64))).numpy()
    rng = np.random.default_rng(0)
    kspace += (1e-3 * np.abs(kspace).max() * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))).astype(np.complex64)
    centre = slice(SIZE // 2 - 12, SIZE // 2 + 12)
    median, fastest = _timed(lambda: espirit_maps(kspace[:, centre, centre], (SIZE, SIZE)), repeats)
    ours = espirit_maps(kspace[:, centre, centre], (SIZE, SIZE))
    inside = image > 0.05
    kept = np.linalg.norm(ours, axis=0) > 0
    lines = [
        f"| espirit (ours, torch) | {median:.0f} / {fastest:.0f} ms | "
        f"{coil_combination_error(ours, truth, inside & kept):.2e} | "
        f"{np.mean(kept[inside]):.3f} |"
    ]
    try:
        from sigpy.mri.app import EspiritCalib
    except ImportError:
        return lines + ["| espirit (sigpy) | not installed | | |"]
    app = lambda: EspiritCalib(kspace, calib_width=24, thresh=0.02, kernel_width=6, crop=0.9, show_pbar=False).run()  # noqa: E731
    sigpy_median, sigpy_fastest = _timed(app, repeats)
    theirs = app()
    both_kept = kept & (np.linalg.norm(theirs, axis=0) > 0)
    lines.append(
        f"| espirit (sigpy {__import__('sigpy').__version__}) | {sigpy_median:.0f} / {sigpy_fastest:.0f} ms | "
        f"{coil_combination_error(theirs, truth, inside & both_kept):.2e} (ours vs sigpy: "
        f"{coil_combination_error(ours, theirs, both_kept):.1e}) | {np.mean(both_kept[inside]):.3f} |"
    )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="torch and FINUFFT threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    maps = synthetic_coil_maps(COILS, (SIZE, SIZE))
    rows = []
    if "cartesian-lines" in args.cases:
        mask = kt_mask("variable-density", FRAMES, (SIZE, SIZE), LINES, center_lines=4, seed=0)
        rows.append(_operator_row("cartesian-lines", DynamicMRI(mask, maps, complex_image=True), args.repeats))
    if "cartesian-points" in args.cases:
        points = np.random.default_rng(0).random((FRAMES, SIZE, SIZE)) < LINES / SIZE
        rows.append(_operator_row("cartesian-points", DynamicMRI(points, maps, complex_image=True), args.repeats))
    if "radial-finufft" in args.cases:
        radial = DynamicNonCartesianMRI(_trajectory(), (SIZE, SIZE), maps, complex_image=True)
        rows.append(_operator_row("radial-finufft", radial, args.repeats))
    if "radial-torchkbnufft" in args.cases:
        row = _torchkbnufft_row(args.repeats)
        if row is not None:
            rows.append(row)
    espirit = _espirit_rows(args.repeats) if "espirit" in args.cases else []

    def cell(pair):
        return f"{pair[0]:.1f} / {pair[1]:.1f}"

    lines = [
        "# MRI operators (issue 12)",
        "",
        f"P = {FRAMES} frames, C = {COILS} coils, N = {SIZE}; Cartesian: {LINES} lines per frame; radial: "
        f"{SPOKES} golden-angle spokes of {2 * SIZE} samples per frame; complex images. Times in ms, "
        f"median / minimum of {args.repeats} calls after one untimed call; CPU time: the least "
        "process time (all threads) of a call.",
        "",
        "| case | range | forward | adjoint | forward + adjoint | CPU time of forward + adjoint | target | adjointness |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        target = TARGET_MS.get(row["case"])
        lines.append(
            f"| {row['case']} | {row['range']} | {cell(row['forward'])} | {cell(row['adjoint'])} | "
            f"{cell(row['both'])} | {row['cpu']:.1f} | {'' if target is None else f'<= {target:.0f}'} | "
            f"{row['adjointness']:.1e} |"
        )
    if espirit:
        lines += [
            "",
            "Coil maps from a 24 x 24 calibration region (6 x 6 kernels, threshold 0.02, crop 0.9), "
            "8 synthetic coils on the cardiac phantom, noise 1e-3 of the k-space peak:",
            "",
            "| estimator | time (median / min) | max deviation from the true maps inside the object | object kept |",
            "|---|---|---|---|",
            *espirit,
        ]
    write_report([*lines, ""], "mri_operators.py", argv, load_before, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
