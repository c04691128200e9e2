"""Reading untrusted files without letting them decide how much memory is allocated.

A file is small on disk and may still declare, or decompress to, gigabytes: a deflated
``.npy`` member of zeros, an HDF5 dataset that was never written and only has a fill
value, a zlib-compressed TIFF, a PNG of 20000 x 20000 pixels, a deflated PyTorch
archive. Every reader here therefore learns the size of what it is about to allocate
from the file's headers first (the declared shape times the item size, the declared
uncompressed size of archive members), counts each array also at the dtype it will be
converted to (an int8 sinogram becomes float32: 5 bytes per element at the peak), and
refuses the file with one :class:`FileFormatError` line when the total exceeds the read
limit: the memory available to the process (:func:`imaging._limits.available_memory`),
at most ``max_bytes``.

The functions raise :class:`FileFormatError` (a ``ValueError``) for anything a file can
do wrong, never the exception of the library underneath, so callers report one line.
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._limits import available_memory, format_size

#: Largest total array size (bytes) a file may declare, whatever the memory available (8 GiB).
DEFAULT_MAX_BYTES = 8 * 1024**3

#: Largest text entry (bytes as stored): a modality name, JSON parameters or history.
MAX_TEXT_BYTES = 64 * 2**20

#: Zip compression methods a file may use (NumPy writes stored or deflated members,
#: PyTorch stored ones); others are refused before anything is decompressed.
_ZIP_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

_PICKLE_MESSAGE = "file carries pickled Python objects; refusing to load"


class FileFormatError(ValueError):
    """Raised for a file that is not a readable measurement, reconstruction or data file."""


def read_limit(max_bytes: int | None = None) -> tuple[int, str]:
    """The byte limit of one file read and a phrase that names it.

    Parameters
    ----------
    max_bytes : int, optional
        An explicit cap (default :data:`DEFAULT_MAX_BYTES`); the memory available to the
        process lowers it further.
    """
    cap = DEFAULT_MAX_BYTES if max_bytes is None else int(max_bytes)
    available = available_memory()
    if available < cap:
        return available, f"the {format_size(available)} of memory available"
    return cap, f"the limit of {cap} bytes"


class SizeBudget:
    """Refuses arrays whose declared size would exceed the read limit, one by one and in total.

    Parameters
    ----------
    path : pathlib.Path
        The file (named in messages).
    max_bytes : int, optional
        See :func:`read_limit`.
    """

    def __init__(self, path: Path, max_bytes: int | None = None):
        self.path = path
        self.max_bytes, self.limit_phrase = read_limit(max_bytes)
        self.total = 0

    def claim(self, name: str, shape: tuple[int, ...], dtype: np.dtype, converted: np.dtype | None = None) -> None:
        """Count an array of ``shape`` stored as ``dtype`` and then converted to ``converted``.

        Text (``S``/``U``) is counted also as the NumPy unicode array it becomes (4 bytes
        a character) and may hold at most :data:`MAX_TEXT_BYTES`.
        """
        count = math.prod(int(s) for s in shape)
        size = count * dtype.itemsize
        if dtype.kind in "SU":
            if size > MAX_TEXT_BYTES:
                raise FileFormatError(
                    f"{self.path}: text {name!r} declares {size} bytes; at most {MAX_TEXT_BYTES} are accepted"
                )
            converted = np.dtype(f"U{max(1, dtype.itemsize)}") if dtype.kind == "S" else None
        if converted is not None and np.dtype(converted) != dtype:
            size += count * np.dtype(converted).itemsize
        self.total += size
        if size > self.max_bytes or self.total > self.max_bytes:
            raise FileFormatError(
                f"{self.path}: array {name!r} declares shape {tuple(int(s) for s in shape)} of {dtype} "
                f"({format_size(size)} once read), which takes the file over {self.limit_phrase}"
            )

    def claim_bytes(self, name: str, size: int) -> None:
        """Count ``size`` bytes of something that is not an array (an archive member)."""
        self.total += int(size)
        if self.total > self.max_bytes:
            raise FileFormatError(
                f"{self.path}: {name!r} unpacks to {format_size(size)}, which takes the file over {self.limit_phrase}"
            )


def check_dtype(path: Path, name: str, dtype: np.dtype) -> None:
    """Refuse object (pickled) and structured dtypes."""
    if dtype.hasobject:
        raise FileFormatError(f"{path}: array {name!r}: {_PICKLE_MESSAGE}")
    if dtype.kind not in "biufcSU":
        raise FileFormatError(f"{path}: array {name!r} has unsupported dtype {dtype} (structured or raw data)")


def read_npy_header(handle) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of an open ``.npy`` stream.

    Raises ``ValueError`` for any damaged header (NumPy's parser of the header text can
    also raise ``SyntaxError``, ``tokenize.TokenError``, ``RecursionError``...).
    """
    version = np.lib.format.read_magic(handle)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"unsupported .npy format version {version}")
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        return reader(handle)
    except Exception as exc:  # noqa: BLE001 - the header is untrusted text
        raise ValueError(f"damaged .npy header ({first_line(exc)})") from None


def check_zip_member(path: Path, info: zipfile.ZipInfo) -> None:
    """Refuse an encrypted member or one compressed with a method other than stored/deflate."""
    if info.flag_bits & 0x1:
        raise FileFormatError(f"{path}: member {info.filename!r} is encrypted")
    if info.compress_type not in _ZIP_METHODS:
        raise FileFormatError(
            f"{path}: member {info.filename!r} uses zip compression method {info.compress_type}; "
            "only stored and deflated members are read"
        )


