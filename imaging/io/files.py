"""Measurement and reconstruction files (docs/design.md, "Measurement file" and "Reconstruction file").

Files are untrusted input. Reading never unpickles: NumPy object arrays and HDF5
object, variable-length (other than a scalar string), reference, compound, linked or
externally stored datasets are refused, and the size each array declares (shape times
item size) is checked against a limit before any memory is allocated for it. Content
checks (shapes, dtypes, NaN/inf, consistency) are those of
:class:`imaging.measurements.Measurements`.

Writing is atomic (:func:`imaging.io.atomic.write_atomic`): an interrupted or failed
write leaves neither a half-written file nor a temporary behind, and an existing file of
that name stays intact.

Layout: ``.npz`` holds one ``.npy`` member per key (strings as 0-d unicode arrays,
scalars as 0-d arrays); ``.h5``/``.hdf5`` holds the same names as top-level datasets
(strings as UTF-8 scalar strings).
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..measurements import MODALITIES, MeasurementError, Measurements
from ..results import ReconstructionResult, magnitude_image
from .atomic import write_atomic
from .safe import (
    _READ_ERRORS,
    DEFAULT_MAX_BYTES,
    FileFormatError,
    SizeBudget,
    check_dtype,
    first_line,
    read_npy_member,
    read_tiff,
)

NPZ_SUFFIXES = (".npz",)
HDF5_SUFFIXES = (".h5", ".hdf5")
TIFF_SUFFIXES = (".tif", ".tiff")

#: Measurement keys of the file contract and the kind of value each holds.
_STRING_KEYS = ("modality", "geometry")
_SCALAR_KEYS = ("detector_spacing", "noise_std", "center_offset", "source_origin", "origin_detector")
_CONTRACT_KEYS = {
    "tomography": (
        "image_shape",
        "sinogram",
        "angles",
        "detector_spacing",
        "ground_truth",
        "noise_std",
        "geometry",
        "center_offset",
        "source_origin",
        "origin_detector",
    ),
    # Measurements.to_dict holds detector_spacing (1.0) for MRI too, so MRI files carry it.
    "mri": ("image_shape", "kspace", "mask", "trajectory", "coil_maps", "ground_truth", "noise_std", "detector_spacing"),
}
_REQUIRED_KEYS = {
    "tomography": ("modality", "image_shape", "sinogram", "angles"),
    "mri": ("modality", "image_shape", "kspace"),  # and 'mask' or 'trajectory'
}

#: Prefix of a solver's extra arrays (e.g. the PSM factors) in a reconstruction file.
EXTRAS_PREFIX = "extras/"
_RECONSTRUCTION_KEYS = ("reconstruction", "method", "params", "history", "elapsed_seconds")

def _string_array(text: str) -> np.ndarray:
    """A 0-d unicode array (never an object array)."""
    return np.array(str(text), dtype=np.str_)


def _plain_array(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.hasobject:
        raise ValueError(f"cannot save {name!r}: object arrays cannot be stored without pickling")
    return array


def _write_npz(arrays: dict[str, np.ndarray]) -> Callable[[str], None]:
    def write(temporary: str) -> None:
        # An open file keeps numpy from appending ".npz" to the temporary name.
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)

    return write


def _write_h5(arrays: dict[str, np.ndarray]) -> Callable[[str], None]:
    def write(temporary: str) -> None:
        import h5py

        with h5py.File(temporary, "w") as handle:
            for name, array in arrays.items():
                if array.dtype.kind == "U":
                    handle.create_dataset(name, data=str(array[()]), dtype=h5py.string_dtype("utf-8"))
                else:
                    handle.create_dataset(name, data=array)

    return write


def _suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise FileFormatError(
            f"unknown file extension {path.suffix or '(none)'!r} for {what} {path}; "
            f"expected one of {', '.join(allowed)}"
        )
    return suffix


def save_measurements(path, measurements: Measurements) -> Path:
    """Write measurements as ``.npz`` or ``.h5`` (chosen by the extension), atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ending in ``.npz``, ``.h5`` or ``.hdf5``; its directory must exist.
    measurements : Measurements
        Validated again before writing. ``measurements.extra`` must be empty: a file
        holds the contract keys only (the loader refuses any other key).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    path = Path(path)
    suffix = _suffix(path, NPZ_SUFFIXES + HDF5_SUFFIXES, "a measurement file")
    if not isinstance(measurements, Measurements):
        raise TypeError(f"save_measurements expects a Measurements object, got {type(measurements).__name__}")
    measurements.validate()
    arrays = {}
    for name, value in measurements.to_dict().items():
        arrays[name] = _string_array(value) if name in _STRING_KEYS else _plain_array(name, value)
    if measurements.extra:
        raise ValueError(
            f"cannot save extra entries {', '.join(map(repr, sorted(measurements.extra)))}: a measurement file holds "
            "only the keys of its contract (docs/design.md), and loading refuses any other key"
        )
    if suffix in HDF5_SUFFIXES:
        for name, array in arrays.items():
            if array.dtype.kind == "U" and array.ndim > 0:
                raise ValueError(f"cannot save {name!r} to HDF5: only single strings are stored, not arrays of text")
    writer = _write_npz(arrays) if suffix in NPZ_SUFFIXES else _write_h5(arrays)
    return write_atomic(path, writer)


