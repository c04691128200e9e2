"""``imaging reconstruct``: a measurement file (one slice or a volume) to a reconstruction file."""

from __future__ import annotations

import dataclasses
import inspect
import os
import sys
from pathlib import Path

from ._common import (
    EXIT_INTERRUPTED,
    CommandError,
    method_parameters,
    progress_callback,
    refuse_overwriting_inputs,
)

#: Longest file name most file systems accept (bytes); a checkpoint name must fit too.
_NAME_MAX = 255
_SLICE_SUFFIX = len(".z0000")


def add_parser(sub):
    from ..operators.coils import ESTIMATORS as COIL_ESTIMATORS

    p = sub.add_parser("reconstruct", help="reconstruct a measurement file")
    p.add_argument("input", help="measurement file (.npz or .h5)")
    p.add_argument("--method", default="red-psm", help="red-psm (default), psm, fbp-window or td-dip")
    p.add_argument("--config", help="YAML file of method parameters (see `imaging methods NAME`)")
    p.add_argument("--preset", help="named parameter set of the method, e.g. fast or paper")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--max-iter", type=int, help="maximum number of outer iterations")
    p.add_argument("--seed", type=int, help="seed of the run (default: the method's)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores other processes leave idle, re-checked between iterations)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one parameter")
    p.add_argument(
        "--coil-maps",
        metavar="FILE",
        help="mri: coil maps to use, from a reconstruction file (its extras/coil_maps) or a measurement file",
    )
    p.add_argument(
        "--coil-estimator",
        choices=COIL_ESTIMATORS,
        default="auto",
        help="mri: how coil maps missing from the file are estimated (default auto: ESPIRiT, or low-resolution "
        "coil images when the sampled k-space centre is too small)",
    )
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt if an earlier run left one")
    p.add_argument("--checkpoint-every", type=int, default=10, help="iterations between checkpoints (default 10)")
    p.add_argument("-o", "--output", required=True, help="reconstruction file to write (.npz, or .tif)")
    p.add_argument("--overwrite-input", action="store_true", help="allow the output to replace the input file")
    p.set_defaults(run=run)


def checkpoint_path(output: Path) -> Path:
    """``OUT.ckpt`` beside the output; for a name so long that the checkpoint (or a volume's
    ``.zNNNN`` slice checkpoints) would exceed the file-name limit, a shortened name made
    unique by a digest of the full one."""
    import hashlib

    name = output.name + ".ckpt"
    if len(os.fsencode(name)) + _SLICE_SUFFIX <= _NAME_MAX:
        return output.with_name(name)
    digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:16]
    stem = output.name
    while len(os.fsencode(stem)) + len(digest) + len("-.ckpt") + _SLICE_SUFFIX > _NAME_MAX:
        stem = stem[:-1]
    return output.with_name(f"{stem}-{digest}.ckpt")


def run(args):
    from ..io import load_coil_maps, load_measurements, open_ground_truth, save_reconstruction
    from ..run import iterate, slice_checkpoint

    output = Path(args.output)
    if output.suffix.lower() not in (".npz", ".tif", ".tiff"):
        raise CommandError(f"output must end in .npz, .tif or .tiff, got {output.name}")
    if not output.parent.is_dir():
        raise CommandError(f"output directory {output.parent} does not exist")
    if args.checkpoint_every < 1:
        raise CommandError("--checkpoint-every must be >= 1")
    if not args.overwrite_input:
        refuse_overwriting_inputs(output, [args.input], flag="--overwrite-input")
    params = method_parameters(args, reserved=inspect.signature(iterate).parameters)
    if args.max_iter is not None:
        params["max_iter"] = args.max_iter
    if args.seed is not None:
        params["seed"] = args.seed
    # The ground truth only scores: read from the file a block of frames at a time rather
    # than held for the run (at N = 512 it was 11 % of a default run's peak memory).
    measurements = load_measurements(args.input, ground_truth=False)
    ground_truth = open_ground_truth(args.input, (measurements.n_frames, *measurements.image_shape))
    if args.coil_maps:
        if measurements.modality != "mri":
            raise CommandError("--coil-maps applies to MRI measurements only")
        measurements = dataclasses.replace(measurements, coil_maps=load_coil_maps(args.coil_maps))
    checkpoint = checkpoint_path(output)
    # A volume checkpoints every slice on its own; a single slice uses the plain name.
    checkpoints = (
        [slice_checkpoint(checkpoint, z) for z in range(measurements.n_slices)] if measurements.is_volume else [checkpoint]
    )
    run = iterate(
        measurements,
        args.method,
        device=args.device,
        preset=args.preset,
        checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        threads=args.threads,
        coil_estimator=args.coil_estimator,
        ground_truth=ground_truth,
        **params,
    )
    bar, callback = progress_callback(params.get("max_iter", 1), args.method)
    try:
        while True:
            info = next(run)
            if info.n_slices > 1:
                bar.set_description(f"{args.method} slice {info.slice_index + 1}/{info.n_slices}")
            callback(info)
    except StopIteration as finished:
        result = finished.value
    except KeyboardInterrupt:
        bar.close()
        kept = any(path.exists() for path in checkpoints)
        print(f"interrupted{'; continue with --resume (checkpoints beside the output)' if kept else ''}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    save_reconstruction(output, result)
    for path in checkpoints:
        path.unlink(missing_ok=True)
    last = result.history[-1] if result.history else {}
    summary = f"wrote {output}: {result.method}, "
    if measurements.is_volume:
        summary += f"{measurements.n_slices} slices, "
    summary += f"{len(result.history)} iterations ({result.stop_reason}), {result.elapsed_seconds:.1f} s"
    if "psnr" in last and not measurements.is_volume:
        summary += f", PSNR {last['psnr']:.2f} dB vs the file's ground truth"
    print(summary)
    return 0
