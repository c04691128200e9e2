"""Raw MRI files for ``imaging import``: which MRI format a file is, and its reader.

Formats (:data:`MRI_FORMATS`): ``"ismrmrd"`` (:func:`imaging.io.ismrmrd.read_ismrmrd`) and
``"fastmri"`` (:func:`imaging.io.fastmri.read_fastmri`).
"""

from __future__ import annotations

from pathlib import Path

from ..measurements import Measurements
from .safe import FileFormatError

#: Raw MRI formats ``imaging import`` reads.
MRI_FORMATS = ("ismrmrd", "fastmri")


def detect_mri_format(source) -> str | None:
    """``"ismrmrd"`` for an HDF5 file with ``dataset/xml`` and ``dataset/data``, ``"fastmri"``
    for one with a top-level ``kspace`` dataset, else None (not a raw MRI file)."""
    path = Path(source)
    if not path.is_file():
        return None
    import h5py

    if not h5py.is_hdf5(path):
        return None
    try:
        with h5py.File(path, "r") as handle:
            group = handle.get("dataset", getlink=True)
            if isinstance(group, h5py.HardLink) and isinstance(handle["dataset"], h5py.Group):
                if {"xml", "data"} <= set(handle["dataset"]):
                    return "ismrmrd"
            if isinstance(handle.get("kspace", getlink=True), h5py.HardLink):
                return "fastmri"
    except (OSError, KeyError, RuntimeError) as exc:
        raise FileFormatError(f"{path} is not a readable HDF5 file: {exc}") from None
    return None


def read_mri_raw(source, format: str, frames: str = "auto") -> Measurements:
    """The measurements of a raw MRI file of ``format`` (:data:`MRI_FORMATS`).

    Parameters
    ----------
    source : str or os.PathLike
    format : {"ismrmrd", "fastmri"}
    frames : {"auto", "repetition", "phase"}
        ISMRMRD: the counter that numbers the frames.
    """
    if format == "ismrmrd":
        from .ismrmrd import read_ismrmrd

        return read_ismrmrd(source, frames=frames)
    if format == "fastmri":
        if frames != "auto":
            raise ValueError("frames applies to ISMRMRD files (their repetition or phase counter)")
        from .fastmri import read_fastmri

        return read_fastmri(source)
    raise ValueError(f"unknown raw MRI format {format!r}; choose one of: {', '.join(MRI_FORMATS)}")
