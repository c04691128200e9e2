"""A measurement file's ground truth, read from the file a block of frames at a time.

The runner scores every iteration against the ground truth. Loaded, the float32
(P, N, N) stack stays in memory for the whole run: at N = 512, P = 256 it is 11 % of a
default red-psm run's peak (``benchmarks/results/scale-512.md``).
:func:`open_ground_truth` checks it once, block by block, and returns a
:class:`StoredFrames`, which reads the frames it is asked for from the file each time: the
memory is one block of frames, the cost a read from the operating system's file cache.
``imaging reconstruct`` scores this way (``iterate(..., ground_truth=...)``).
"""

from __future__ import annotations

import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..measurements import MeasurementError
from .files import HDF5_SUFFIXES, NPZ_SUFFIXES, _check_h5_storage, _h5_dataset, _read_arrays, _Keys, _suffix
from .safe import _READ_ERRORS, FileFormatError, check_dtype, check_zip_member, first_line, read_npy_header

#: Bytes (as float32) per read when the ground truth is checked: 16 frames of 512^2, as
#: the runner scores; a volume's rows hold Z frames each, so fewer rows per read.
CHECK_BLOCK_BYTES = 16 * 2**20

_NAME = "ground_truth"
#: The fixed part of a zip local file header; its name and extra-field lengths sit at 26 and 28.
_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"


class StoredFrames:
    """A stack of frames kept in a file; indexing the first axis reads those frames.

    Array-like only as far as scoring needs: ``shape``, ``ndim``, ``dtype`` (float32,
    whatever the file stores) and ``stack[i]``, ``stack[start:stop]`` (step 1) or
    ``stack[[i, j, ...]]``, each returning a float32 :class:`numpy.ndarray`. The file stays
    open until :meth:`close` (or the object is collected), so a file replaced on disk
    during a run is not mixed in.

    Made by :func:`open_ground_truth`; :meth:`volume_slice` gives the (P, N, N) frames of
    one slice of a (P, Z, N, N) volume.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, path: Path, handle, stored_shape: tuple[int, ...], stored_dtype: np.dtype,
                 data_offset: int | None, z: int | None = None):
        self.path = path
        # A binary file positioned anywhere (data at data_offset) or an open h5py dataset.
        self._handle = handle
        self._stored_shape = stored_shape
        self._stored_dtype = stored_dtype
        self._data_offset = data_offset
        self._z = z

    @property
    def shape(self) -> tuple[int, ...]:
        if self._z is None:
            return self._stored_shape
        return (self._stored_shape[0], *self._stored_shape[2:])

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def volume_slice(self, z: int) -> StoredFrames:
        """The frames of slice ``z`` of a (P, Z, N, N) volume, (P, N, N) (same open file)."""
        if self._z is not None or len(self._stored_shape) != 4:
            raise ValueError(f"volume_slice needs a (P, Z, N, N) stack, this one is {self.shape}")
        if not 0 <= z < self._stored_shape[1]:
            raise IndexError(f"slice {z} is out of range for {self._stored_shape[1]} slices")
        return StoredFrames(self.path, self._handle, self._stored_shape, self._stored_dtype, self._data_offset, z)

    def __getitem__(self, key) -> np.ndarray:
        frames = self.shape[0]
        if isinstance(key, (int, np.integer)):
            index = int(key) + frames if key < 0 else int(key)
            if not 0 <= index < frames:
                raise IndexError(f"frame {key} is out of range for {frames} frames")
            return self._read(index, index + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(frames)
            if step != 1:
                raise IndexError("StoredFrames reads slices of step 1 only")
            return self._read(start, max(start, stop))
        indices = np.asarray(key)
        if indices.ndim != 1 or indices.dtype.kind not in "iu":
            raise IndexError("StoredFrames takes an int, a slice or a sequence of ints")
        return np.stack([self[int(i)] for i in indices]) if indices.size else self._read(0, 0)

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start:stop`` as float32 (stop - start, *frame_shape)."""
        frame_shape = self.shape[1:]
        if self._data_offset is None:  # an h5py dataset
            selection = (slice(start, stop),) if self._z is None else (slice(start, stop), self._z)
            return np.asarray(self._handle[selection], dtype=np.float32)
        frame_items = math.prod(frame_shape)
        if self._z is None:
            runs = [(start * frame_items, (stop - start) * frame_items)]
        else:  # frame p of slice z: item (p * Z + z) * frame_items of the (P, Z, N, N) stack
            slices = self._stored_shape[1]
            runs = [((p * slices + self._z) * frame_items, frame_items) for p in range(start, stop)]
        parts = []
        for first_item, count in runs:
            self._handle.seek(self._data_offset + first_item * self._stored_dtype.itemsize)
            part = np.fromfile(self._handle, dtype=self._stored_dtype, count=count)
            if part.size != count:
                raise FileFormatError(f"{self.path}: {_NAME!r} ends early (the file changed or is truncated)")
            parts.append(part)
        data = np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.empty(0, self._stored_dtype)
        return data.reshape(stop - start, *frame_shape).astype(np.float32, copy=False)

    def close(self) -> None:
        """Close the file (a :meth:`volume_slice` shares it)."""
        file = getattr(self._handle, "file", self._handle)  # an h5py dataset's file
        file.close()

    def __enter__(self) -> StoredFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "" if self._z is None else f", slice {self._z}"
        return f"StoredFrames({str(self.path)!r}, shape={self.shape}{where})"


