"""Raw CT acquisition to measurements: the reader of each format, pre-processing, frames, axis.

:func:`import_raw` is what ``imaging import`` (and a napari reader of raw files) calls:
it opens the acquisition with its format's reader (:mod:`imaging.io.dxchange`,
:mod:`imaging.io.nxtomo`, :mod:`imaging.io.tiffstack`), turns the counts into line
integrals with the shared pre-processing of :mod:`imaging.io.raw`, groups the
projections into frames, and states or estimates the rotation-axis offset
(:mod:`imaging.center`).
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from ..measurements import Measurements
from .files import FileFormatError
from .raw import FORMATS, ImportReport, RawAcquisition, RawDataError, group_frames, preprocess


@dataclasses.dataclass
class ImportResult:
    """:func:`import_raw`'s result: the measurements and the report of how they were made."""

    measurements: Measurements
    report: ImportReport


def detect_format(source) -> str:
    """The raw format of ``source``: "tiff" for a folder or TIFF file, else by HDF5 content."""
    path = Path(source)
    if path.is_dir() or path.suffix.lower() in (".tif", ".tiff"):
        return "tiff"
    if not path.is_file():
        raise FileNotFoundError(f"raw acquisition {path} does not exist")
    import h5py

    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path} is neither a TIFF stack nor an HDF5 file (Data Exchange or NXtomo)")
    try:
        with h5py.File(path, "r") as handle:
            if "exchange" in handle:
                return "dxchange"
            for entry in handle.values():
                if isinstance(entry, h5py.Group) and "definition" in entry:
                    definition = entry["definition"][()]
                    if (definition.decode() if isinstance(definition, bytes) else str(definition)) == "NXtomo":
                        return "nxtomo"
    except (OSError, KeyError, RuntimeError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path} is not a readable HDF5 file: {exc}") from None
    raise FileFormatError(f"{path}: no /exchange group (Data Exchange) and no NXtomo entry; give --format")


def open_acquisition(source, format: str | None = None, **options) -> AbstractContextManager[RawAcquisition]:
    """Open a raw acquisition with the reader of its format (see :data:`FORMATS`).

    ``options`` are the reader's (e.g. ``flats``, ``darks``, ``angles``,
    ``angle_unit`` of :func:`imaging.io.tiffstack.open_acquisition`).
    """
    format = detect_format(source) if format is None else format
    if format == "dxchange":
        from .dxchange import open_acquisition as reader
    elif format == "nxtomo":
        from .nxtomo import open_acquisition as reader
    elif format == "tiff":
        from .tiffstack import open_acquisition as reader
    else:
        raise ValueError(f"unknown raw format {format!r}; choose one of: {', '.join(FORMATS)}")
    return reader(source, **options)