def read_npy_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, budget: SizeBudget,
                    converted: np.dtype | None = None) -> np.ndarray:
    """Read one ``.npy`` member of a zip archive after checking its header against ``budget``."""
    check_zip_member(path, info)
    with archive.open(info) as handle:
        shape, _, dtype = read_npy_header(handle)
        check_dtype(path, name, dtype)
        budget.claim(name, shape, dtype, converted)
        declared = math.prod(shape) * dtype.itemsize
        if info.file_size < declared:
            raise FileFormatError(
                f"{path}: member {info.filename!r} holds {info.file_size} bytes but declares an array of {declared}"
            )
        handle.seek(0)
        return np.lib.format.read_array(handle, allow_pickle=False)


#: What reading a damaged file can raise in the libraries underneath (zip, zlib, NumPy).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError, RuntimeError,
                NotImplementedError, MemoryError, OverflowError, UnicodeDecodeError)


def load_npy(path, *, converted: np.dtype | None = None, max_bytes: int | None = None,
             what: str = "array file") -> np.ndarray:
    """Read a ``.npy`` file after checking its declared size (never unpickles).

    Parameters
    ----------
    path : str or os.PathLike
    converted : numpy.dtype, optional
        The dtype the caller converts the array to (counted as well).
    max_bytes : int, optional
        See :func:`read_limit`.
    what : str
        Names the file in messages.

    Returns
    -------
    numpy.ndarray
    """
    path = Path(path)
    budget = SizeBudget(path, max_bytes)
    try:
        with open(path, "rb") as handle:
            shape, _, dtype = read_npy_header(handle)
            check_dtype(path, "array", dtype)
            budget.claim("array", shape, dtype, converted)
            declared = math.prod(shape) * dtype.itemsize
            if path.stat().st_size - handle.tell() < declared:
                raise FileFormatError(f"{path}: the {what} is truncated (it declares {declared} bytes of data)")
            handle.seek(0)
            return np.lib.format.read_array(handle, allow_pickle=False)
    except FileFormatError:
        raise
    except _READ_ERRORS as exc:
        raise FileFormatError(f"{path} is not a readable .npy {what}: {first_line(exc)}") from None


def read_tiff(path: Path, name: str, budget: SizeBudget, converted: np.dtype | None = None) -> tuple[np.ndarray, dict]:
    """The first image series of a TIFF file (declared size checked first) and its ImageJ metadata.

    Returns
    -------
    array : numpy.ndarray
        As stored (2D, or a stack).
    imagej_metadata : dict
        Empty for a TIFF that is not an ImageJ hyperstack.
    """
    import logging

    import tifffile

    # tifffile reports damaged tags on its logger (several lines, sometimes a traceback);
    # the error raised below, or the image read, says what matters.
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with tifffile.TiffFile(path) as handle:
            if not handle.series:
                raise FileFormatError(f"{path}: the TIFF file holds no image")
            series = handle.series[0]
            dtype = np.dtype(series.dtype)
            check_dtype(path, name, dtype)
            budget.claim(name, series.shape, dtype, converted)
            return series.asarray(), dict(handle.imagej_metadata or {})
    except FileFormatError:
        raise
    except (tifffile.TiffFileError, *_READ_ERRORS) as exc:
        raise FileFormatError(f"{path} is not a readable TIFF file: {first_line(exc)}") from None
    finally:
        logger.setLevel(level)


def read_png(path: Path, budget: SizeBudget, converted: np.dtype | None = None) -> np.ndarray:
    """A PNG (or other Pillow-readable) image as (H, W) or (H, W, bands), size checked before decoding."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            bands = len(image.getbands())
            # Pillow's modes: "I;16*" 2 bytes, "I"/"F" 4 bytes per band, the others 1.
            itemsize = 2 if image.mode.startswith("I;16") else 4 if image.mode in ("I", "F") else 1
            budget.claim("image", (height, width, bands), np.dtype(f"u{itemsize}"), converted)
            return np.asarray(image)
    except FileFormatError:
        raise
    except (Image.DecompressionBombError, SyntaxError, *_READ_ERRORS) as exc:
        raise FileFormatError(f"{path} is not a readable image: {first_line(exc)}") from None


def load_torch_file(path, *, what: str, max_bytes: int | None = None):
    """``torch.load(path, weights_only=True)`` of an untrusted file, its unpacked size checked first.

    A PyTorch file is a zip archive: its members' declared uncompressed sizes are summed
    against the read limit and encrypted or oddly compressed members are refused before
    PyTorch reads anything; ``weights_only`` rebuilds only tensors and plain containers,
    so the file cannot run code.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        Names the file in messages ("checkpoint", "denoiser weights file").
    max_bytes : int, optional
        See :func:`read_limit`.

    Returns
    -------
    object
        What the file holds (dicts, lists, tensors, numbers, strings).
    """
    import torch

    path = Path(path)
    budget = SizeBudget(path, max_bytes)
    try:
        if not zipfile.is_zipfile(path):
            raise FileFormatError(f"{path} is not a {what} (not a PyTorch zip archive)")
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                check_zip_member(path, info)
                budget.claim_bytes(info.filename, info.file_size)
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileFormatError:
        raise
    except pickle.UnpicklingError as exc:
        # torch's message spans many lines and suggests loading the file unsafely; keep the reason.
        reasons = [line.split("error:", 1)[1] for line in str(exc).splitlines() if "WeightsUnpickler error:" in line]
        reason = _plain(reasons[0] if reasons else first_line(exc))
        raise FileFormatError(
            f"{path} is not a {what}: it holds pickled objects other than tensors, which tensors-only "
            f"loading refuses ({reason})"
        ) from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged or hostile file
        reason = _plain(first_line(exc))
        raise FileFormatError(f"{path} is not a readable {what} (corrupt or truncated): {reason}") from None


def _plain(text: str) -> str:
    """``text`` without terminal escape sequences, stripped."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name if it has none)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__
