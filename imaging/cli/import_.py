"""``imaging import``: a raw acquisition to a measurement file.

CT: counts, flats, darks and angles (Data Exchange, NXtomo, TIFF stack). MRI: k-space
(ISMRMRD, fastMRI-style HDF5), read by :mod:`imaging.io.mri_raw`.
"""

from __future__ import annotations


#: The CT options and their defaults: an MRI import refuses any that is set.
_CT_DEFAULTS = {
    "center": None, "views_per_frame": 1, "frame_time": None, "rows": None, "crop": None, "binning": 1,
    "ring_filter": 0, "size": None, "angle_unit": None, "flats": None, "darks": None, "angles": None, "entry": None,
    "geometry": "parallel", "pixel_size": None, "source_origin": None, "origin_detector": None,
}


def add_parser(sub):
    from ..io.mri_raw import MRI_FORMATS
    from ..io.raw import ANGLE_UNITS, FORMATS

    p = sub.add_parser(
        "import",
        help="convert a raw acquisition (CT: Data Exchange, NXtomo, TIFF stack; MRI: ISMRMRD, fastMRI-style HDF5) "
        "into a measurement file",
        description=(
            "Flat/dark correction with averaged flats and darks, -log (values at or below the dark level are "
            "clipped and counted), optional ring suppression, row selection, cropping and binning, streamed in "
            "chunks; projections grouped into frames; the rotation-axis offset given or estimated."
        ),
    )
    p.add_argument("source", help="raw acquisition: .h5/.nx file, multi-page .tif, or a folder of .tif files")
    p.add_argument("-o", "--output", required=True, help="measurement file to write (.npz or .h5)")
    p.add_argument("--format", choices=FORMATS + MRI_FORMATS, help="raw format (default: detected)")
    p.add_argument(
        "--frames-from",
        choices=("auto", "repetition", "phase"),
        default="auto",
        help="ISMRMRD: the counter that numbers the frames (default: the one that varies)",
    )
    p.add_argument(
        "--center",
        default=None,
        help="'auto' to estimate the rotation-axis offset, or the offset in output detector bins from the "
        "detector centre (after --crop and --bin); default 0",
    )
    p.add_argument("--views-per-frame", type=int, default=1, help="consecutive projections per frame (default 1)")
    p.add_argument("--frame-time", type=float, help="frames of this many seconds, from the time stamps")
    p.add_argument("--rows", help="detector rows A:B to import (slices; default all)")
    p.add_argument("--crop", help="detector columns A:B to keep (default all)")
    p.add_argument("--bin", type=int, default=1, dest="binning", help="average B x B pixels per bin (default 1)")
    p.add_argument("--ring-filter", type=int, default=0, help="ring suppression window in bins (algotom; 0 = off)")
    p.add_argument("--size", type=int, help="reconstruction grid N (default: the output detector bins)")
    p.add_argument("--angle-unit", choices=ANGLE_UNITS, help="unit of the angles (required for a TIFF stack)")
    p.add_argument("--flats", help="TIFF stack: flat fields (folder or multi-page file)")
    p.add_argument("--darks", help="TIFF stack: dark fields (folder or multi-page file)")
    p.add_argument("--angles", help="TIFF stack: text file with ANGLE [TIMESTAMP] per projection")
    p.add_argument("--entry", help="NXtomo: the entry to read (default: the only one)")
    p.add_argument("--geometry", choices=("parallel", "fan"), default="parallel", help="beam geometry")
    p.add_argument("--pixel-size", type=float, help="fan beam: detector pixel size (same unit as the distances)")
    p.add_argument("--source-origin", type=float, help="fan beam: source-to-axis distance")
    p.add_argument("--origin-detector", type=float, help="fan beam: axis-to-detector distance")
    p.set_defaults(run=run)


def _center(text):
    from ._common import CommandError

    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise CommandError(f"--center must be 'auto' or a number of detector bins, got {text!r}") from None


def _reader_options(args, format: str) -> dict:
    """The options of the format's reader; options of other formats are an error."""
    from ._common import CommandError

    options = {"angle_unit": args.angle_unit}
    tiff_options = {"flats": args.flats, "darks": args.darks, "angles": args.angles}
    if format == "tiff":
        options.update(tiff_options)
    elif any(value is not None for value in tiff_options.values()):
        raise CommandError(f"--flats, --darks and --angles describe a TIFF stack, not a {format} file")
    if args.entry is not None:
        if format != "nxtomo":
            raise CommandError(f"--entry names an NXtomo entry; {args.source} is a {format} acquisition")
        options["entry"] = args.entry
    return options


def _import_mri(args, format: str) -> int:
    from ..io import save_measurements
    from ..io.mri_raw import read_mri_raw
    from ._common import CommandError

    given = [name for name, default in _CT_DEFAULTS.items() if getattr(args, name) != default]
    if given:
        options = ", ".join("--bin" if name == "binning" else "--" + name.replace("_", "-") for name in given)
        raise CommandError(f"{options} describe(s) a CT import, not a {format} MRI file")
    measurements = read_mri_raw(args.source, format, frames=args.frames_from)
    save_measurements(args.output, measurements)
    coils = "no coil maps (estimated when reconstructing)" if measurements.coil_maps is None else "coil maps"
    print(
        f"wrote {args.output}: mri, {measurements.n_frames} frames, kspace {measurements.kspace.shape}, "
        f"{measurements.mask.mean():.3f} of k-space sampled, {coils}"
    )
    return 0


def run(args):
    from ..io import save_measurements
    from ..io.importer import detect_format, import_raw
    from ..io.mri_raw import MRI_FORMATS, detect_mri_format
    from ._common import CommandError

    format = args.format or detect_mri_format(args.source)
    if format in MRI_FORMATS:
        return _import_mri(args, format)
    if args.frames_from != "auto":
        raise CommandError("--frames-from applies to ISMRMRD files")
    format = format or detect_format(args.source)
    result = import_raw(
        args.source,
        format,
        rows=args.rows,
        columns=args.crop,
        binning=args.binning,
        ring_filter=args.ring_filter,
        views_per_frame=None if args.frame_time else args.views_per_frame,
        frame_time=args.frame_time,
        center=_center(args.center),
        image_size=args.size,
        geometry=args.geometry,
        pixel_size=args.pixel_size,
        source_origin=args.source_origin,
        origin_detector=args.origin_detector,
        **_reader_options(args, format),
    )
    save_measurements(args.output, result.measurements)
    for line in result.report.lines():
        print(line)
    print(f"wrote {args.output}: sinogram {result.measurements.sinogram.shape}")