def _fan_beam_fields(pixel_size, source_origin, origin_detector, binning: int, n_rows: int) -> dict:
    """Contract keys of a fan beam from physical distances (any one length unit)."""
    if any(v is None for v in (pixel_size, source_origin, origin_detector)):
        raise ValueError("a fan-beam import needs pixel_size, source_origin and origin_detector (one length unit)")
    if n_rows != 1:
        raise ValueError(
            f"a fan-beam import must select one detector row (after binning), got {n_rows}: rows off the central "
            "plane of a cone beam are not fan-beam slices"
        )
    for name, value in (("pixel_size", pixel_size), ("source_origin", source_origin)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive, got {value!r}")
    magnification = (source_origin + origin_detector) / source_origin
    image_pixel = pixel_size * binning / magnification  # one output bin, projected onto the axis
    return {
        "geometry": "fan",
        "detector_spacing": magnification,
        "source_origin": source_origin / image_pixel,
        "origin_detector": origin_detector / image_pixel,
    }


def import_raw(
    source,
    format: str | None = None,
    *,
    rows=None,
    columns=None,
    binning: int = 1,
    ring_filter: int = 0,
    views_per_frame: int = 1,
    frame_time: float | None = None,
    center=None,
    image_size: int | None = None,
    geometry: str = "parallel",
    pixel_size: float | None = None,
    source_origin: float | None = None,
    origin_detector: float | None = None,
    **reader_options,
) -> ImportResult:
    """Read a raw CT acquisition and turn it into measurements (``imaging import``).

    Parameters
    ----------
    source : str or os.PathLike
        A Data Exchange or NXtomo HDF5 file, a multi-page TIFF or a folder of TIFFs.
    format : {"dxchange", "nxtomo", "tiff"}, optional
        Default: detected from the file.
    rows, columns : str "A:B" or pair, optional
        Detector rows (slices) and columns to keep, before binning; default all.
    binning : int
        Pixels averaged per bin along rows and columns.
    ring_filter : int
        Window of the ring (stripe) suppression, 0 (default) for none.
    views_per_frame, frame_time :
        Frames of consecutive projections, or of a duration from the time stamps (see
        :func:`group_frames`).
    center : float, "auto" or None
        The ``center_offset`` to store (bins of the output detector, from its centre),
        or "auto" to estimate it (:func:`imaging.center.estimate_center_offset`).
    image_size : int, optional
        N of the (N, N) reconstruction grid, default the output bins D.
    geometry : {"parallel", "fan"}
        A fan beam needs ``pixel_size`` (of the raw detector), ``source_origin`` and
        ``origin_detector`` in one length unit, and one output row.
    **reader_options
        Passed to the format's reader (TIFF: ``flats``, ``darks``, ``angles``,
        ``angle_unit``; HDF5 formats: ``angle_unit`` to override the file's).

    Returns
    -------
    ImportResult
        ``measurements`` (``sinogram`` (P, V, D), or (P, V, Z, D) for several rows) and
        the ``report``.
    """
    if geometry not in ("parallel", "fan"):
        raise ValueError(f"geometry must be 'parallel' or 'fan', got {geometry!r}")
    format = detect_format(source) if format is None else format
    with open_acquisition(source, format, **reader_options) as acquisition:
        n_projections, n_rows, n_cols = acquisition.projections.shape
        if acquisition.angles.shape != (n_projections,):
            raise RawDataError(f"{acquisition.angles.size} angles for {n_projections} projections in {acquisition.source}")
        report = ImportReport(
            source=acquisition.source,
            format=format,
            detector_shape=(n_rows, n_cols),
            projections=n_projections,
            flats=0 if acquisition.flats is None else acquisition.flats.shape[0],
            darks=0 if acquisition.darks is None else acquisition.darks.shape[0],
            rows=(0, n_rows),
            columns=(0, n_cols),
            binning=binning,
        )
        grouping = group_frames(n_projections, acquisition.timestamps, views_per_frame, frame_time)
        line_integrals = preprocess(acquisition, rows, columns, binning, ring_filter, report)
        angles = np.mod(acquisition.angles, 2 * math.pi)
    n_slices, n_bins = line_integrals.shape[1:]
    frames, views = grouping.frames, grouping.views_per_frame
    sinogram = line_integrals[grouping.order].reshape(frames, views, n_slices, n_bins)
    size = n_bins if image_size is None else int(image_size)
    fields = {"detector_spacing": 1.0}
    if geometry == "fan":
        fields = _fan_beam_fields(pixel_size, source_origin, origin_detector, binning, n_slices)
    volume = n_slices > 1
    measurements = Measurements(
        modality="tomography",
        image_shape=(n_slices, size, size) if volume else (size, size),
        sinogram=np.ascontiguousarray(sinogram if volume else sinogram[:, :, 0]),
        angles=angles[grouping.order].reshape(frames, views),
        **fields,
    )
    report.frames, report.views_per_frame = frames, views
    report.dropped_projections, report.time_ordered = grouping.dropped, grouping.time_ordered
    _set_center(measurements, center, report)
    return ImportResult(measurements, report)


def _set_center(measurements: Measurements, center, report: ImportReport) -> None:
    if center is None:
        return
    if isinstance(center, str):
        if center != "auto":
            raise ValueError(f"center must be a number of bins or 'auto', got {center!r}")
        from ..center import estimate_center_offset

        estimate = estimate_center_offset(measurements)
        measurements.center_offset = estimate.offset
        report.center_method = f"estimated by {estimate.method}"
        report.center_details = estimate.details
    else:
        measurements.center_offset = float(center)
        report.center_method = "given"
    measurements.validate()
    report.center_offset = measurements.center_offset
