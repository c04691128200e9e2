"""Data Exchange HDF5 raw acquisitions (the layout tomopy and dxchange write).

``/exchange/data`` (n, rows, cols) projection counts, ``/exchange/data_white`` flat
fields, ``/exchange/data_dark`` dark fields (optional), ``/exchange/theta`` (n,) rotation
angles in degrees (the format's convention; values that look like radians are refused
unless the unit is stated). The datasets are read lazily, chunk by chunk
(:mod:`imaging.io.raw`); links to other files are refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .files import FileFormatError
from .raw import ArrayFrames, RawAcquisition, RawDataError, angles_to_radians

GROUP = "exchange"


def _dataset(handle, name: str, path: Path, required: bool):
    import h5py

    full = f"{GROUP}/{name}"
    if full not in handle:
        if required:
            raise RawDataError(f"{path}: the Data Exchange file has no /{full}")
        return None
    link = handle[GROUP].get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise FileFormatError(f"{path}: /{full} is a link to elsewhere; refusing to follow it")
    dataset = handle[full]
    if not isinstance(dataset, h5py.Dataset) or dataset.external or dataset.is_virtual:
        raise FileFormatError(f"{path}: /{full} is not a dataset stored in this file")
    return dataset


def _frames(dataset, path: Path, name: str) -> ArrayFrames | None:
    if dataset is None:
        return None
    if dataset.ndim != 3:
        raise RawDataError(f"{path}: /{GROUP}/{name} must be a stack of images (n, rows, cols), got shape {dataset.shape}")
    if dataset.dtype.kind not in "iuf":
        raise RawDataError(f"{path}: /{GROUP}/{name} holds {dataset.dtype} values; expected detector counts")
    return ArrayFrames(dataset)


@contextmanager
def open_acquisition(path, angle_unit: str | None = None):
    """Open a Data Exchange file as a :class:`imaging.io.raw.RawAcquisition` (kept open inside the block).

    Parameters
    ----------
    path : str or os.PathLike
    angle_unit : {"degrees", "radians"}, optional
        The unit of ``/exchange/theta`` when it is not the format's degrees.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"raw acquisition {path} does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"{path} is not a readable HDF5 file: {exc}") from None
    try:
        if GROUP not in handle:
            raise RawDataError(f"{path}: no /exchange group; not a Data Exchange file")
        projections = _frames(_dataset(handle, "data", path, True), path, "data")
        flats = _frames(_dataset(handle, "data_white", path, True), path, "data_white")
        darks = _frames(_dataset(handle, "data_dark", path, False), path, "data_dark")
        theta = _dataset(handle, "theta", path, True)
        if theta.ndim != 1:
            raise RawDataError(f"{path}: /exchange/theta must hold one angle per projection, got shape {theta.shape}")
        if theta.shape[0] != projections.shape[0]:
            raise RawDataError(f"{path}: /exchange/theta holds {theta.shape[0]} angles for {projections.shape[0]} projections")
        angles = angles_to_radians(theta[()], angle_unit or "degrees", angle_unit is not None, f"{path}: /exchange/theta")
        yield RawAcquisition(projections, flats, darks, angles, None, str(path))
    except (OSError, KeyError, RuntimeError) as exc:
        raise FileFormatError(f"{path} is not a readable Data Exchange file: {exc}") from None
    finally:
        handle.close()


def write_dxchange(path, data, flats, darks, theta_degrees, chunks=True) -> Path:
    """Write a raw acquisition as a Data Exchange file (atomically).

    Parameters
    ----------
    path : str or os.PathLike
    data : numpy.ndarray
        (n, rows, cols) projection counts (any integer or float dtype, kept).
    flats, darks : numpy.ndarray
        (n_flats, rows, cols) and (n_darks, rows, cols); ``darks`` may be None.
    theta_degrees : numpy.ndarray
        (n,) rotation angles in degrees.
    chunks : bool or tuple
        HDF5 chunking of the image stacks (h5py's ``chunks``).

    Returns
    -------
    pathlib.Path
    """

    def write(temporary: str) -> None:
        import h5py

        with h5py.File(temporary, "w") as handle:
            group = handle.create_group(GROUP)
            group.create_dataset("data", data=data, chunks=chunks)
            group.create_dataset("data_white", data=flats, chunks=chunks)
            if darks is not None:
                group.create_dataset("data_dark", data=darks, chunks=chunks)
            group.create_dataset("theta", data=np.asarray(theta_degrees, dtype=np.float64))

    return write_atomic(path, write)