def _npy_member_offset(path: Path, handle, info: zipfile.ZipInfo) -> int:
    """Where the data of the stored (uncompressed) member ``info`` begin in the zip file."""
    handle.seek(info.header_offset)
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(handle.read(_LOCAL_HEADER.size))
    if signature != _LOCAL_HEADER_SIGNATURE:
        raise FileFormatError(f"{path}: damaged zip entry for {info.filename!r}")
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _check_values(stack: StoredFrames) -> None:
    """Refuse NaN, infinite values or values too large for float32, one block at a time."""
    rows = max(1, CHECK_BLOCK_BYTES // (4 * math.prod(stack.shape[1:])))
    for start in range(0, len(stack), rows):
        with np.errstate(over="ignore", invalid="ignore"):
            block = stack[start : start + rows]
        if not np.isfinite(block).all():
            raise FileFormatError(
                f"{stack.path}: {_NAME!r} holds NaN, infinite values or values too large for float32"
            )


def _check_shape_and_dtype(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    check_dtype(path, _NAME, dtype)
    if dtype.kind not in "iuf":
        raise FileFormatError(f"{path}: {_NAME!r} must be real-valued numbers, got dtype {dtype}")
    if len(shape) not in (3, 4) or not all(shape):
        raise FileFormatError(f"{path}: {_NAME!r} must be a (P, N, N) or (P, Z, N, N) stack, got shape {shape}")


def _open_npz(path: Path) -> StoredFrames | np.ndarray | None:
    handle = open(path, "rb")
    try:
        with zipfile.ZipFile(handle) as archive:
            try:
                info = archive.getinfo(_NAME + ".npy")
            except KeyError:
                handle.close()
                return None
            check_zip_member(path, info)
            if info.compress_type != zipfile.ZIP_STORED:
                # A compressed member cannot be read in pieces without decompressing it
                # from its start each time: loaded instead (size checked as any load).
                handle.close()
                return _read_arrays(path, _Keys({_NAME: np.dtype(np.float32)}), None, "measurement file",
                                    NPZ_SUFFIXES)[1][_NAME]
        offset = _npy_member_offset(path, handle, info)
        handle.seek(offset)
        shape, fortran_order, dtype = read_npy_header(handle)
        header_length = handle.tell() - offset
        _check_shape_and_dtype(path, shape, dtype)
        if fortran_order:
            raise FileFormatError(f"{path}: {_NAME!r} is stored in Fortran order; save it in C order")
        if info.file_size < header_length + math.prod(shape) * dtype.itemsize:
            raise FileFormatError(f"{path}: member {info.filename!r} is shorter than the array it declares")
        return StoredFrames(path, handle, tuple(shape), dtype, offset + header_length)
    except BaseException:
        handle.close()
        raise


def _open_h5(path: Path) -> StoredFrames | None:
    import h5py

    handle = h5py.File(path, "r")
    try:
        if _NAME not in handle:
            handle.close()
            return None
        dataset = _h5_dataset(path, handle, _NAME)
        if h5py.check_string_dtype(dataset.dtype) is not None:
            raise FileFormatError(f"{path}: {_NAME!r} holds text; expected numbers")
        _check_shape_and_dtype(path, tuple(dataset.shape), dataset.dtype)
        _check_h5_storage(path, _NAME, dataset)
        return StoredFrames(path, dataset, tuple(dataset.shape), dataset.dtype, None)
    except BaseException:
        handle.close()
        raise


def open_ground_truth(path, shape: tuple[int, ...] | None = None) -> StoredFrames | np.ndarray | None:
    """The ground truth of a measurement file, to score against without loading it.

    Parameters
    ----------
    path : str or os.PathLike
        A measurement file (``.npz``, ``.h5``, ``.hdf5``).
    shape : tuple of int, optional
        The shape it must have, ``(measurements.n_frames, *measurements.image_shape)``
        (checked before its values are read).

    Returns
    -------
    StoredFrames or numpy.ndarray or None
        A :class:`StoredFrames` (P, N, N) or (P, Z, N, N) for an uncompressed ``.npz``
        member (as :func:`imaging.io.save_measurements` writes) or an HDF5 dataset, after
        checking every value once (finite, within float32); the loaded float32 array for
        a compressed ``.npz`` member (``numpy.savez_compressed``); None for a file
        without one.

    Raises
    ------
    FileFormatError
        Not a readable measurement file, or a ground truth that is not a finite real
        (P, N, N) or (P, Z, N, N) stack.
    MeasurementError
        A ground truth of another shape than ``shape``.

    Examples
    --------
    >>> measurements = load_measurements("walnut.npz", ground_truth=False)  # doctest: +SKIP
    >>> truth = open_ground_truth("walnut.npz", (measurements.n_frames, *measurements.image_shape))  # doctest: +SKIP
    >>> result = imaging.reconstruct(measurements, ground_truth=truth)  # doctest: +SKIP
    """
    path = Path(path)
    suffix = _suffix(path, NPZ_SUFFIXES + HDF5_SUFFIXES, "a measurement file")
    try:
        stack = _open_npz(path) if suffix in NPZ_SUFFIXES else _open_h5(path)
        if stack is not None and shape is not None and tuple(stack.shape) != tuple(shape):
            if isinstance(stack, StoredFrames):
                stack.close()
            raise MeasurementError(f"{path}: {_NAME!r} must have shape {tuple(shape)}, got {tuple(stack.shape)}")
        if isinstance(stack, StoredFrames):
            try:
                _check_values(stack)
            except BaseException:
                stack.close()
                raise
        elif isinstance(stack, np.ndarray):
            _check_shape_and_dtype(path, stack.shape, stack.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                stack = stack.astype(np.float32, copy=False)
            if not np.isfinite(stack).all():
                raise FileFormatError(f"{path}: {_NAME!r} holds NaN, infinite values or values too large for float32")
        return stack
    except (FileFormatError, MeasurementError):
        raise
    except _READ_ERRORS as exc:
        raise FileFormatError(f"{path}: cannot read {_NAME!r}: {first_line(exc)}") from None


def volume_slice(reference: StoredFrames | np.ndarray, z: int) -> StoredFrames | np.ndarray:
    """The (P, N, N) frames of slice ``z`` of a (P, Z, N, N) reference, in memory or stored."""
    if isinstance(reference, StoredFrames):
        return reference.volume_slice(z)
    return np.ascontiguousarray(reference[:, z])


__all__ = ["StoredFrames", "open_ground_truth", "volume_slice"]