# ---------------------------------------------------------------------------------------
# Safe reading

#: The dtype each measurement key is converted to (counted at read time, see io/safe.py);
#: None: kept as stored.
_MEASUREMENT_DTYPES = {
    "modality": None,
    "image_shape": np.dtype(np.int64),
    "sinogram": np.dtype(np.float32),
    "angles": np.dtype(np.float64),
    "detector_spacing": np.dtype(np.float64),
    "kspace": np.dtype(np.complex64),
    "mask": np.dtype(bool),
    "trajectory": np.dtype(np.float64),
    "coil_maps": np.dtype(np.complex64),
    "ground_truth": np.dtype(np.float32),
    "noise_std": np.dtype(np.float64),
    "geometry": None,
    "center_offset": np.dtype(np.float64),
    "source_origin": np.dtype(np.float64),
    "origin_detector": np.dtype(np.float64),
}


class _Keys:
    """The entries of a file that are read (all others are never touched, only named).

    ``dtypes`` maps a wanted name to the dtype it is converted to (None: as stored);
    names starting with ``prefix`` are wanted too, as stored.
    """

    def __init__(self, dtypes: dict[str, np.dtype | None], prefix: str | None = None):
        self.dtypes = dtypes
        self.prefix = prefix

    def wants(self, name: str) -> bool:
        return name in self.dtypes or (self.prefix is not None and name.startswith(self.prefix))

    def converted(self, name: str) -> np.dtype | None:
        return self.dtypes.get(name)


#: What is read of a reconstruction file: its keys (the image counted as float32) and the extras.
_RECONSTRUCTION_READ = _Keys(
    {**dict.fromkeys(_RECONSTRUCTION_KEYS), "stop_reason": None, "reconstruction": np.dtype(np.float32)},
    prefix=EXTRAS_PREFIX,
)


def _read_npz(path: Path, keys: _Keys, max_bytes: int | None) -> tuple[dict[str, np.ndarray], list[str]]:
    if not zipfile.is_zipfile(path):
        raise FileFormatError(f"{path} is not a .npz file (not a zip archive)")
    budget = SizeBudget(path, max_bytes)
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
            names = [info.filename[: -len(".npy")] for info in members]
            for name, info in zip(names, members):
                if keys.wants(name):
                    arrays[name] = read_npy_member(path, archive, info, name, budget, keys.converted(name))
    except FileFormatError:
        raise
    except _READ_ERRORS as exc:
        raise FileFormatError(f"{path} is not a readable .npz file: {first_line(exc)}") from None
    return arrays, names


