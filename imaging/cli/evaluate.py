"""``imaging evaluate``: score reconstruction files against a reference."""

from __future__ import annotations

from pathlib import Path

from ..io import write_json_atomic
from ._common import CommandError, refuse_overwriting_inputs


def _npz_keys(path: Path) -> set[str]:
    """The array names of a ``.npz`` file (read from the zip directory only)."""
    import zipfile

    from ..io import FileFormatError

    try:
        with zipfile.ZipFile(path) as archive:
            return {name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")}
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FileFormatError(f"{path} is not a readable .npz file: {exc}") from None


def _load_reference(path):
    """The (P, N, N) or (P, Z, N, N) reference: the ground truth of a measurement file, a
    reconstruction file's image stack, or a ``.npy`` array.

    The kind of file is decided from its extension and, for ``.npz``, from its keys, and
    that kind's reader reports what is wrong with it.
    """
    import numpy as np

    from ..io import HDF5_SUFFIXES, NPZ_SUFFIXES, TIFF_SUFFIXES, load_measurements, load_reconstruction
    from ..io.files import image_stack
    from ..io.safe import load_npy
    from ..results import magnitude_image

    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    if suffix == ".npy":
        return image_stack(path, "reference", load_npy(path, converted=np.dtype(np.float32), what="reference"))
    if suffix in HDF5_SUFFIXES or (suffix in NPZ_SUFFIXES and "modality" in _npz_keys(path)):
        measurements = load_measurements(path)
        if measurements.ground_truth is None:
            raise CommandError(f"{path} is a measurement file without 'ground_truth'; nothing to compare with")
        return measurements.ground_truth
    if suffix in NPZ_SUFFIXES + TIFF_SUFFIXES:
        return magnitude_image(load_reconstruction(path).reconstruction)
    raise CommandError(
        f"reference {path} must be a measurement file ({', '.join(NPZ_SUFFIXES + HDF5_SUFFIXES)}), a reconstruction "
        f"file ({', '.join(NPZ_SUFFIXES + TIFF_SUFFIXES)}) or a .npy array"
    )


def add_parser(sub):
    p = sub.add_parser("evaluate", help="score reconstructions against a reference (PSNR, SSIM, MAE, HFEN)")
    p.add_argument("reconstructions", nargs="+", help="reconstruction file(s) (.npz)")
    p.add_argument("--reference", required=True, help="measurement file with ground_truth, reconstruction or .npy")
    p.add_argument("--json", help="also write the metrics as JSON to this file (not one of the inputs)")
    p.set_defaults(run=run)


def run(args):
    from .. import metrics
    from .._limits import check_memory
    from ..io import load_reconstruction
    from ..results import magnitude_image

    if args.json:
        refuse_overwriting_inputs(args.json, [*args.reconstructions, args.reference])
    reference = _load_reference(args.reference)
    # The metrics compare in float64: about ten reference-sized float64 arrays at the peak.
    check_memory(10 * 8 * reference.size, f"scoring against {args.reference}")
    score = metrics.evaluate_volume if reference.ndim == 4 else metrics.evaluate
    rows = {}
    for path in args.reconstructions:
        # Complex images (MRI) are scored by their magnitude.
        estimate = magnitude_image(load_reconstruction(path).reconstruction)
        if estimate.shape != reference.shape:
            raise CommandError(f"{path} has shape {estimate.shape} but the reference has {reference.shape}")
        rows[path] = score(estimate, reference)
    print(metrics.format_table(rows))
    if args.json:
        write_json_atomic(args.json, rows)
    return 0
