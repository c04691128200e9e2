"""TIFF-stack raw acquisitions: projections, flats and darks as TIFF images, angles in a text file.

Each of projections, flats and darks is either a folder of single-image TIFF files
(taken in natural name order: ``proj_2.tif`` before ``proj_10.tif``) or one multi-page
TIFF file (one page per frame). The angles file is text with one line per projection,
``ANGLE`` or ``ANGLE TIMESTAMP`` (seconds), ``#`` starting a comment; its unit must be
stated (``angle_unit``), since a column of numbers does not tell degrees from radians.
Images are read one at a time (:mod:`imaging.io.raw`).
"""

from __future__ import annotations

import re
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .files import FileFormatError
from .raw import ANGLE_UNITS, RawAcquisition, RawDataError, angles_to_radians

TIFF_SUFFIXES = (".tif", ".tiff")


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


class TiffFrames:
    """:class:`imaging.io.raw.Frames` over a folder of TIFF files or the pages of one TIFF file."""

    def __init__(self, source, what: str, stack: ExitStack):
        import tifffile

        source = Path(source)
        self.what = what
        try:
            if source.is_dir():
                self.files = sorted((p for p in source.iterdir() if p.suffix.lower() in TIFF_SUFFIXES), key=_natural_key)
                if not self.files:
                    raise RawDataError(f"the {what} folder {source} holds no .tif/.tiff files")
                self.pages = None
                first = tifffile.TiffFile(self.files[0])
                with first:
                    page_shape, dtype, n_frames = first.pages[0].shape, first.pages[0].dtype, len(self.files)
            elif source.is_file():
                handle = stack.enter_context(tifffile.TiffFile(source))
                self.files, self.pages = [source], handle.pages
                page_shape, dtype, n_frames = handle.pages[0].shape, handle.pages[0].dtype, len(handle.pages)
            else:
                raise FileNotFoundError(f"{what} {source} does not exist")
        except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise FileFormatError(f"{source} is not a readable TIFF {what} stack: {exc}") from None
        if len(page_shape) != 2:
            raise RawDataError(f"the {what} in {source} are not single-channel 2D images (page shape {page_shape})")
        if np.dtype(dtype).kind not in "iuf":
            raise RawDataError(f"the {what} in {source} hold {dtype} values; expected detector counts")
        self.source = source
        self.shape = (int(n_frames), int(page_shape[0]), int(page_shape[1]))

    def read(self, start: int, stop: int, rows: slice, cols: slice) -> np.ndarray:
        import tifffile

        images = []
        for index in range(start, stop):
            try:
                image = self.pages[index].asarray() if self.pages is not None else tifffile.imread(self.files[index])
            except (tifffile.TiffFileError, OSError, ValueError, IndexError) as exc:
                name = self.files[0] if self.pages is not None else self.files[index]
                raise FileFormatError(f"{name}: cannot read {self.what} image {index}: {exc}") from None
            if image.shape != self.shape[1:]:
                raise RawDataError(f"{self.what} image {index} of {self.source} is {image.shape}, not {self.shape[1:]}")
            images.append(image[rows, cols])
        return np.stack(images)


def read_angles_file(path, angle_unit: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Angles (radians) and optional time stamps (seconds) from a text file (see the module docstring)."""
    path = Path(path)
    if angle_unit is None:
        raise RawDataError(
            f"the unit of the angles in {path} is ambiguous: state it with --angle-unit {' or '.join(ANGLE_UNITS)}"
        )
    try:
        table = np.loadtxt(path, comments="#", ndmin=2, dtype=np.float64)
    except FileNotFoundError:
        raise FileNotFoundError(f"angles file {path} does not exist") from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise RawDataError(f"{path} is not a text file of numbers (ANGLE [TIMESTAMP] per line): {exc}") from None
    if table.shape[1] not in (1, 2) or table.shape[0] == 0:
        raise RawDataError(f"{path} must hold one or two columns (ANGLE [TIMESTAMP]), got {table.shape[1]} per line")
    angles = angles_to_radians(table[:, 0], angle_unit, True, f"angles in {path}")
    return angles, (table[:, 1].copy() if table.shape[1] == 2 else None)


@contextmanager
def open_acquisition(source, flats=None, darks=None, angles=None, angle_unit: str | None = None):
    """Open a TIFF-stack acquisition as a :class:`imaging.io.raw.RawAcquisition`.

    Parameters
    ----------
    source : str or os.PathLike
        The projections: a folder of TIFFs or a multi-page TIFF.
    flats, darks : str or os.PathLike
        Flat and (optional) dark fields, in the same forms.
    angles : str or os.PathLike
        The angles file (one line per projection: ``ANGLE [TIMESTAMP]``).
    angle_unit : {"degrees", "radians"}
        Required: the unit of the angles.
    """
    if flats is None:
        raise RawDataError("a TIFF stack needs its flat fields (--flats FOLDER or FILE)")
    if angles is None:
        raise RawDataError("a TIFF stack needs an angles file (--angles FILE, one line per projection)")
    angle_values, timestamps = read_angles_file(angles, angle_unit)
    with ExitStack() as stack:
        projections = TiffFrames(source, "projections", stack)
        acquisition = RawAcquisition(
            projections,
            TiffFrames(flats, "flat fields", stack),
            None if darks is None else TiffFrames(darks, "dark fields", stack),
            angle_values,
            timestamps,
            str(source),
        )
        if angle_values.size != projections.shape[0]:
            raise RawDataError(f"{angles} holds {angle_values.size} angles for {projections.shape[0]} projections in {source}")
        yield acquisition


def write_tiff_stack(path, images) -> Path:
    """Write (n, rows, cols) images as one multi-page TIFF (atomically)."""
    import tifffile

    return write_atomic(path, lambda temporary: tifffile.imwrite(temporary, np.asarray(images), photometric="minisblack"))