def _check_h5_storage(path: Path, name: str, item) -> None:
    """Refuse a dataset whose data were never (completely) written: HDF5 would make them up
    from the fill value, so a file of a few kilobytes could become any size."""
    layout = item.id.get_create_plist().get_layout()
    if item.chunks is not None:
        expected = math.prod(-(-int(s) // int(c)) for s, c in zip(item.shape, item.chunks))
        stored = item.id.get_num_chunks()
        if stored != expected:
            raise FileFormatError(
                f"{path}: dataset {name!r} has {stored} of its {expected} chunks written; refusing to fill "
                "the rest with made-up values"
            )
    elif layout == 1 and item.id.get_storage_size() < item.size * item.dtype.itemsize:  # H5D_CONTIGUOUS
        raise FileFormatError(f"{path}: dataset {name!r} was never written (no data stored); refusing to load it")


def _h5_dataset(path: Path, handle, name: str):
    """The dataset ``name`` of an open HDF5 file, refused unless its data are in this file
    (a hard link to a dataset with a shape, neither virtual nor external)."""
    import h5py

    link = handle.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise FileFormatError(f"{path}: {name!r} is a soft or external link; refusing to follow it")
    item = handle[name]
    if isinstance(item, h5py.Group):
        raise FileFormatError(f"{path}: {name!r} is a group; expected a dataset")
    if item.is_virtual or item.external:
        raise FileFormatError(f"{path}: dataset {name!r} stores its data in other files; refusing to load")
    if item.shape is None:
        raise FileFormatError(f"{path}: dataset {name!r} is empty (no shape)")
    return item


def _read_h5(path: Path, keys: _Keys, max_bytes: int | None) -> tuple[dict[str, np.ndarray], list[str]]:
    import h5py

    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path} is not an HDF5 file")
    budget = SizeBudget(path, max_bytes)
    values: dict[str, np.ndarray] = {}
    try:
        with h5py.File(path, "r") as handle:
            datasets = {}
            names = list(handle)
            for name in names:
                if not keys.wants(name):
                    continue  # not asked for: never opened
                item = _h5_dataset(path, handle, name)
                string_info = h5py.check_string_dtype(item.dtype)
                if string_info is not None:
                    if item.shape != ():
                        raise FileFormatError(f"{path}: dataset {name!r} holds an array of strings; expected a scalar")
                    if string_info.length is not None:  # fixed length: declared like an array
                        budget.claim(name, (), np.dtype(f"S{max(1, string_info.length)}"))
                        _check_h5_storage(path, name, item)
                    # A variable-length string declares no length, but it cannot outgrow the
                    # file: HDF5 keeps variable-length data uncompressed in the file's heap.
                    datasets[name] = ("string", item)
                    continue
                if item.dtype.kind == "O" or item.dtype.kind == "V":
                    raise FileFormatError(
                        f"{path}: dataset {name!r} holds object, reference, variable-length or compound "
                        "data; refusing to load"
                    )
                check_dtype(path, name, item.dtype)
                budget.claim(name, item.shape, item.dtype, keys.converted(name))
                _check_h5_storage(path, name, item)
                datasets[name] = ("array", item)
            for name, (kind, item) in datasets.items():
                # Strings come back as 0-d unicode arrays, as from a .npz file.
                values[name] = np.array(item.asstr()[()], dtype=np.str_) if kind == "string" else np.asarray(item[()])
    except FileFormatError:
        raise
    except _READ_ERRORS as exc:
        raise FileFormatError(f"{path} is not a readable HDF5 file: {first_line(exc)}") from None
    return values, names


def _read_arrays(
    path, keys: _Keys, max_bytes: int | None, what: str, suffixes: tuple[str, ...]
) -> tuple[Path, dict[str, np.ndarray], list[str]]:
    """Read the entries ``keys`` wants; returns the path, those arrays and the names of all
    entries (``.npy`` members, top-level HDF5 names), of which nothing else is read."""
    path = Path(path)
    suffix = _suffix(path, suffixes, what)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist" + (" (it is a directory)" if path.is_dir() else ""))
    reader = _read_npz if suffix in NPZ_SUFFIXES else _read_h5
    return (path, *reader(path, keys, max_bytes))


def _as_string(path: Path, name: str, value) -> str:
    array = np.asarray(value)
    if array.ndim != 0 or array.dtype.kind not in "US":
        raise FileFormatError(f"{path}: {name!r} must be a string, got {array.dtype} array of shape {array.shape}")
    item = array[()]
    try:
        return item.decode("utf-8") if isinstance(item, bytes) else str(item)
    except UnicodeDecodeError:
        raise FileFormatError(f"{path}: {name!r} is not valid UTF-8 text") from None


def _as_scalar(path: Path, name: str, value) -> float:
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "biuf":
        raise FileFormatError(
            f"{path}: {name!r} must be a single real number, got {array.dtype} of shape {array.shape}"
        )
    return float(array.reshape(()))


def _refuse_unknown_keys(path: Path, modality: str, names) -> None:
    """One error naming every key outside the modality's contract: the toolkit never guesses
    what unknown physics means (the keys are only named, their data are never read)."""
    known = {*_STRING_KEYS, *_CONTRACT_KEYS[modality]}
    unknown = sorted(name for name in names if name not in known)
    if unknown:
        raise FileFormatError(
            f"{path}: unknown key(s) {', '.join(map(repr, unknown))} in a {modality} measurement file; refusing "
            f"data whose description the toolkit does not understand (the contract keys are "
            f"{', '.join(sorted(known))}; see docs/design.md)"
        )


def _raw_acquisition_hint(names) -> str:
    """Advice for a file that is a raw acquisition rather than a measurement file."""
    if "exchange" in names:
        return "it looks like a raw Data Exchange acquisition: convert it with `imaging import FILE -o MEASUREMENT`"
    if any(name.startswith("entry") for name in names):
        return "it may be a raw (e.g. NXtomo) acquisition: convert it with `imaging import FILE -o MEASUREMENT`"
    return ""


def load_measurements(path, *, max_bytes: int | None = None, ground_truth: bool = True) -> Measurements:
    """Read and validate a measurement file (``.npz``, ``.h5`` or ``.hdf5``).

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int, optional
        Refuse the file when its arrays, counted as stored plus as converted to the
        contract's dtypes, take more than this many bytes (each or together), checked
        before they are read. Default :data:`DEFAULT_MAX_BYTES`; the memory available to
        the process lowers it further (:func:`imaging.io.safe.read_limit`).
    ground_truth : bool
        False: leave the file's ``ground_truth`` unread (the result has none), e.g. to
        score against it block by block with :func:`open_ground_truth` instead of
        holding it in memory.

    Returns
    -------
    Measurements
        Exactly the file's keys. A key outside the contract of its modality is refused
        by its name (its data are never read).

    Raises
    ------
    FileNotFoundError
        No such file.
    FileFormatError
        Unknown extension, not a zip/HDF5 file, pickled or object data, oversize
        arrays, missing or unknown keys, unknown modality, non-string/non-scalar entries.
    MeasurementError
        Contents violate the contract (shapes, dtypes, NaN/inf, consistency).
    """
    suffixes = NPZ_SUFFIXES + HDF5_SUFFIXES
    # The modality decides which keys belong to the file; any other key is refused by its
    # name, before anything else is read (its data never are).
    path, values, names = _read_arrays(path, _Keys({"modality": None}), max_bytes, "measurement file", suffixes)
    if "modality" not in values:
        hint = _raw_acquisition_hint(names)
        raise FileFormatError(f"{path}: missing required key 'modality'" + (f"; {hint}" if hint else ""))
    modality = _as_string(path, "modality", values["modality"])
    if modality not in MODALITIES:
        raise FileFormatError(f"{path}: unknown modality {modality!r}; expected one of {', '.join(MODALITIES)}")
    _refuse_unknown_keys(path, modality, names)
    wanted = [name for name in _CONTRACT_KEYS[modality] if ground_truth or name != "ground_truth"]
    contract = _Keys({name: _MEASUREMENT_DTYPES[name] for name in wanted})
    path, values, _ = _read_arrays(path, contract, max_bytes, "measurement file", suffixes)
    missing = [key for key in _REQUIRED_KEYS[modality] if key not in values and key != "modality"]
    if modality == "mri" and "mask" not in values and "trajectory" not in values:
        missing.append("mask (Cartesian) or trajectory (non-Cartesian)")
    if missing:
        raise FileFormatError(f"{path}: {modality} file is missing required key(s): {', '.join(missing)}")
    fields: dict[str, Any] = {"modality": modality}
    for name, value in values.items():
        if name in _STRING_KEYS:
            fields[name] = _as_string(path, name, value)
        elif name in _SCALAR_KEYS:
            fields[name] = _as_scalar(path, name, value)
        else:
            if value.dtype.kind in "US":
                raise FileFormatError(f"{path}: {name!r} must be a numeric array, got text")
            fields[name] = value
    if fields["image_shape"].dtype.kind not in "iu":
        raise FileFormatError(f"{path}: 'image_shape' must hold integers, got dtype {fields['image_shape'].dtype}")
    try:
        return Measurements(**fields)
    except MeasurementError as exc:
        raise MeasurementError(f"{path}: {exc}") from None


# ---------------------------------------------------------------------------------------
# Reconstruction files


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"value of type {type(value).__name__} is not JSON serialisable")


