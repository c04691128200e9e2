"""napari reader and writer for the toolkit's measurement and reconstruction files.

Reader: a ``.npz``/``.h5`` file whose keys say it is a measurement file (``modality``)
or a reconstruction file (``reconstruction``) opens as layers with the full objects in
their metadata; any other file is left to other readers (``get_reader`` returns
``None``). A file of ours that fails validation, or one that cannot be opened at all,
gives a plain notification and no layer instead of a traceback dialog. Volumes open as
(T, Z, Y, X) layers: a (P, Z, N, N) reconstruction or ground truth as such, a volume
measurement as the picture of :func:`._layers.measurement_image`.

Writer: a measurement layer goes to a measurement file (``.npz``/``.h5``) or its picture
to TIFF; any other (T, Y, X) or (T, Z, Y, X) image layer goes to a reconstruction file
(``.npz``) or a TIFF stack (ImageJ axes TYX or TZYX).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imaging.results import magnitude_image

from ._layers import (
    MEASUREMENTS_KEY,
    RESULT_KEY,
    image_layer,
    measurement_layer,
    phase_layer,
    reconstruction_layer,
)

NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5")
TIFF_SUFFIXES = (".tif", ".tiff")

#: What napari takes as "read successfully, nothing to add": a reader that handled the
#: file itself (here: by notifying the user) returns it so no other reader is tried.
NO_LAYERS = [(None,)]


def _file_keys(path: Path) -> set[str] | None:
    """Top-level keys of an ``.npz`` or HDF5 file; ``None`` when it cannot be opened."""
    try:
        if path.suffix.lower() in NPZ_SUFFIXES:
            with zipfile.ZipFile(path) as archive:
                return {name[: -len(".npy")] if name.endswith(".npy") else name for name in archive.namelist()}
        import h5py

        with h5py.File(path, "r") as handle:
            return set(handle.keys())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError):
        return None


def _notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def get_reader(path: str | list[str]) -> Callable[[str], list] | None:
    """npe2 reader command: a reader for our files, ``None`` for anything else.

    Parameters
    ----------
    path : str or list of str
        One path (lists of more than one path are not ours to stack).
    """
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if path.suffix.lower() not in NPZ_SUFFIXES + HDF5_SUFFIXES or not path.is_file():
        return None
    keys = _file_keys(path)
    if keys is None:
        return _unreadable_reader
    if "modality" in keys:
        return read_measurement_file
    if "reconstruction" in keys:
        return read_reconstruction_file
    return None


def _unreadable_reader(path: str) -> list:
    kind = "NumPy .npz archive" if Path(path).suffix.lower() in NPZ_SUFFIXES else "HDF5 file"
    _notify_error(f"Cannot open {Path(path).name}: it is not a readable {kind} (truncated or corrupt?)")
    return NO_LAYERS


def read_measurement_file(path: str) -> list:
    """Layers of a measurement file: the measurement, and its ground truth when present.

    Returns
    -------
    list
        Layer-data tuples; :data:`NO_LAYERS` after notifying the user when the file is
        invalid.
    """
    from imaging import MeasurementError
    from imaging.io import FileFormatError, load_measurements

    try:
        measurements = load_measurements(path)
    except (FileFormatError, MeasurementError, OSError, ValueError) as exc:
        _notify_error(f"Cannot open measurement file {Path(path).name}: {exc}")
        return NO_LAYERS
    stem = Path(path).stem
    label = "sinogram" if measurements.modality == "tomography" else "k-space"
    layers = [measurement_layer(measurements, f"{stem} {label}")]
    if measurements.ground_truth is not None:
        layers.append(image_layer(measurements.ground_truth, f"{stem} ground truth"))
    return layers


def read_reconstruction_file(path: str) -> list:
    """The reconstruction layer of a reconstruction file (result kept in its metadata)."""
    from imaging.io import FileFormatError, load_reconstruction

    try:
        result = load_reconstruction(path)
    except (FileFormatError, OSError, ValueError) as exc:
        _notify_error(f"Cannot open reconstruction file {Path(path).name}: {exc}")
        return NO_LAYERS
    name = f"{Path(path).stem} ({result.method})" if result.method else Path(path).stem
    phase = phase_layer(result, name)
    return [reconstruction_layer(result, name)] + ([phase] if phase is not None else [])


def _result_of_layer(data: np.ndarray, meta: dict[str, Any]):
    """The :class:`imaging.ReconstructionResult` to save for an image layer.

    A reconstruction layer keeps its run's method, parameters and history with the
    layer's current pixels; any other (T, Y, X) stack or (T, Z, Y, X) volume is saved as
    method "napari layer".
    """
    from imaging import ReconstructionResult

    stack = np.asarray(data)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim not in (3, 4):
        raise ValueError(
            f"layer {meta.get('name', '')!r} has shape {stack.shape}; "
            "only (T, Y, X) stacks and (T, Z, Y, X) volumes are saved as reconstructions"
        )
    stack = stack.astype(np.float32, copy=False)
    result = meta.get("metadata", {}).get(RESULT_KEY)
    if result is not None:
        # A complex result's layer shows its magnitude: unchanged, the complex images are saved.
        if np.iscomplexobj(result.reconstruction) and np.array_equal(magnitude_image(result.reconstruction), stack):
            return result
        return dataclasses.replace(result, reconstruction=stack)
    return ReconstructionResult(
        reconstruction=stack,
        method="napari layer",
        params={"layer": str(meta.get("name", ""))},
        history=[],
        elapsed_seconds=0.0,
        stop_reason="",
    )


def _write_tiff_atomically(path: Path, image: np.ndarray) -> Path:
    """Write ``image`` to a temporary file next to ``path``, then rename it onto ``path``."""
    import tifffile

    handle, temporary = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        tifffile.imwrite(temporary, image)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_layer(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer command.

    Parameters
    ----------
    path : str
        Destination; the extension picks the format.
    data : numpy.ndarray
        The layer data.
    meta : dict
        The layer's attributes (``name``, ``metadata`` ...).

    Returns
    -------
    list of str
        The written path.

    Raises
    ------
    ValueError
        For a layer/extension pair without a format (e.g. a reconstruction as ``.h5``).
    """
    from imaging.io import save_measurements, save_reconstruction

    suffix = Path(path).suffix.lower()
    measurements = meta.get("metadata", {}).get(MEASUREMENTS_KEY)
    if measurements is not None and suffix in NPZ_SUFFIXES + HDF5_SUFFIXES:
        return [str(save_measurements(path, measurements))]
    if measurements is not None and suffix in TIFF_SUFFIXES:
        return [str(_write_tiff_atomically(Path(path), np.asarray(data, dtype=np.float32)))]
    if suffix in NPZ_SUFFIXES + TIFF_SUFFIXES:
        return [str(save_reconstruction(path, _result_of_layer(data, meta)))]
    raise ValueError(
        f"cannot save layer {meta.get('name', '')!r} as {suffix or 'a file without extension'}: "
        "measurement layers are saved as .npz/.h5/.tif, image and reconstruction layers as .npz/.tif"
    )
