"""napari reader and writer for the toolkit's measurement and reconstruction files.

Reader: a ``.npz``/``.h5`` file whose keys say it is a measurement file (``modality``)
or a reconstruction file (``reconstruction``) opens as layers with the full objects in
their metadata; any other file is left to other readers (``get_reader`` returns
``None``). A file of ours that fails validation, or one that cannot be opened at all,
gives a plain notification and no layer instead of a traceback dialog. Volumes open as
(T, Z, Y, X) layers: a (P, Z, N, N) reconstruction or ground truth as such, a volume
measurement as the picture of :func:`._layers.measurement_image`. A file's layers open
right of what the viewer already shows (:func:`._layers.free_x`), the measurement's
picture right of its ground truth.

Writer: a measurement layer goes to a measurement file (``.npz``/``.h5``) or its picture
to TIFF; any other (T, Y, X) or (T, Z, Y, X) image layer goes to a reconstruction file
(``.npz``) or a TIFF stack (ImageJ axes TYX or TZYX). A TIFF keeps less than the layer
carries, and a warning says what was left out. napari's own "lossless" writer also
claims ``.npz`` and ``.tif`` and keeps pixels only; the plugin's panels therefore save
through their own *Save* buttons, which offer only :func:`complete_formats`.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from imaging.results import magnitude_image

from ._layers import (
    MEASUREMENTS_KEY,
    RESULT_KEY,
    current_viewer,
    free_x,
    image_layer,
    measurement_layers,
    phase_layer,
    reconstruction_layer,
)

#: What napari takes as "read successfully, nothing to add": a reader that handled the
#: file itself (here: by notifying the user) returns it so no other reader is tried.
NO_LAYERS = [(None,)]


def _file_keys(path: Path) -> set[str] | None:
    """Top-level keys of an ``.npz`` or HDF5 file; ``None`` when it cannot be opened."""
    from imaging.io import NPZ_SUFFIXES

    try:
        if path.suffix.lower() in NPZ_SUFFIXES:
            with zipfile.ZipFile(path) as archive:
                return {name.removesuffix(".npy") for name in archive.namelist()}
        import h5py

        with h5py.File(path, "r") as handle:
            return set(handle.keys())
    except Exception:  # any file that cannot be listed is reported by _unreadable_reader
        return None


def _notify_error(message: str) -> None:
    from napari.utils.notifications import show_error

    show_error(message)


def _notify_warning(message: str) -> None:
    from napari.utils.notifications import show_warning

    show_warning(message)


def get_reader(path: str | list[str]) -> Callable[[str], list] | None:
    """npe2 reader command: a reader for our files, ``None`` for anything else.

    Parameters
    ----------
    path : str or list of str
        One path (lists of more than one path are not ours to stack).
    """
    from imaging.io import HDF5_SUFFIXES, NPZ_SUFFIXES

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
    from imaging.io import NPZ_SUFFIXES

    kind = "NumPy .npz archive" if Path(path).suffix.lower() in NPZ_SUFFIXES else "HDF5 file"
    _notify_error(f"Cannot open {Path(path).name}: it is not a readable {kind} (truncated or corrupt?)")
    return NO_LAYERS


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_or_notify(path: str, what: str, read: Callable[[str], list]) -> list:
    """``read(path)``, or :data:`NO_LAYERS` after one notification when it fails.

    A file of ours that cannot be turned into layers, for whatever reason (invalid
    content, an archive member that is encrypted or compressed in a way Python cannot
    read, JSON nested too deep, arrays larger than :func:`read_budget`, not enough
    memory), must never reach napari as an exception: napari would show a traceback
    dialog, or lose the viewer.
    """
    name = Path(path).name
    try:
        return read(path)
    except MemoryError:
        _notify_error(f"Cannot open {what} {name}: not enough memory to read it")
    except RecursionError:
        _notify_error(f"Cannot open {what} {name}: its metadata is nested too deeply to be read")
    except Exception as exc:  # invalid content, encrypted or unsupported archive members, I/O errors
        _notify_error(f"Cannot open {what} {name}: {_first_line(exc)}")
    return NO_LAYERS


#: A file's arrays may take at most this share of the free memory: the viewer holds the
#: arrays, the pictures made from them and napari's own copies besides.
MEMORY_SHARE = 0.25


def read_budget() -> int:
    """Bytes a file's arrays may declare: the library's limit, or less when memory is short."""
    from imaging.io import DEFAULT_MAX_BYTES

    from ._logic import available_memory

    free = available_memory()
    return DEFAULT_MAX_BYTES if free is None else int(min(DEFAULT_MAX_BYTES, MEMORY_SHARE * free))


def read_measurement_file(path: str) -> list:
    """Layers of a measurement file: the measurement, and its ground truth when present.

    Returns
    -------
    list
        Layer-data tuples; :data:`NO_LAYERS` after notifying the user when the file
        cannot be shown (see :func:`_read_or_notify`).
    """

    def read(path: str) -> list:
        from imaging.io import load_measurements

        measurements = load_measurements(path, max_bytes=read_budget())
        data = np.asarray(measurements.data)
        if data.size == 0:
            label = "sinogram" if measurements.modality == "tomography" else "k-space"
            raise ValueError(f"its {label} is empty (shape {data.shape})")
        stem = Path(path).stem
        label = "sinogram" if measurements.modality == "tomography" else "k-space"
        offset = (0.0, free_x(current_viewer(), measurements.image_shape[-1]))
        layers = measurement_layers(measurements, f"{stem} {label}", offset)
        if measurements.ground_truth is not None:
            layers.append(image_layer(measurements.ground_truth, f"{stem} ground truth", offset=offset))
        return layers

    return _read_or_notify(path, "measurement file", read)


def read_reconstruction_file(path: str) -> list:
    """The reconstruction layer of a reconstruction file (result kept in its metadata)."""

    def read(path: str) -> list:
        from imaging.io import load_reconstruction

        result = load_reconstruction(path, max_bytes=read_budget())
        if np.asarray(result.reconstruction).size == 0:
            raise ValueError(f"its reconstruction is empty (shape {np.shape(result.reconstruction)})")
        name = f"{Path(path).stem} ({result.method})" if result.method else Path(path).stem
        offset = (0.0, free_x(current_viewer(), np.shape(result.reconstruction)[-1]))
        phase = phase_layer(result, name, offset)
        return [reconstruction_layer(result, name, offset=offset)] + ([phase] if phase is not None else [])

    return _read_or_notify(path, "reconstruction file", read)


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


def _write_tiff(path: Path, image: np.ndarray) -> Path:
    """Write ``image`` as a plain TIFF through the toolkit's one atomic writer."""
    import tifffile

    from imaging.io import write_atomic

    return write_atomic(path, lambda temporary: tifffile.imwrite(temporary, image))


