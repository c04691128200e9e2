"""``imaging demo``: the main job on built-in data.

Simulates the walnut phantom with the paper's acquisition (one view per frame,
bit-reversal order over [0, pi), noise 5e-3) but, by default, without the paper's
inverse crime: the phantom is rendered at 2N and projected with another projector than
the reconstruction's, and scored against its block average (``--protocol fine-grid``;
``--protocol inverse-crime`` is the paper's). Reconstructs it with fbp-window and
RED-PSM, prints the metrics table and writes the reconstructions, the metrics (JSON)
and a comparison figure into an output folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ._common import CommandError, progress_callback


def add_parser(sub):
    p = sub.add_parser("demo", help="simulate the walnut phantom, reconstruct with fbp-window and RED-PSM, compare")
    p.add_argument("--output", default="demo-output", help="folder for results (default ./demo-output)")
    p.add_argument("--frames", type=int, default=256, help="time frames P (default 256, the paper's)")
    p.add_argument("--size", type=int, default=128, help="image size N (default 128, the paper's)")
    p.add_argument("--phantom", default="walnut", help="phantom to simulate (default walnut)")
    p.add_argument("--preset", default=None, help="RED-PSM preset, e.g. fast (default: the method's defaults)")
    p.add_argument("--max-iter", type=int, default=None, help="cap RED-PSM's outer iterations")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--seed", type=int, default=0, help="seed of phantom and noise (default 0)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores other processes leave idle, re-checked between iterations)")
    p.add_argument(
        "--protocol",
        choices=("fine-grid", "inverse-crime"),
        default="fine-grid",
        help="fine-grid (default, honest: rendered at 2N, another projector, ground truth block-averaged) "
        "or inverse-crime (the paper's: data made by the reconstruction operator)",
    )
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import metrics
    from ..io import save_measurements, save_reconstruction, write_json_atomic
    from ..operators import resolve_device
    from ..run import reconstruct
    from ..simulate import PROTOCOLS, simulate
    from ..solvers import get_solver

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"--output {output} exists and is not a folder")
    # Every option is checked before anything is simulated or written.
    resolve_device(args.device)
    get_solver("red-psm").make_params(args.preset, max_iter=args.max_iter)
    print(
        f"simulating {args.phantom}: {args.frames} frames of {args.size}x{args.size}, one view per frame, "
        f"{PROTOCOLS[args.protocol]}",
        flush=True,
    )
    measurements = simulate(args.phantom, frames=args.frames, size=args.size, seed=args.seed, protocol=args.protocol)
    output.mkdir(parents=True, exist_ok=True)
    save_measurements(output / "measurements.npz", measurements)
    results = {}
    for method, options in (
        ("fbp-window", {}),
        ("red-psm", {"preset": args.preset, "max_iter": args.max_iter}),
    ):
        options = {k: v for k, v in options.items() if v is not None}
        bar, callback = progress_callback(options.get("max_iter", 1), method)
        try:
            result = reconstruct(
                measurements, method, callback=callback, device=args.device, threads=args.threads, **options
            )
        finally:
            bar.close()
        save_reconstruction(output / f"{method}.npz", result)
        results[method] = result
        print(f"{method}: {len(result.history)} iterations, {result.elapsed_seconds:.1f} s", flush=True)
    truth = measurements.ground_truth
    table = {name: metrics.evaluate(r.reconstruction, truth) for name, r in results.items()}
    for name, r in results.items():
        table[name]["seconds"] = r.elapsed_seconds
    print()
    print(f"scored against the ground truth of the {args.protocol} protocol")
    print(metrics.format_table(table))
    write_json_atomic(output / "metrics.json", table)
    figure_path = output / "comparison.png"
    comparison_figure(truth, {k: r.reconstruction for k, r in results.items()}, results["red-psm"].history, figure_path)
    print(f"\nwrote {output}/: measurements.npz, fbp-window.npz, red-psm.npz, metrics.json, comparison.png")
    sys.stdout.flush()
    return 0


def moving_edge_row(truth: np.ndarray) -> int:
    """Row whose intensity changes most over time (where an x-t profile shows motion)."""
    temporal_std = truth.std(axis=0)
    return int(np.argmax(temporal_std.sum(axis=1)))


def comparison_figure(truth, reconstructions: dict, history: list, path) -> None:
    """Ground truth and reconstructions at a few frames, x-t profiles, convergence curve.

    Parameters
    ----------
    truth : ndarray (P, N, N)
    reconstructions : dict name -> ndarray (P, N, N)
    history : list of dict
        Per-iteration log of the iterative method (iteration, data_residual, psnr).
    path : path of the PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_frames = truth.shape[0]
    frames = np.linspace(0, n_frames - 1, 4).round().astype(int)
    rows = {"ground truth": truth, **reconstructions}
    row = moving_edge_row(truth)
    vmin, vmax = float(truth.min()), float(truth.max())
    fig, axes = plt.subplots(len(rows), len(frames) + 1, figsize=(2.4 * (len(frames) + 1), 2.4 * len(rows) + 2.4))
    for r, (name, volume) in enumerate(rows.items()):
        for c, frame in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(volume[frame], cmap="gray", vmin=vmin, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"frame {frame}")
            if c == 0:
                ax.set_ylabel(name)
        ax = axes[r, -1]
        ax.imshow(volume[:, row, :].T, cmap="gray", vmin=vmin, vmax=vmax, aspect="auto")
        ax.set_title(f"x-t profile, row {row}" if r == 0 else "")
        ax.set_yticks([])
        if r == len(rows) - 1:
            ax.set_xlabel("frame")
        else:
            ax.tick_params(labelbottom=False)
    for ax in axes[0, :-1]:
        ax.axhline(row, color="tab:red", lw=0.6)
    fig.subplots_adjust(bottom=0.3)
    conv = fig.add_axes([0.1, 0.05, 0.8, 0.17])
    iterations = [h["iteration"] for h in history]
    conv.semilogy(iterations, [h["data_residual"] for h in history], color="tab:blue", label="relative data residual")
    conv.set_xlabel("outer iteration")
    conv.set_ylabel("data residual", color="tab:blue")
    scored = [(h["iteration"], h["psnr"]) for h in history if "psnr" in h]  # not every coarse-grid iteration
    if scored:
        twin = conv.twinx()
        twin.plot(*zip(*scored), color="tab:orange", label="PSNR (logged only)")
        twin.set_ylabel("PSNR (dB)", color="tab:orange")
    conv.set_title("RED-PSM convergence (PSNR is logged, never used to stop)")
    from ..io import write_atomic

    write_atomic(path, lambda temporary: fig.savefig(temporary, dpi=110, format="png"))
    plt.close(fig)
