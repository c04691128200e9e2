"""Raw CT acquisitions to measurements: the pre-processing every raw reader shares.

A reader (:mod:`imaging.io.dxchange`, :mod:`imaging.io.nxtomo`,
:mod:`imaging.io.tiffstack`) opens a file as a :class:`RawAcquisition`: detector counts
of the projections, flat fields (beam, no sample) and dark fields (no beam), all read
lazily as :class:`Frames`, with the rotation angle of every projection in radians and,
when the file has them, its time stamps. :func:`preprocess` turns it into line
integrals (and :func:`imaging.io.importer.import_raw` into
:class:`imaging.measurements.Measurements`):

1. The flat and dark fields of the selected detector region are averaged over their
   frames (``flat``, ``dark``). ``flat - dark`` must be positive at every pixel.
2. The projections are read in chunks of about :data:`CHUNK_BYTES` (only the selected
   rows and columns), so a file far larger than memory imports within a memory bound of
   a few chunks plus the output. The transmission of each pixel is
   ``T = (counts - dark) / (flat - dark)``.
3. Binning (``binning`` x ``binning`` pixels) averages ``T``; a remainder of rows or
   columns that does not fill a bin is dropped.
4. ``-log T``. A non-positive ``T`` (counts at or below the dark level, which photon
   noise gives in nearly opaque regions) is clipped to half a count above the dark,
   ``T = 0.5 / (flat - dark)``, and *counted*: the report states how many.
5. Optionally, ring artefacts (stripes: detector columns that are consistently too bright
   or too dark) are suppressed per detector row with algotom's sorting-based stripe
   removal (Vo, Atwood, Drakopoulos 2018), which sorts each column over the views and
   so does not depend on the order of the views.

Bad input is refused with one message and nothing written: flats that are not above
the darks at some pixel, more than :data:`MAX_BAD_FRACTION` of the values below the
dark level (darks brighter than the projections) or above 1.5 times the flat level
(counts above the flat: flats of another exposure, or flats and projections swapped),
a number of angles other than of projections, non-finite angles or counts.

Frames: the projections are put in time order (by their time stamps when the file has
them, else in file order) and grouped into frames of ``views_per_frame`` consecutive
projections, or of ``frame_time`` seconds from the time stamps; golden-angle, interlaced
and any other orders of angles need nothing more, since every view keeps its angle.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

from .._limits import check_memory
from .files import FileFormatError

#: Bytes of counts read at once (per chunk of projections, float64 after conversion).
CHUNK_BYTES = 32 * 1024**2

#: Largest fraction of values that may lie below the dark level or far above the flat
#: level (photon noise explains a few; more means the flats or darks do not belong).
MAX_BAD_FRACTION = 0.01

#: Transmission above which a value counts as "above the flat field" for that check.
ABOVE_FLAT = 1.5

FORMATS = ("dxchange", "nxtomo", "tiff")
ANGLE_UNITS = ("degrees", "radians")


class RawDataError(FileFormatError):
    """Raised for a raw acquisition that cannot be turned into line integrals."""


class Frames(Protocol):
    """A lazily read stack of detector frames, (n, rows, cols)."""

    shape: tuple[int, int, int]

    def read(self, start: int, stop: int, rows: slice, cols: slice) -> np.ndarray:
        """Frames ``start:stop`` restricted to ``rows`` x ``cols``, as stored (k, r, c)."""


@dataclasses.dataclass
class ArrayFrames:
    """:class:`Frames` over an array-like (a numpy array or an ``h5py.Dataset``) and frame indices."""

    array: object
    indices: np.ndarray | None = None

    def __post_init__(self):
        n_frames = self.array.shape[0] if self.indices is None else len(self.indices)
        self.shape = (int(n_frames), int(self.array.shape[1]), int(self.array.shape[2]))

    def read(self, start: int, stop: int, rows: slice, cols: slice) -> np.ndarray:
        if self.indices is None:
            return np.asarray(self.array[start:stop, rows, cols])
        picked = self.indices[start:stop]
        if len(picked) and np.all(np.diff(picked) == 1):
            return np.asarray(self.array[int(picked[0]) : int(picked[-1]) + 1, rows, cols])
        return np.asarray(self.array[picked.tolist(), rows, cols])


@dataclasses.dataclass
class RawAcquisition:
    """A raw CT acquisition as a reader found it.

    Attributes
    ----------
    projections, flats, darks : Frames
        Counts (n, rows, cols), (n_flats, rows, cols), (n_darks, rows, cols); ``darks``
        may be None (dark level 0).
    angles : numpy.ndarray
        float64 (n,) rotation angle of each projection, radians (ASTRA convention).
    timestamps : numpy.ndarray or None
        float64 (n,) acquisition time of each projection in seconds, when known.
    source : str
        What was read (for messages).
    """

    projections: Frames
    flats: Frames | None
    darks: Frames | None
    angles: np.ndarray
    timestamps: np.ndarray | None = None
    source: str = ""


@dataclasses.dataclass
class ImportReport:
    """What an import did, for the user (every clipped or dropped value is counted here)."""

    source: str
    format: str
    detector_shape: tuple[int, int]
    projections: int
    flats: int
    darks: int
    rows: tuple[int, int]
    columns: tuple[int, int]
    binning: int
    clipped: int = 0
    values: int = 0
    above_flat: int = 0
    frames: int = 0
    views_per_frame: int = 0
    dropped_projections: int = 0
    time_ordered: bool = False
    ring_filter: int = 0
    center_offset: float = 0.0
    center_method: str = "given"
    center_details: dict = dataclasses.field(default_factory=dict)

    def lines(self) -> list[str]:
        """The report as lines of text."""
        rows, cols = self.detector_shape
        out = [
            f"read {self.source} ({self.format}): {self.projections} projections of {rows} x {cols} pixels, "
            f"{self.flats} flats, {self.darks} darks",
            f"rows {self.rows[0]}:{self.rows[1]}, columns {self.columns[0]}:{self.columns[1]}, binning {self.binning}"
            + (f", ring filter size {self.ring_filter}" if self.ring_filter else ""),
            f"-log: {self.clipped} of {self.values} values at or below the dark level clipped to half a count "
            f"({100.0 * self.clipped / max(self.values, 1):.4g} %); {self.above_flat} above {ABOVE_FLAT:g} x the flat",
            f"frames: {self.frames} of {self.views_per_frame} view(s)"
            + (", in time-stamp order" if self.time_ordered else ", in file order")
            + (f"; {self.dropped_projections} trailing projection(s) dropped" if self.dropped_projections else ""),
        ]
        centre = f"center_offset {self.center_offset:+.3f} bins ({self.center_method})"
        if self.center_details:
            centre += ": " + ", ".join(f"{k} {v:.3g}" for k, v in self.center_details.items())
        return [*out, centre]


# ---------------------------------------------------------------------------------------
# Pre-processing


def _selection(spec, length: int, what: str) -> tuple[int, int]:
    """``(start, stop)`` of a ``"A:B"`` string, a pair, or None (everything)."""
    if spec is None:
        return 0, length
    if isinstance(spec, str):
        first, sep, last = spec.partition(":")
        if not sep:
            raise ValueError(f"{what} must be given as A:B, got {spec!r}")
        try:
            start = int(first) if first.strip() else 0
            stop = int(last) if last.strip() else length
        except ValueError:
            raise ValueError(f"{what} must be given as A:B with integers, got {spec!r}") from None
    else:
        start, stop = (int(v) for v in spec)
    if not 0 <= start < stop <= length:
        raise ValueError(f"{what} {start}:{stop} is outside the detector's {length} {what.split()[0]} (0:{length})")
    return start, stop


def _mean_frames(frames: Frames, rows: slice, cols: slice, what: str) -> np.ndarray:
    """Average of all frames over the selection, float64 (r, c), read in chunks."""
    n_frames = frames.shape[0]
    if n_frames == 0:
        raise RawDataError(f"the acquisition has no {what}")
    region = (rows.stop - rows.start) * (cols.stop - cols.start)
    step = max(1, CHUNK_BYTES // (8 * region))
    total = np.zeros((rows.stop - rows.start, cols.stop - cols.start))
    for start in range(0, n_frames, step):
        total += _checked_counts(frames.read(start, min(n_frames, start + step), rows, cols), what).sum(axis=0)
    return total / n_frames


def _checked_counts(counts, what: str) -> np.ndarray:
    counts = np.asarray(counts)
    if counts.dtype.kind not in "iuf":
        raise RawDataError(f"the {what} hold {counts.dtype} values; expected detector counts (integers or floats)")
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts)):
        raise RawDataError(f"the {what} contain NaN or infinite values")
    return counts


def _bin(array: np.ndarray, binning: int) -> np.ndarray:
    """Mean over ``binning`` x ``binning`` blocks of the last two axes (remainders dropped)."""
    if binning == 1:
        return array
    *lead, rows, cols = array.shape
    rows, cols = rows // binning * binning, cols // binning * binning
    blocks = array[..., :rows, :cols].reshape(*lead, rows // binning, binning, cols // binning, binning)
    return blocks.mean(axis=(-3, -1))


def _first_pixel(mask: np.ndarray, row0: int, col0: int) -> str:
    index = np.argwhere(mask)[0]
    return f"row {row0 + index[-2]}, column {col0 + index[-1]}"


def _suppress_rings(sinogram: np.ndarray, size: int) -> np.ndarray:
    """algotom's sorting-based stripe removal on each detector row's (views, bins) sinogram."""
    try:
        from algotom.prep.removal import remove_stripe_based_sorting
    except ImportError:
        raise RawDataError(
            "ring suppression uses algotom's stripe removal: install it with pip install 'imaging-redpsm[ct]'"
        ) from None
    out = np.empty_like(sinogram)
    for row in range(sinogram.shape[1]):
        out[:, row] = remove_stripe_based_sorting(sinogram[:, row], size=size, dim=1)
    return out


def preprocess(
    acquisition: RawAcquisition,
    rows=None,
    columns=None,
    binning: int = 1,
    ring_filter: int = 0,
    report: ImportReport | None = None,
) -> np.ndarray:
    """Line integrals ``-log T`` of the selected detector region (see the module docstring).

    Parameters
    ----------
    acquisition : RawAcquisition
    rows, columns : str "A:B", pair or None
        Detector rows and columns to keep (default all), before binning.
    binning : int
        Pixels averaged per bin along rows and columns (>= 1).
    ring_filter : int
        Window of algotom's sorting-based stripe removal (odd, >= 3), 0 for none.
    report : ImportReport, optional
        Receives the counts of clipped and out-of-range values.

    Returns
    -------
    numpy.ndarray
        float32 (n, Z, D): per projection (file order), Z binned rows of D binned bins.

    Raises
    ------
    RawDataError
        Bad flats or darks, counts far outside them, non-finite values.
    """
    n_projections, n_rows, n_cols = acquisition.projections.shape
    if isinstance(binning, bool) or int(binning) != binning or binning < 1:
        raise ValueError(f"binning must be a positive integer, got {binning!r}")
    if isinstance(ring_filter, bool) or int(ring_filter) != ring_filter or ring_filter < 0 or ring_filter in (1, 2):
        raise ValueError(f"ring_filter must be 0 (off) or a window of at least 3 bins, got {ring_filter!r}")
    row0, row1 = _selection(rows, n_rows, "rows of the detector")
    col0, col1 = _selection(columns, n_cols, "columns of the detector")
    if (row1 - row0) < binning or (col1 - col0) < binning:
        raise ValueError(f"binning {binning} is larger than the selected {row1 - row0} rows x {col1 - col0} columns")
    rows_slice, cols_slice = slice(row0, row1), slice(col0, col1)
    for name, frames in (("flat fields", acquisition.flats), ("dark fields", acquisition.darks)):
        if frames is not None and frames.shape[1:] != (n_rows, n_cols):
            raise RawDataError(
                f"the {name} are {frames.shape[1]} x {frames.shape[2]} pixels but the projections {n_rows} x {n_cols}"
            )
    if acquisition.flats is None or acquisition.flats.shape[0] == 0:
        raise RawDataError("the acquisition has no flat fields: counts cannot be normalised to transmission")
    flat = _mean_frames(acquisition.flats, rows_slice, cols_slice, "flat fields")
    dark = (
        np.zeros_like(flat)
        if acquisition.darks is None or acquisition.darks.shape[0] == 0
        else _mean_frames(acquisition.darks, rows_slice, cols_slice, "dark fields")
    )
    beam = flat - dark
    if np.any(beam <= 0):
        bad = beam <= 0
        raise RawDataError(
            f"the flat field is not above the dark field at {int(bad.sum())} pixel(s) (first at "
            f"{_first_pixel(bad, row0, col0)}): dead pixels or flats without beam; exclude them with "
            "--rows/--crop or fix the flats"
        )
    floor = 0.5 / beam  # half a count above the dark level
    n_out_rows, n_out_cols = (row1 - row0) // binning, (col1 - col0) // binning
    step = max(1, CHUNK_BYTES // (8 * (row1 - row0) * (col1 - col0)))
    # The output stays in memory (and is copied once into frames); a chunk's float64 work arrays come on top.
    check_memory(
        2 * 4 * n_projections * n_out_rows * n_out_cols + 4 * CHUNK_BYTES,
        f"importing {n_projections} projections of {n_out_rows} x {n_out_cols} bins",
        hint="import fewer rows (--rows A:B) or bin them (--bin B)",
    )
    out = np.empty((n_projections, n_out_rows, n_out_cols), dtype=np.float32)
    below = above = 0
    for start in range(0, n_projections, step):
        stop = min(n_projections, start + step)
        counts = _checked_counts(acquisition.projections.read(start, stop, rows_slice, cols_slice), "projections")
        transmission = (counts - dark) / beam
        below += int(np.count_nonzero(transmission <= 0))
        above += int(np.count_nonzero(transmission > ABOVE_FLAT))
        transmission = np.maximum(transmission, floor)
        out[start:stop] = -np.log(_bin(transmission, binning))
    values = n_projections * (row1 - row0) * (col1 - col0)
    if below > MAX_BAD_FRACTION * values:
        raise RawDataError(
            f"{below} of {values} projection values ({100.0 * below / values:.2g} %) are at or below the dark level: "
            "the dark fields are brighter than the projections (wrong darks, or darks and projections swapped?)"
        )
    if above > MAX_BAD_FRACTION * values:
        raise RawDataError(
            f"{above} of {values} projection values ({100.0 * above / values:.2g} %) are above {ABOVE_FLAT:g} times "
            "the flat field: the flats do not belong to these projections (another exposure, or flats and "
            "projections swapped?)"
        )
    if ring_filter:
        out = _suppress_rings(out, int(ring_filter))
    if report is not None:
        report.rows, report.columns, report.binning, report.ring_filter = (row0, row1), (col0, col1), binning, ring_filter
        report.clipped, report.values, report.above_flat = below, values, above
    return out


# ---------------------------------------------------------------------------------------
# Angles and frames


def angles_to_radians(values, unit: str, stated: bool, what: str) -> np.ndarray:
    """Rotation angles in radians, refusing units that the values contradict.

    Parameters
    ----------
    values : array_like
        (n,) angles in ``unit``.
    unit : {"degrees", "radians"}
    stated : bool
        True when the unit was stated (by the user or a units attribute of the file);
        False when it comes from a format's convention, which values within 2 pi over a
        scan of 8 or more projections contradict (a whole scan within 6.3 degrees is not
        a tomography scan; such values are radians written where degrees belong).
    what : str
        Where the angles come from (for messages).

    Returns
    -------
    numpy.ndarray
        float64 (n,).
    """
    if unit not in ANGLE_UNITS:
        raise ValueError(f"angle unit must be one of {', '.join(ANGLE_UNITS)}, got {unit!r}")
    values = np.asarray(values)
    if values.dtype.kind not in "iuf":
        raise RawDataError(f"{what} must be numbers, got {values.dtype}")
    values = values.astype(np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise RawDataError(f"{what} contain NaN or infinite values")
    if unit == "degrees" and not stated and values.size >= 8 and np.ptp(values) <= 2 * math.pi + 1e-6:
        raise RawDataError(
            f"{what} span only {np.ptp(values):.4g} although the format states degrees: they look like radians; "
            "state the unit with --angle-unit degrees|radians"
        )
    return np.deg2rad(values) if unit == "degrees" else values


@dataclasses.dataclass(frozen=True)
class FrameGrouping:
    """Which projections make which frame: ``order[p * V + v]`` is view v of frame p."""

    order: np.ndarray
    frames: int
    views_per_frame: int
    dropped: int
    time_ordered: bool


def group_frames(n_projections: int, timestamps=None, views_per_frame: int | None = 1, frame_time=None) -> FrameGrouping:
    """Group projections in time order into frames of equally many views.

    Parameters
    ----------
    n_projections : int
    timestamps : array_like, optional
        (n,) seconds; when given, projections are taken in time-stamp order (stable).
    views_per_frame : int
        Consecutive projections per frame; trailing projections that do not fill a
        frame are dropped (and counted).
    frame_time : float, optional
        Instead of ``views_per_frame``: frames of this many seconds from the first time
        stamp (needs ``timestamps``). Every frame must hold as many projections; an
        incomplete last frame is dropped.

    Returns
    -------
    FrameGrouping
    """
    order = np.arange(n_projections)
    time_ordered = timestamps is not None
    if time_ordered:
        timestamps = np.asarray(timestamps, dtype=np.float64).ravel()
        if timestamps.shape != (n_projections,):
            raise RawDataError(f"{timestamps.size} time stamps for {n_projections} projections")
        if not np.all(np.isfinite(timestamps)):
            raise RawDataError("the time stamps contain NaN or infinite values")
        order = np.argsort(timestamps, kind="stable")
    if frame_time is not None:
        if not time_ordered:
            raise ValueError("frames of a duration (frame_time) need time stamps, and this acquisition has none")
        frame_time = float(frame_time)
        if not (math.isfinite(frame_time) and frame_time > 0):
            raise ValueError(f"frame_time must be a positive number of seconds, got {frame_time!r}")
        ordered = timestamps[order]
        frame_ids = np.floor((ordered - ordered[0]) / frame_time).astype(np.int64)
        counts = np.bincount(frame_ids)
        full = counts[:-1] if len(counts) > 1 and counts[-1] < counts[0] else counts
        if np.any(full != full[0]) or full[0] == 0:
            raise RawDataError(
                f"frames of {frame_time:g} s hold different numbers of projections ({', '.join(map(str, np.unique(full)))}); "
                "choose a frame time that the acquisition rate divides, or --views-per-frame"
            )
        views_per_frame = int(full[0])
    if isinstance(views_per_frame, bool) or int(views_per_frame) != views_per_frame or views_per_frame < 1:
        raise ValueError(f"views_per_frame must be a positive integer, got {views_per_frame!r}")
    views_per_frame = int(views_per_frame)
    frames = n_projections // views_per_frame
    if frames == 0:
        raise RawDataError(f"{n_projections} projection(s) cannot fill one frame of {views_per_frame} views")
    used = frames * views_per_frame
    return FrameGrouping(order[:used], frames, views_per_frame, n_projections - used, time_ordered)