def _reconstruction_array(reconstruction) -> np.ndarray:
    array = np.asarray(reconstruction)
    if array.ndim not in (3, 4) or array.dtype.kind not in "biufc":
        raise ValueError(
            f"'reconstruction' must be a real or complex (P, N, N) or (P, Z, N, N) array, got {array.dtype} of shape "
            f"{array.shape}"
        )
    return array.astype(np.complex64 if array.dtype.kind == "c" else np.float32, copy=False)


def save_reconstruction(path, result) -> Path:
    """Write a reconstruction result atomically: ``.npz`` (all of it) or ``.tif`` (images).

    ``.npz`` keys: ``reconstruction`` float32 (P, N, N) (complex64 for complex images,
    MRI), ``method`` str, ``params`` JSON str, ``history`` JSON str, ``elapsed_seconds``
    float64, ``stop_reason`` str, and each solver extra ``name`` as ``extras/name``.
    ``.tif``/``.tiff``: the (P, N, N) float32 stack (the magnitude of complex images, with
    ``"values": "magnitude"`` in the metadata) as an ImageJ hyperstack (axes TYX) whose
    ``Info`` property holds the other fields as JSON.

    Parameters
    ----------
    path : str or os.PathLike
        Destination ending in ``.npz``, ``.tif`` or ``.tiff``; its directory must exist.
    result : imaging.ReconstructionResult

    Returns
    -------
    pathlib.Path
        The written file.
    """
    path = Path(path)
    suffix = _suffix(path, NPZ_SUFFIXES + TIFF_SUFFIXES, "a reconstruction file")
    reconstruction = _reconstruction_array(result.reconstruction)
    metadata = {
        "method": str(result.method),
        "params": json.dumps(result.params, default=_json_default, allow_nan=True),
        "history": json.dumps(result.history, default=_json_default, allow_nan=True),
        "elapsed_seconds": float(result.elapsed_seconds),
        "stop_reason": str(result.stop_reason),
    }
    if suffix in TIFF_SUFFIXES:
        import tifffile

        if reconstruction.dtype.kind == "c":
            metadata["values"] = "magnitude"
        shown = magnitude_image(reconstruction)

        def write(temporary: str) -> None:
            tifffile.imwrite(
                temporary,
                shown,
                imagej=True,
                metadata={"axes": "TYX" if reconstruction.ndim == 3 else "TZYX", "Info": json.dumps(metadata)},
            )

        return write_atomic(path, write)
    arrays = {
        "reconstruction": reconstruction,
        "method": _string_array(metadata["method"]),
        "params": _string_array(metadata["params"]),
        "history": _string_array(metadata["history"]),
        "elapsed_seconds": np.float64(metadata["elapsed_seconds"]),
        "stop_reason": _string_array(metadata["stop_reason"]),
    }
    for name, value in (result.extras or {}).items():
        arrays[EXTRAS_PREFIX + str(name)] = _plain_array(f"extras[{name!r}]", value)
    return write_atomic(path, _write_npz(arrays))


