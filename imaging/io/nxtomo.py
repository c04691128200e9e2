"""NXtomo (NeXus) raw acquisitions, read with the ``nxtomo`` package (ESRF's tomotools).

The NeXus application definition NXtomo keeps all frames in one detector dataset,
``ENTRY/instrument/detector/data`` (n, rows, cols), with ``image_key`` telling each
frame's kind (0 projection, 1 flat field, 2 dark field, 3 invalid: skipped), and the
rotation angles in ``ENTRY/sample/rotation_angle`` with a ``units`` attribute. The
``nxtomo`` package reads the structure (entry, image keys, angles with their units,
where the detector data lives, including virtual datasets that point into the raw files
of a beamline); the frames are then read lazily with h5py, chunk by chunk
(:mod:`imaging.io.raw`). NXtomo has no per-frame time stamps, so frames are groups of
consecutive projections. Angles without a ``units`` attribute are taken as degrees
(NeXus' default for NX_ANGLE) unless their values contradict it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .atomic import write_atomic
from .files import FileFormatError
from .raw import ArrayFrames, RawAcquisition, RawDataError, angles_to_radians

#: ``image_key`` values of NXtomo.
PROJECTION, FLAT, DARK = 0, 1, 2

_UNITS = {"degree": "degrees", "degrees": "degrees", "deg": "degrees", "radian": "radians", "radians": "radians", "rad": "radians"}


def _require_package():
    try:
        from nxtomo.application.nxtomo import NXtomo
    except ImportError:
        raise RawDataError("reading NXtomo files needs the nxtomo package: pip install 'imaging-redpsm[ct]'") from None
    return NXtomo


def nxtomo_entries(path) -> list[str]:
    """Paths of the NXtomo entries of an HDF5 file (groups whose ``definition`` is NXtomo)."""
    import h5py

    entries = []
    with h5py.File(path, "r") as handle:
        for name, group in handle.items():
            if isinstance(group, h5py.Group) and "definition" in group:
                definition = group["definition"][()]
                if (definition.decode() if isinstance(definition, bytes) else str(definition)) == "NXtomo":
                    entries.append("/" + name)
    return entries


@contextmanager
def open_acquisition(path, angle_unit: str | None = None, entry: str | None = None):
    """Open an NXtomo entry as a :class:`imaging.io.raw.RawAcquisition` (kept open inside the block).

    Parameters
    ----------
    path : str or os.PathLike
    angle_unit : {"degrees", "radians"}, optional
        Overrides the ``units`` attribute of the rotation angles.
    entry : str, optional
        The NXtomo entry (default: the file's only one).
    """
    import h5py

    NXtomo = _require_package()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"raw acquisition {path} does not exist")
    try:
        entries = nxtomo_entries(path)
    except OSError as exc:
        raise FileFormatError(f"{path} is not a readable HDF5 file: {exc}") from None
    if entry is None:
        if len(entries) != 1:
            raise RawDataError(f"{path} holds {len(entries)} NXtomo entries ({', '.join(entries) or 'none'}); name one")
        entry = entries[0]
    elif entry not in entries:
        raise RawDataError(f"{path}: no NXtomo entry {entry!r} (entries: {', '.join(entries) or 'none'})")
    try:
        scan = NXtomo().load(str(path), data_path=entry, detector_data_as="as_data_url")
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise FileFormatError(f"{path} is not a readable NXtomo file: {exc}") from None
    urls = scan.instrument.detector.data
    if urls is None or len(urls) != 1:
        raise RawDataError(f"{path}: the NXtomo detector data must be one dataset, got {0 if urls is None else len(urls)}")
    url = urls[0]
    if url.data_slice() is not None:
        raise RawDataError(f"{path}: NXtomo detector data given as a slice of a dataset is not supported")
    keys = scan.instrument.detector.image_key
    if keys is None:
        raise RawDataError(f"{path}: the NXtomo entry has no image_key")
    keys = np.array([int(getattr(k, "value", k)) for k in keys], dtype=np.int64)
    angles_quantity = scan.sample.rotation_angle
    try:
        handle = h5py.File(url.file_path(), "r")
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot open the detector data in {url.file_path()}: {exc}") from None
    try:
        dataset = handle[url.data_path()]
        if dataset.ndim != 3 or dataset.shape[0] != keys.size:
            raise RawDataError(
                f"{path}: the detector data has shape {dataset.shape} for {keys.size} image keys; expected (n, rows, cols)"
            )
        if angles_quantity is None or np.size(angles_quantity) != keys.size:
            raise RawDataError(f"{path}: {np.size(angles_quantity) if angles_quantity is not None else 0} rotation angles for {keys.size} frames")
        unit, stated = _angle_unit(path, entry, angle_unit)
        values = angles_quantity.to("degree" if unit == "degrees" else "radian").magnitude if stated else angles_quantity.magnitude
        projections = np.flatnonzero(keys == PROJECTION)
        angles = angles_to_radians(np.asarray(values)[projections], unit, stated, f"{path}: rotation_angle")
        yield RawAcquisition(
            ArrayFrames(dataset, projections),
            ArrayFrames(dataset, np.flatnonzero(keys == FLAT)),
            ArrayFrames(dataset, np.flatnonzero(keys == DARK)),
            angles,
            None,
            f"{path}{entry}",
        )
    except (OSError, KeyError, RuntimeError) as exc:
        raise FileFormatError(f"{path} is not a readable NXtomo file: {exc}") from None
    finally:
        handle.close()


def _angle_unit(path: Path, entry: str, override: str | None) -> tuple[str, bool]:
    """The unit of the rotation angles and whether it is stated (override or units attribute)."""
    import h5py

    if override is not None:
        return override, True
    with h5py.File(path, "r") as handle:
        units = handle[f"{entry}/sample/rotation_angle"].attrs.get("units")
    if units is None:
        return "degrees", False
    units = units.decode() if isinstance(units, bytes) else str(units)
    if units.strip().lower() not in _UNITS:
        raise RawDataError(f"{path}: rotation angles in unknown units {units!r}; state the unit with --angle-unit")
    return _UNITS[units.strip().lower()], True


def write_nxtomo(path, data, flats, darks, angles_degrees) -> Path:
    """Write a raw acquisition as an NXtomo file with the ``nxtomo`` package (atomically).

    Frames are stored darks, flats, then projections, with their image keys; flats and
    darks get the angle of the first projection.

    Parameters
    ----------
    path : str or os.PathLike
    data, flats, darks : numpy.ndarray
        (n, rows, cols), (n_flats, rows, cols), (n_darks, rows, cols) counts.
    angles_degrees : numpy.ndarray
        (n,) rotation angles of the projections in degrees.

    Returns
    -------
    pathlib.Path
    """
    NXtomo = _require_package()
    from pint import get_application_registry

    ureg = get_application_registry()
    frames = np.concatenate([darks, flats, data])
    keys = np.concatenate(
        [np.full(len(darks), DARK), np.full(len(flats), FLAT), np.full(len(data), PROJECTION)]
    ).astype(np.uint8)
    angles = np.concatenate([np.full(len(darks) + len(flats), float(angles_degrees[0])), angles_degrees])
    scan = NXtomo()
    scan.instrument.detector.data = frames
    scan.instrument.detector.image_key_control = keys
    scan.sample.rotation_angle = angles * ureg.degree

    def write(temporary: str) -> None:
        os.unlink(temporary)  # nxtomo creates the file itself
        scan.save(temporary, data_path="/entry0000")

    return write_atomic(path, write)
