"""fastMRI-style HDF5 k-space files to :class:`~imaging.measurements.Measurements`.

The fastMRI data sets store one HDF5 file per acquisition with a ``kspace`` dataset,
complex (N0, C, H, W) for multi-coil and (N0, H, W) for single-coil data, the readout
along H and the phase encoding along W (the columns), in centred layout (DC at
``(H // 2, W // 2)``), zeros where a column was not acquired; test files add a
``mask`` of the acquired columns. :func:`read_fastmri` reads such a file as a dynamic
acquisition whose first axis is time (frame p = ``kspace[p]``):

- the phase encoding becomes the rows, as in this toolkit's Cartesian layout (k-space
  and images are transposed with respect to fastMRI's: the image is (W, H));
- the sampled locations are the ``mask`` when the file has one, ``(W,)`` for every frame
  or ``(P, W)`` per frame; otherwise a column of a frame counts as sampled when any of its
  samples (any coil) is nonzero (a measured sample is never exactly zero);
- other datasets (``reconstruction_rss``, ``ismrmrd_header``...) are not read.

The file is untrusted: it is read with the checks of :mod:`imaging.io.files` (no links,
no external data, declared sizes checked before reading).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..measurements import Measurements
from .files import HDF5_SUFFIXES, FileFormatError, _Keys, _read_h5, _suffix


def read_fastmri(path, *, max_bytes: int | None = None) -> Measurements:
    """Read a fastMRI-style ``kspace`` HDF5 file as dynamic MRI (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
        ``.h5`` or ``.hdf5`` file with a ``kspace`` dataset, complex (P, C, H, W) or (P, H, W).
    max_bytes : int, optional
        Refuse datasets that declare more than this many bytes, before reading them
        (:func:`imaging.io.safe.read_limit`).

    Returns
    -------
    Measurements
        ``kspace`` complex64 (P, C, W, H), ``mask`` bool (P, W, H) (whole rows),
        ``image_shape`` (W, H); no coil maps.
    """
    path = Path(path)
    _suffix(path, HDF5_SUFFIXES, "a fastMRI k-space file")
    if not path.is_file():
        raise FileNotFoundError(f"fastMRI file {path} does not exist")
    values, _ = _read_h5(path, _Keys({"kspace": None, "mask": None}), max_bytes)
    if "kspace" not in values:
        raise FileFormatError(f"{path}: no 'kspace' dataset; not a fastMRI-style k-space file")
    kspace = values["kspace"]
    if kspace.dtype.kind != "c":
        raise FileFormatError(f"{path}: 'kspace' must be complex, got {kspace.dtype}")
    if kspace.ndim == 3:
        kspace = kspace[:, None]
    if kspace.ndim != 4 or min(kspace.shape) < 1:
        raise FileFormatError(f"{path}: 'kspace' must have shape (P, C, H, W) or (P, H, W), got {values['kspace'].shape}")
    n_frames, _, height, width = kspace.shape
    if "mask" in values:
        columns = np.asarray(values["mask"])
        if columns.shape == (width,):
            columns = np.broadcast_to(columns, (n_frames, width))
        if columns.shape != (n_frames, width) or not (columns.dtype == bool or np.all(np.isin(columns, (0, 1)))):
            raise FileFormatError(
                f"{path}: 'mask' must mark the acquired columns with 0/1, shape ({width},) or ({n_frames}, {width}); "
                f"got {columns.dtype} of shape {columns.shape}"
            )
        columns = columns.astype(bool)
    else:
        columns = np.any(kspace != 0, axis=(1, 2))
    # Phase encoding on the rows: (P, C, H, W) -> (P, C, W, H).
    kspace = np.ascontiguousarray(np.swapaxes(kspace, -1, -2)).astype(np.complex64, copy=False)
    mask = np.ascontiguousarray(np.broadcast_to(columns[:, :, None], (n_frames, width, height)))
    kspace *= mask[:, None]
    return Measurements(modality="mri", image_shape=(width, height), kspace=kspace, mask=mask)


__all__ = ["read_fastmri"]