def _parse_json(path: Path, name: str, text: str, expected: type):
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        raise FileFormatError(f"{path}: {name!r} is not valid JSON text ({first_line(exc)})") from None
    if not isinstance(value, expected):
        raise FileFormatError(f"{path}: {name!r} must be a JSON {expected.__name__}, got {type(value).__name__}")
    return value


def _read_tiff(path: Path, max_bytes: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    budget = SizeBudget(path, max_bytes)
    stack, imagej_metadata = read_tiff(path, "reconstruction", budget, converted=np.dtype(np.float32))
    info = imagej_metadata.get("Info")
    if stack.ndim == 2:
        stack = stack[None]
    # A TIFF from another program may carry any text as Info; only ours is JSON metadata.
    try:
        metadata = json.loads(info) if isinstance(info, str) and info else {}
    except (json.JSONDecodeError, RecursionError):
        metadata = {}
    return stack, metadata if isinstance(metadata, dict) else {}


def load_reconstruction(path, *, max_bytes: int | None = None):
    """Read a reconstruction file written by :func:`save_reconstruction`.

    Parameters
    ----------
    path : str or os.PathLike
        ``.npz`` (all contract keys required) or ``.tif``/``.tiff`` (the image stack;
        the other fields come from its ImageJ ``Info`` when present, else defaults).
    max_bytes : int, optional
        Refuse arrays that declare more than this many bytes, before reading them
        (default as :func:`load_measurements`).

    Returns
    -------
    imaging.ReconstructionResult
        ``reconstruction`` float32 (P, N, N), complex64 when the file holds complex
        images (``.npz`` only: a ``.tif`` holds their magnitude); ``extras`` the
        ``extras/`` arrays.

    Raises
    ------
    FileNotFoundError, FileFormatError
        As :func:`load_measurements`; also for a reconstruction that is not a finite
        real (P, N, N) array or params/history that are not JSON.
    """
    path = Path(path)
    if _suffix(path, NPZ_SUFFIXES + TIFF_SUFFIXES, "a reconstruction file") in TIFF_SUFFIXES:
        if not path.is_file():
            raise FileNotFoundError(f"reconstruction file {path} does not exist")
        reconstruction, metadata = _read_tiff(path, max_bytes)
        fields = {
            "method": str(metadata.get("method", "")),
            "params": _parse_json(path, "params", metadata.get("params", "{}"), dict),
            "history": _parse_json(path, "history", metadata.get("history", "[]"), list),
            "elapsed_seconds": _as_scalar(path, "elapsed_seconds", metadata.get("elapsed_seconds", 0.0)),
            "stop_reason": str(metadata.get("stop_reason", "")),
        }
        extras = {}
    else:
        path, values, _ = _read_arrays(path, _RECONSTRUCTION_READ, max_bytes, "reconstruction file", NPZ_SUFFIXES)
        missing = [key for key in _RECONSTRUCTION_KEYS if key not in values]
        if missing:
            raise FileFormatError(f"{path}: reconstruction file is missing required key(s): {', '.join(missing)}")
        reconstruction = values["reconstruction"]
        fields = {
            "method": _as_string(path, "method", values["method"]),
            "params": _parse_json(path, "params", _as_string(path, "params", values["params"]), dict),
            "history": _parse_json(path, "history", _as_string(path, "history", values["history"]), list),
            "elapsed_seconds": _as_scalar(path, "elapsed_seconds", values["elapsed_seconds"]),
            "stop_reason": _as_string(path, "stop_reason", values.get("stop_reason", np.str_(""))),
        }
        extras = {
            name[len(EXTRAS_PREFIX) :]: value for name, value in values.items() if name.startswith(EXTRAS_PREFIX)
        }
    reconstruction = image_stack(path, "reconstruction", reconstruction, allow_complex=True)
    return ReconstructionResult(reconstruction=reconstruction, extras=extras, **fields)


def image_stack(path, name: str, array: np.ndarray, allow_complex: bool = False) -> np.ndarray:
    """``array`` as a float32 (P, N, N) or (P, Z, N, N) image stack, or :class:`FileFormatError`
    when it is not a finite real stack that fits float32 (``path`` and ``name`` name it);
    with ``allow_complex`` a complex stack is kept, as complex64."""
    kinds = "biufc" if allow_complex else "biuf"
    if array.ndim not in (3, 4) or array.dtype.kind not in kinds:
        raise FileFormatError(
            f"{path}: {name!r} must be a real{' or complex' if allow_complex else ''} (P, N, N) or (P, Z, N, N) "
            f"array, got {array.dtype} of shape {array.shape}"
        )
    parts = (array.real, array.imag) if array.dtype.kind == "c" else (array,)
    limit = np.finfo(np.float32).max
    if not all(np.all(np.isfinite(part)) and (not part.size or float(np.abs(part).max()) <= limit) for part in parts):
        raise FileFormatError(f"{path}: {name!r} contains NaN or infinite values (or values beyond float32)")
    return array.astype(np.complex64 if array.dtype.kind == "c" else np.float32, copy=False)


def load_coil_maps(path, *, max_bytes: int | None = None) -> np.ndarray:
    """Coil maps kept in a file, for reuse in another reconstruction.

    Parameters
    ----------
    path : str or os.PathLike
        A reconstruction file (``.npz``) whose ``extras/coil_maps`` the runner stored
        when it estimated the maps, or a measurement file (``.npz``, ``.h5``) with
        ``coil_maps``; nothing else of the file is read.
    max_bytes : int, optional
        As :func:`load_measurements`.

    Returns
    -------
    numpy.ndarray
        complex64 (C, H, W) or, from a volume, (Z, C, H, W); finite.
    """
    names = (EXTRAS_PREFIX + "coil_maps", "coil_maps")
    keys = _Keys(dict.fromkeys(names, np.dtype(np.complex64)))
    path, values, _ = _read_arrays(path, keys, max_bytes, "coil-map file", NPZ_SUFFIXES + HDF5_SUFFIXES)
    found = [values[name] for name in names if name in values]
    if not found:
        raise FileFormatError(f"{path} holds no coil maps (neither 'extras/coil_maps' nor 'coil_maps')")
    maps = found[0]
    if maps.ndim not in (3, 4) or maps.dtype.kind not in "fc":
        raise FileFormatError(
            f"{path}: coil maps must be a complex (C, H, W) or (Z, C, H, W) array, got {maps.dtype} of shape {maps.shape}"
        )
    if not np.all(np.isfinite(maps)):
        raise FileFormatError(f"{path}: the coil maps contain NaN or infinite values")
    return maps.astype(np.complex64, copy=False)


__all__ = [
    "DEFAULT_MAX_BYTES",
    "load_coil_maps",
    "FileFormatError",
    "load_measurements",
    "save_measurements",
    "load_reconstruction",
    "save_reconstruction",
]
