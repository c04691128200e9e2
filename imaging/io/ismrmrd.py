"""ISMRMRD raw data (the community's MRI raw format) to :class:`~imaging.measurements.Measurements`.

An ISMRMRD file is an HDF5 file with a group (``dataset``) holding the XML header
(``xml``: encoded matrix, encoding limits, trajectory) and the acquisitions (``data``:
one readout line each, with its encoding counters). :func:`read_ismrmrd` reads 2D
Cartesian acquisitions:

- the grid is the encoded space, ``H = matrixSize.y`` phase-encode rows by
  ``W = matrixSize.x`` readout samples (the readout oversampling of the scanner, when
  the header's encoded matrix includes it, is kept: the image has the encoded field of
  view);
- a line goes to row ``kspace_encode_step_1 - limits.kspace_encoding_step_1.center +
  H // 2`` and its samples to the columns that put ``center_sample`` at ``W // 2``
  (asymmetric echoes fill part of the row), after removing ``discard_pre`` and
  ``discard_post`` samples;
- frames come from the repetition or the (cardiac) phase counter: ``frames="auto"``
  takes the one that varies; frame ``p`` is counter value ``minimum + p`` with the
  minimum and the number of frames from the encoding limits (else from the data);
- slices (the slice counter) make a volume (P, Z, C, H, W); averages of a line are
  averaged;
- noise, navigator, phase-correction, dummy, feedback and pure parallel-calibration
  acquisitions are skipped (calibration lines that are also imaging lines are kept).

Anything else is refused with a message saying what: several encodings, a non-Cartesian
trajectory, 3D encoding (a second phase-encode direction), reversed readouts, several
contrasts or sets, frames from both counters without a choice, lines outside the grid,
a varying number of coils. The file is untrusted: the structure is checked before it is
read, the declared sizes are checked against ``max_bytes`` before any sample is loaded,
and nothing is unpickled (the header is XML, the data plain numbers).

Needs the ``ismrmrd`` package (extra ``.[mri]``) for the header.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..measurements import Measurements
from .safe import FileFormatError, SizeBudget

#: Counters that can number the frames of a dynamic acquisition.
FRAME_COUNTERS = ("repetition", "phase")

#: Acquisition flags (ISMRMRD bit numbers) of lines that are not imaging data.
_SKIPPED_FLAGS = (
    "ACQ_IS_NOISE_MEASUREMENT",
    "ACQ_IS_NAVIGATION_DATA",
    "ACQ_IS_PHASECORR_DATA",
    "ACQ_IS_DUMMYSCAN_DATA",
    "ACQ_IS_RTFEEDBACK_DATA",
    "ACQ_IS_HPFEEDBACK_DATA",
    "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA",
    "ACQ_IS_PHASE_STABILIZATION_REFERENCE",
    "ACQ_IS_PHASE_STABILIZATION",
    "ACQ_IS_PARALLEL_CALIBRATION",
)


def _ismrmrd():
    try:
        import ismrmrd
        import ismrmrd.xsd
    except ImportError:  # pragma: no cover - depends on the installation
        raise ImportError("reading ISMRMRD files needs the 'ismrmrd' package: pip install 'imaging-redpsm[mri]'") from None
    return ismrmrd


def _flag_mask(ismrmrd, names) -> np.uint64:
    mask = 0
    for name in names:
        mask |= 1 << (getattr(ismrmrd, name) - 1)
    return np.uint64(mask)


def _open_checked(path: Path, group: str):
    """The HDF5 file open for reading, with ``group/xml`` and ``group/data`` as plain datasets."""
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"ISMRMRD file {path} does not exist")
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path} is not an HDF5 file (ISMRMRD files are HDF5)")
    handle = h5py.File(path, "r")
    try:
        for name in (group, f"{group}/xml", f"{group}/data"):
            link = handle.get(name, getlink=True)
            if link is None:
                raise FileFormatError(f"{path}: no {name!r} in the file; is it an ISMRMRD file (group {group!r})?")
            if not isinstance(link, h5py.HardLink):
                raise FileFormatError(f"{path}: {name!r} is a soft or external link; refusing to follow it")
        for name in ("xml", "data"):
            item = handle[group][name]
            if not isinstance(item, h5py.Dataset) or item.is_virtual or item.external:
                raise FileFormatError(f"{path}: {group}/{name} is not a dataset stored in this file")
        data = handle[group]["data"]
        if data.dtype.names is None or not {"head", "data"} <= set(data.dtype.names):
            raise FileFormatError(f"{path}: {group}/data is not a table of ISMRMRD acquisitions")
    except BaseException:
        handle.close()
        raise
    return handle


def _header(path: Path, xml_dataset):
    ismrmrd = _ismrmrd()
    raw = xml_dataset[()]
    text = raw[0] if isinstance(raw, np.ndarray) and raw.size == 1 else raw
    text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
    try:
        header = ismrmrd.xsd.CreateFromDocument(text)
    except Exception as exc:  # the XML parser raises many kinds
        raise FileFormatError(f"{path}: the ISMRMRD XML header cannot be read ({exc})") from None
    if len(header.encoding) != 1:
        raise FileFormatError(f"{path}: {len(header.encoding)} encodings in the header; only files with one are read")
    encoding = header.encoding[0]
    trajectory = getattr(encoding.trajectory, "value", encoding.trajectory)
    if trajectory != "cartesian":
        raise FileFormatError(f"{path}: trajectory {trajectory!r}; only Cartesian ISMRMRD acquisitions are read")
    matrix = encoding.encodedSpace.matrixSize
    if (matrix.z or 1) > 1:
        raise FileFormatError(f"{path}: 3D encoding (matrix z = {matrix.z}); only 2D (multi-slice) acquisitions are read")
    return encoding


def _limit(limits, name):
    return None if limits is None else getattr(limits, name, None)


def read_ismrmrd(
    path, *, frames: str = "auto", group: str = "dataset", max_bytes: int | None = None
) -> Measurements:
    """Read a 2D Cartesian dynamic ISMRMRD file (see the module docstring).

    Parameters
    ----------
    path : str or os.PathLike
    frames : {"auto", "repetition", "phase"}
        The counter that numbers the frames; ``"auto"`` takes the one that varies (one
        frame when neither does).
    group : str
        The ISMRMRD group in the HDF5 file.
    max_bytes : int, optional
        Refuse a file whose k-space would take more than this many bytes
        (:func:`imaging.io.safe.read_limit`).

    Returns
    -------
    Measurements
        ``kspace`` complex64 (P, C, H, W) (zero where not sampled) and ``mask`` bool
        (P, H, W); for several slices a volume, ``kspace`` (P, Z, C, H, W) and ``mask``
        (P, Z, H, W). No coil maps (the runner estimates them).
    """
    ismrmrd = _ismrmrd()
    if frames not in ("auto", *FRAME_COUNTERS):
        raise ValueError(f"frames must be 'auto', 'repetition' or 'phase', got {frames!r}")
    path = Path(path)
    with _open_checked(path, group) as handle:
        encoding = _header(path, handle[group]["xml"])
        table = handle[group]["data"]
        heads = table.fields("head")[:]
        keep = (heads["flags"] & _flag_mask(ismrmrd, _SKIPPED_FLAGS)) == 0
        if np.any(heads["flags"][keep] & _flag_mask(ismrmrd, ["ACQ_IS_REVERSE"])):
            raise FileFormatError(f"{path}: reversed readouts (EPI); only Cartesian line-by-line readouts are read")
        heads = heads[keep]
        if heads.size == 0:
            raise FileFormatError(f"{path}: no imaging acquisitions")
        layout = _Layout(path, encoding, heads, frames)
        budget = SizeBudget(path, max_bytes)
        budget.claim("kspace", layout.kspace_shape, np.dtype(np.complex64))
        budget.claim("samples", (int(np.sum(heads["active_channels"].astype(np.int64) * heads["number_of_samples"])),),
                     np.dtype(np.complex64))
        samples = table.fields("data")[np.flatnonzero(keep)] if not np.all(keep) else table.fields("data")[:]
    return layout.measurements(heads, samples)


class _Layout:
    """Where each acquisition goes: frame, slice, row and columns of the (P, Z, C, H, W) k-space."""

    def __init__(self, path: Path, encoding, heads: np.ndarray, frames: str):
        self.path = path
        counters = heads["idx"]
        for name in ("contrast", "set", "kspace_encode_step_2"):
            if np.unique(counters[name]).size > 1:
                raise FileFormatError(f"{path}: the {name} counter varies; such acquisitions are not read")
        if np.any(heads["encoding_space_ref"] != 0):
            raise FileFormatError(f"{path}: acquisitions refer to another encoding space than the first")
        channels = np.unique(heads["active_channels"])
        if channels.size != 1 or channels[0] < 1:
            raise FileFormatError(f"{path}: the number of active coils varies between acquisitions ({channels.tolist()})")
        self.n_coils = int(channels[0])
        limits = encoding.encodingLimits
        self.frame_counter = self._frame_counter(counters, frames)
        self.frame_index, self.n_frames = self._numbered(counters, self.frame_counter, limits)
        self.slice_index, self.n_slices = self._numbered(counters, "slice", limits)
        matrix = encoding.encodedSpace.matrixSize
        self.height, self.width = int(matrix.y), int(matrix.x)
        centre = _limit(_limit(limits, "kspace_encoding_step_1"), "center")
        if centre is None:
            raise FileFormatError(f"{path}: the header gives no centre of kspace_encoding_step_1 (the DC row)")
        self.rows = counters["kspace_encode_step_1"].astype(np.int64) - int(centre) + self.height // 2
        if self.rows.min() < 0 or self.rows.max() >= self.height:
            raise FileFormatError(
                f"{path}: phase-encode lines fall outside the {self.height} rows of the encoded matrix "
                f"(encode steps {counters['kspace_encode_step_1'].min()}..{counters['kspace_encode_step_1'].max()}, "
                f"centre {centre})"
            )
        self.kept_samples = heads["number_of_samples"].astype(np.int64) - heads["discard_pre"] - heads["discard_post"]
        self.first_column = self.width // 2 - (heads["center_sample"].astype(np.int64) - heads["discard_pre"])
        if np.any(self.kept_samples < 1) or self.first_column.min() < 0 or (self.first_column + self.kept_samples).max() > self.width:
            raise FileFormatError(
                f"{path}: readouts of {self.kept_samples.max()} samples (centre sample "
                f"{heads['center_sample'].max()}) do not fit the {self.width} columns of the encoded matrix; "
                "readout oversampling that the header's matrix leaves out is not removed"
            )

    def _frame_counter(self, counters, frames: str) -> str | None:
        varying = [name for name in FRAME_COUNTERS if np.unique(counters[name]).size > 1]
        if frames != "auto":
            other = [name for name in varying if name != frames]
            if other:
                raise FileFormatError(
                    f"{self.path}: frames from {frames!r}, but the {other[0]} counter varies too"
                )
            return frames
        if len(varying) > 1:
            raise FileFormatError(
                f"{self.path}: both the repetition and the phase counters vary; choose which numbers the frames"
            )
        return varying[0] if varying else None

    def _numbered(self, counters, name: str | None, limits) -> tuple[np.ndarray, int]:
        """Index from 0 of each acquisition along a counter, and the count (limits first)."""
        if name is None:
            return np.zeros(counters.shape[0], dtype=np.int64), 1
        values = counters[name].astype(np.int64)
        limit = _limit(limits, name)
        lowest = int(limit.minimum) if limit is not None and limit.minimum is not None else int(values.min())
        highest = int(limit.maximum) if limit is not None and limit.maximum is not None else int(values.max())
        if values.min() < lowest or values.max() > highest:
            raise FileFormatError(f"{self.path}: {name} counters outside the header's limits {lowest}..{highest}")
        return values - lowest, highest - lowest + 1

    @property
    def kspace_shape(self) -> tuple[int, ...]:
        return (self.n_frames, self.n_slices, self.n_coils, self.height, self.width)

    def measurements(self, heads: np.ndarray, samples) -> Measurements:
        kspace = np.zeros(self.kspace_shape, dtype=np.complex64)
        counts = np.zeros((self.n_frames, self.n_slices, self.height, self.width), dtype=np.int64)
        for i, line in enumerate(samples):
            n_samples = int(heads["number_of_samples"][i])
            values = np.asarray(line, dtype=np.float32)
            if values.size != 2 * self.n_coils * n_samples:
                raise FileFormatError(
                    f"{self.path}: acquisition {i} holds {values.size // 2} samples, its header says "
                    f"{self.n_coils} coils x {n_samples}"
                )
            readout = values.view(np.complex64).reshape(self.n_coils, n_samples)
            readout = readout[:, heads["discard_pre"][i] : n_samples - heads["discard_post"][i]]
            where = (self.frame_index[i], self.slice_index[i])
            columns = slice(self.first_column[i], self.first_column[i] + self.kept_samples[i])
            kspace[where][:, self.rows[i], columns] += readout
            counts[where][self.rows[i], columns] += 1
        sampled = counts > 0
        kspace /= np.maximum(counts, 1)[:, :, None].astype(np.float32)
        if not np.all(np.isfinite(kspace)):
            raise FileFormatError(f"{self.path}: the k-space samples contain NaN or infinite values")
        if self.n_slices == 1:
            return Measurements(
                modality="mri", image_shape=(self.height, self.width), kspace=kspace[:, 0], mask=sampled[:, 0]
            )
        return Measurements(
            modality="mri", image_shape=(self.n_slices, self.height, self.width), kspace=kspace, mask=sampled
        )


__all__ = ["FRAME_COUNTERS", "read_ismrmrd"]
