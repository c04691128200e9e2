"""``imaging evaluate``: score reconstruction files against a reference."""

from __future__ import annotations

import json

from ..io import write_text_atomic
from ._common import CommandError


def _load_reference(path):
    import numpy as np

    from ..io import FileFormatError, load_measurements, load_reconstruction

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


def add_parser(sub):
    p = sub.add_parser("evaluate", help="score reconstructions against a reference (PSNR, SSIM, MAE, HFEN)")
    p.add_argument("reconstructions", nargs="+", help="reconstruction file(s) (.npz)")
    p.add_argument("--reference", required=True, help="measurement file with ground_truth, reconstruction or .npy")
    p.add_argument("--json", help="also write the metrics as JSON to this file")
    p.set_defaults(run=run)


def run(args):
    from .. import metrics
    from ..io import load_reconstruction

    reference = _load_reference(args.reference)
    score = metrics.evaluate_volume if reference.ndim == 4 else metrics.evaluate
    rows = {}
    for path in args.reconstructions:
        estimate = load_reconstruction(path).reconstruction
        if estimate.shape != reference.shape:
            raise CommandError(f"{path} has shape {estimate.shape} but the reference has {reference.shape}")
        rows[path] = score(estimate, reference)
    print(metrics.format_table(rows))
    if args.json:
        write_text_atomic(args.json, json.dumps(rows, indent=2) + "\n")
    return 0
