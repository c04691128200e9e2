"""The ``imaging`` command line (DESIGN.md section 5).

Every sub-command reports bad input (wrong file, key, shape, dtype, NaN, impossible
parameter) as one line on stderr and exits with status 2; outputs are written
atomically, so a failed or interrupted command leaves no half-written file behind.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _user_errors():
    from .io import FileFormatError
    from .measurements import MeasurementError
    from .solvers import ParameterError

    # ValueError covers impossible parameters raised by the library (schedules, phantoms, simulate).
    return (CommandError, FileFormatError, MeasurementError, ParameterError, FileNotFoundError, IsADirectoryError, ValueError)


# -- simulate -----------------------------------------------------------------------------
def _add_simulate(sub):
    from .schedules import MASK_PATTERNS, SCHEDULES

    p = sub.add_parser("simulate", help="simulate a dynamic phantom acquisition into a measurement file")
    p.add_argument("--phantom", required=True, help="walnut, shepp_logan, material or cardiac")
    p.add_argument("--frames", type=int, default=64, help="number of time frames P (default 64)")
    p.add_argument("--size", type=int, default=128, help="image size N (default 128)")
    p.add_argument("--modality", choices=("tomography", "mri"), help="default: mri for cardiac, else tomography")
    p.add_argument("--views-per-frame", type=int, default=1, help="tomography: views per frame V (default 1)")
    p.add_argument("--schedule", choices=SCHEDULES, default="bit-reversal", help="tomography view order")
    p.add_argument("--lines-per-frame", type=int, default=8, help="mri: k-space lines per frame (default 8)")
    p.add_argument("--mask-pattern", choices=MASK_PATTERNS, default="variable-density", help="mri k-t pattern")
    p.add_argument("--center-lines", type=int, default=4, help="mri: always-sampled centre lines (default 4)")
    p.add_argument("--coils", type=int, default=1, help="mri: number of coils (default 1)")
    p.add_argument("--noise", type=float, default=5e-3, help="relative noise std (default 5e-3, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="seed of phantom, schedule and noise (default 0)")
    p.add_argument("--slices", type=int, help="simulate a dynamic volume of this many slices Z")
    p.add_argument("-o", "--output", required=True, help="measurement file to write (.npz or .h5)")
    p.set_defaults(run=_run_simulate)


def _run_simulate(args):
    from .io import save_measurements
    from .simulate import simulate

    measurements = simulate(
        args.phantom,
        frames=args.frames,
        size=args.size,
        modality=args.modality,
        views_per_frame=args.views_per_frame,
        schedule=args.schedule,
        noise=args.noise,
        seed=args.seed,
        lines_per_frame=args.lines_per_frame,
        mask_pattern=args.mask_pattern,
        center_lines=args.center_lines,
        coils=args.coils,
        slices=args.slices,
    )
    save_measurements(args.output, measurements)
    shape = measurements.data.shape
    print(f"wrote {args.output}: {measurements.modality}, {measurements.n_frames} frames, data {shape}")


# -- reconstruct --------------------------------------------------------------------------
def _read_config(path) -> dict:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CommandError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise CommandError(f"config {path} must be a mapping of parameter names to values")
    return config


def _progress_callback(max_iter: int, label: str):
    from tqdm import tqdm

    bar = tqdm(total=max_iter, desc=label, unit="it", disable=not sys.stderr.isatty(), leave=True)

    def callback(info):
        bar.total = info.max_iter
        bar.n = info.iteration
        postfix = {"residual": f"{info.entry.get('data_residual', float('nan')):.3g}"}
        if "psnr" in info.entry:
            postfix["psnr"] = f"{info.entry['psnr']:.2f}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    return bar, callback


def _add_reconstruct(sub):
    p = sub.add_parser("reconstruct", help="reconstruct a measurement file")
    p.add_argument("input", help="measurement file (.npz or .h5)")
    p.add_argument("--method", default="red-psm", help="red-psm (default), psm, fbp-window or td-dip")
    p.add_argument("--config", help="YAML file of method parameters (see `imaging methods NAME`)")
    p.add_argument("--preset", help="named parameter set of the method, e.g. fast or paper")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--max-iter", type=int, help="maximum number of outer iterations")
    p.add_argument("--seed", type=int, help="seed of the run (default: the method's)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one parameter")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if an earlier run left one")
    p.add_argument("--checkpoint-every", type=int, default=10, help="iterations between checkpoints (default 10)")
    p.add_argument("-o", "--output", required=True, help="reconstruction file to write (.npz, or .tif)")
    p.set_defaults(run=_run_reconstruct)


def _parse_overrides(pairs) -> dict:
    import yaml

    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--set expects NAME=VALUE, got {pair!r}")
        overrides[name.strip().replace("-", "_")] = yaml.safe_load(value)
    return overrides


def _run_reconstruct(args):
    from .io import load_measurements, save_reconstruction
    from .solvers import iterate

    output = Path(args.output)
    if output.suffix.lower() not in (".npz", ".tif", ".tiff"):
        raise CommandError(f"output must end in .npz, .tif or .tiff, got {output.name}")
    if not output.parent.is_dir():
        raise CommandError(f"output directory {output.parent} does not exist")
    if args.checkpoint_every < 1:
        raise CommandError("--checkpoint-every must be >= 1")
    params = _read_config(args.config) if args.config else {}
    params.update(_parse_overrides(args.set))
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    if args.seed is not None:
        params["seed"] = args.seed
    measurements = load_measurements(args.input)
    checkpoint = output.with_name(output.name + ".ckpt")
    if measurements.is_volume:
        return _reconstruct_volume(measurements, args, params, checkpoint, output)
    run = iterate(
        measurements,
        args.method,
        device=args.device,
        preset=args.preset,
        checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        **params,
    )
    bar, callback = _progress_callback(params.get("max_iter", 1), args.method)
    try:
        while True:
            callback(next(run))
    except StopIteration as finished:
        result = finished.value
    except KeyboardInterrupt:
        bar.close()
        hint = f"; continue with --resume (checkpoint {checkpoint})" if checkpoint.exists() else ""
        print(f"interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    save_reconstruction(output, result)
    checkpoint.unlink(missing_ok=True)
    last = result.history[-1] if result.history else {}
    summary = f"wrote {output}: {result.method}, {len(result.history)} iterations ({result.stop_reason}), "
    summary += f"{result.elapsed_seconds:.1f} s"
    if "psnr" in last:
        summary += f", PSNR {last['psnr']:.2f} dB vs the file's ground truth"
    print(summary)
    return 0


def _reconstruct_volume(measurements, args, params, checkpoint, output):
    """Slice-by-slice reconstruction of a volume file; writes (P, Z, N, N)."""
    from .io import save_reconstruction
    from .volumes import reconstruct_volume, slice_checkpoint

    bar, callback = _progress_callback(params.get("max_iter", 1), args.method)

    def report(info):
        bar.set_description(f"{args.method} slice {info.slice_index + 1}/{info.n_slices}")
        callback(info)

    try:
        result = reconstruct_volume(
            measurements,
            args.method,
            callback=report,
            checkpoint=checkpoint,
            device=args.device,
            preset=args.preset,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            **params,
        )
    except KeyboardInterrupt:
        print("interrupted; continue with --resume (finished slices are kept in checkpoints)", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    save_reconstruction(output, result)
    for z in range(measurements.n_slices):
        slice_checkpoint(checkpoint, z).unlink(missing_ok=True)
    print(f"wrote {output}: {result.method}, {measurements.n_slices} slices, {result.elapsed_seconds:.1f} s")
    return 0


# -- evaluate -----------------------------------------------------------------------------
def _load_reference(path):
    import numpy as np

    from .io import FileFormatError, load_measurements, load_reconstruction

    try:
        measurements = load_measurements(path)
    except (FileFormatError, ValueError):
        measurements = None
    if measurements is not None:
        if measurements.ground_truth is None:
            raise CommandError(f"{path} is a measurement file without 'ground_truth'; nothing to compare with")
        return measurements.ground_truth
    if str(path).lower().endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
    return load_reconstruction(path).reconstruction


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score reconstructions against a reference (PSNR, SSIM, MAE, HFEN)")
    p.add_argument("reconstructions", nargs="+", help="reconstruction file(s) (.npz)")
    p.add_argument("--reference", required=True, help="measurement file with ground_truth, reconstruction or .npy")
    p.add_argument("--json", help="also write the metrics as JSON to this file")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args):
    from . import metrics
    from .io import load_reconstruction
    from .volumes import evaluate_volume

    reference = _load_reference(args.reference)
    score = evaluate_volume if reference.ndim == 4 else metrics.evaluate
    rows = {}
    for path in args.reconstructions:
        estimate = load_reconstruction(path).reconstruction
        if estimate.shape != reference.shape:
            raise CommandError(f"{path} has shape {estimate.shape} but the reference has {reference.shape}")
        rows[path] = score(estimate, reference)
    print(metrics.format_table(rows))
    if args.json:
        _write_text_atomic(Path(args.json), json.dumps(rows, indent=2) + "\n")
    return 0


def _write_text_atomic(path: Path, text: str) -> None:
    import os
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- train-denoiser -----------------------------------------------------------------------
def _add_train_denoiser(sub):
    p = sub.add_parser(
        "train-denoiser",
        help="train a DnCNN denoiser on static images (or generated static objects)",
        description="Defaults reproduce the shipped data/denoiser/dncnn_default.pt.",
    )
    p.add_argument("-o", "--output", required=True, help="weights file to write (.pt); provenance goes beside it (.json)")
    p.add_argument("--data", nargs="+", help="folders/files of static images (.npy, .tif, .png); default: generated objects")
    p.add_argument("--images", type=int, default=512, help="number of generated objects (default 512)")
    p.add_argument("--size", type=int, default=96, help="side of generated objects (default 96)")
    p.add_argument("--depth", type=int, default=5, help="convolution layers (default 5)")
    p.add_argument("--width", type=int, default=24, help="channels per hidden layer (default 24)")
    p.add_argument("--direct", action="store_true", help="predict the clean image instead of the noise (residual)")
    p.add_argument("--epochs", type=int, default=55, help="training epochs (default 55)")
    p.add_argument("--batch-size", type=int, default=16, help="patches per batch (default 16)")
    p.add_argument("--patch-size", type=int, default=32, help="training patch side (default 32)")
    p.add_argument("--noise-range", type=float, nargs=2, default=(0.0, 0.1), metavar=("LOW", "HIGH"),
                   help="noise std range relative to the image maximum (default 0 0.1)")
    p.add_argument("--clean-fraction", type=float, default=0.05, help="fraction of images left noise-free")
    p.add_argument("--streak-fraction", type=float, default=0.25, help="fraction of noisy images with streak noise")
    p.add_argument("--loss-floor", type=float, default=0.05, help="noise floor of the loss weighting; 0: plain MSE")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default 1e-4)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out validation fraction (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, noise and initialisation (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(run=_run_train_denoiser)


def _run_train_denoiser(args):
    from .denoisers import train_denoiser

    if not args.output.endswith(".pt"):
        raise CommandError(f"--output must end in .pt, got {args.output}")
    provenance = train_denoiser(
        args.output,
        data=args.data,
        n_images=args.images,
        size=args.size,
        depth=args.depth,
        width=args.width,
        residual=not args.direct,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        noise_range=tuple(args.noise_range),
        clean_fraction=args.clean_fraction,
        streak_fraction=args.streak_fraction,
        loss_floor=args.loss_floor or None,
        lr=args.lr,
        weight_decay=args.weight_decay,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        progress=sys.stderr.isatty(),
        command=" ".join(["imaging", *sys.argv[1:]]),
    )
    print(f"wrote {args.output} (sha256 {provenance['sha256'][:12]}...)")
    return 0


# -- methods ------------------------------------------------------------------------------
def _add_methods(sub):
    p = sub.add_parser("methods", help="list reconstruction methods, or one method's parameters")
    p.add_argument("name", nargs="?", help="a method name")
    p.set_defaults(run=_run_methods)


def _run_methods(args):
    from .solvers import METHODS, get_solver

    if args.name is None:
        for name, cls in METHODS.items():
            doc = (cls.__doc__ or "").strip().splitlines()
            print(f"{name:12s} {', '.join(cls.modalities):18s} {doc[0] if doc else ''}")
        return 0
    cls = get_solver(args.name)
    print(f"{cls.name}: parameters (use --set NAME=VALUE or a YAML --config)")
    for item in cls.describe_params():
        print(f"  {item['name']:22s} {item['default']!r:>12}  {item['help']}")
    for preset, values in cls.presets.items():
        print(f"  preset {preset}: {values}")
    return 0


# -- entry point --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imaging",
        description="Dynamic tomography and dynamic MRI reconstruction with RED-PSM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_simulate(sub)
    _add_reconstruct(sub)
    _add_evaluate(sub)
    _add_methods(sub)
    _add_train_denoiser(sub)
    from . import demo

    demo.add_parser(sub)
    from . import batch

    batch.add_parser(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except _user_errors() as exc:
        message = str(exc) if not isinstance(exc, FileNotFoundError) else f"no such file: {exc.filename or exc}"
        print(f"imaging {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