def complete_formats(metadata: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The file formats that keep everything a layer carries, the default first.

    Parameters
    ----------
    metadata : dict
        The layer's ``metadata``.

    Returns
    -------
    list of (str, tuple of str)
        (description, suffixes): for a measurement layer a measurement file (``.npz``,
        or HDF5), for any other image layer a reconstruction file (``.npz``). TIFF is
        not among them: it keeps pixels (and a run's parameters), not the geometry or
        the by-products.
    """
    from imaging.io import HDF5_SUFFIXES, NPZ_SUFFIXES

    if MEASUREMENTS_KEY in metadata:
        return [("Measurement file", NPZ_SUFFIXES), ("Measurement file, HDF5", HDF5_SUFFIXES)]
    return [("Reconstruction file", NPZ_SUFFIXES)]


def write_layer(path: str, data: Any, meta: dict) -> list[str]:
    """npe2 single-layer writer command.

    A measurement layer goes to a measurement file (``.npz``, ``.h5``, ``.hdf5``: the
    whole measurement, geometry and ground truth included) and any other (T, Y, X) or
    (T, Z, Y, X) image layer to a reconstruction file (``.npz``: pixels, method,
    parameters, history and by-products such as PSM factors). A ``.tif``/``.tiff``
    keeps less, and a warning notification says what was left out: a measurement
    layer's picture only (the file cannot be reopened as a measurement), or a
    reconstruction without its by-products.

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
        For a layer/extension pair without a format: anything but ``.npz``, HDF5 and
        TIFF, or HDF5 for a layer that is not a measurement.
    """
    from imaging.io import HDF5_SUFFIXES, NPZ_SUFFIXES, TIFF_SUFFIXES, save_measurements, save_reconstruction

    suffix = Path(path).suffix.lower()
    name = meta.get("name", "")
    measurements = meta.get("metadata", {}).get(MEASUREMENTS_KEY)
    if measurements is not None and suffix in NPZ_SUFFIXES + HDF5_SUFFIXES:
        return [str(save_measurements(path, measurements))]
    if measurements is not None and suffix in TIFF_SUFFIXES:
        written = _write_tiff(Path(path), np.asarray(data, dtype=np.float32))
        _notify_warning(
            f"Saved only the picture of measurement layer {name!r} to {Path(path).name}: a TIFF keeps "
            "neither the geometry nor the ground truth, and cannot be reopened as a measurement. "
            "Save as .npz or .h5 to keep everything."
        )
        return [str(written)]
    if suffix in NPZ_SUFFIXES + TIFF_SUFFIXES:
        result = _result_of_layer(data, meta)
        written = save_reconstruction(path, result)
        if suffix in TIFF_SUFFIXES and result.extras:
            _notify_warning(
                f"Saved {name!r} to {Path(path).name} without its {', '.join(sorted(result.extras))}: a TIFF "
                "keeps the images, parameters and history only. Save as .npz to keep everything."
            )
        return [str(written)]
    if suffix in HDF5_SUFFIXES:
        raise ValueError(
            f"cannot save layer {name!r} as {suffix}: HDF5 holds measurement files only; "
            "save a reconstruction or image layer as .npz (everything kept) or .tif"
        )
    raise ValueError(
        f"cannot save layer {name!r} as {suffix or 'a file without extension'}: "
        "measurement layers are saved as .npz/.h5 (or their picture as .tif), image and reconstruction "
        "layers as .npz (or .tif)"
    )
