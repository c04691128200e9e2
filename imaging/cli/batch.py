"""``imaging batch``: many measurement files and volume slices on Dask workers."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from ..run.batch import EXIT_ITEM_FAILED, SUMMARY_NAME
from ._common import CommandError, parse_overrides, read_config


def add_parser(sub) -> None:
    """Add ``imaging batch`` to the sub-command parsers ``sub``."""
    p = sub.add_parser(
        "batch",
        help="reconstruct many files and the slices of volumes on Dask workers",
        description=(
            "Reconstruct many measurement files (and every slice of volume files) on a local Dask "
            "cluster or an existing one. Finished outputs are skipped when the batch is run again. "
            f"Exit status: 0 all items ok or skipped, {EXIT_ITEM_FAILED} some item failed, 2 bad "
            "command-line input."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="measurement file, folder, glob pattern, or manifest (.txt one path per line, .yaml list)")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (<input name>.npz each)")
    p.add_argument("--method", default="red-psm", help="red-psm (default), psm, fbp-window or td-dip")
    p.add_argument("--preset", help="named parameter set of the method, e.g. fast or paper")
    p.add_argument("--config", metavar="YAML", help="YAML file of method parameters")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override one parameter")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--workers", type=int, metavar="W",
                   help="local cluster: worker processes (default: cores, at most one per task)")
    p.add_argument("--threads-per-worker", type=int, metavar="T",
                   help="local cluster: tasks per worker at once (default 1)")
    p.add_argument("--memory-limit", metavar="SIZE",
                   help="local cluster: memory per worker, e.g. 4GiB (default: total / workers)")
    p.add_argument("--torch-threads", type=int, metavar="K",
                   help="PyTorch threads per task (default: cores / tasks running at once)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="use a running Dask scheduler, e.g. tcp://10.0.0.5:8786 (see the security note in the docs)")
    p.add_argument("--dashboard", action="store_true", help="local cluster: serve the Dask dashboard on 127.0.0.1:8787")
    p.add_argument("--allow-output-in-input-folder", action="store_true",
                   help="write into OUTDIR even when it holds input files (an output then replaces an input "
                        ".npz of the same name); refused without this flag")
    p.set_defaults(run=run)


def run(args) -> int:
    """Run ``imaging batch``; returns the exit status (0, or 1 when an item failed)."""
    from ..run.batch import BatchError, format_summary, reconstruct_many

    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CommandError("imaging batch needs Dask: pip install 'dask[distributed]'") from None
    params = read_config(args.config) if args.config else {}
    params.update(parse_overrides(args.set))
    reserved = sorted(set(params) & set(inspect.signature(reconstruct_many).parameters))
    if reserved:
        raise CommandError(f"{', '.join(reserved)} cannot be set as method parameters")
    try:
        rows = reconstruct_many(
            args.inputs,
            args.method,
            output_dir=args.output,
            scheduler=args.scheduler,
            n_workers=args.workers,
            threads_per_worker=args.threads_per_worker,
            memory_limit=args.memory_limit,
            preset=args.preset,
            device=args.device,
            progress=sys.stderr.isatty(),
            dashboard=args.dashboard,
            torch_threads=args.torch_threads,
            allow_output_in_input_folder=args.allow_output_in_input_folder,
            **params,
        )
    except BatchError as exc:
        raise CommandError(str(exc)) from None
    print(format_summary(rows))
    print(f"summary: {Path(args.output) / SUMMARY_NAME}")
    return EXIT_ITEM_FAILED if any(row["status"] == "failed" for row in rows) else 0
