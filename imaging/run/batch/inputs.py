"""The inputs of a batch: measurement files named by files, folders, glob patterns and manifests."""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

MEASUREMENT_SUFFIXES = (".npz", ".h5", ".hdf5")
MANIFEST_SUFFIXES = (".txt", ".lst", ".yaml", ".yml")
_GLOB_CHARACTERS = "*?["


class BatchError(ValueError):
    """Bad batch input (no files found, an unreadable manifest, clashing output names, an
    output folder that holds the inputs, conflicting cluster options): nothing was run."""


def _read_manifest(path: Path) -> list[str]:
    """The entries of a manifest: one per line (``#`` comments), or a YAML list."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise BatchError(f"cannot read manifest {path}: {exc.strerror}") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise BatchError(f"manifest {path} is not valid YAML: {exc}") from None
        if isinstance(data, dict) and set(data) == {"inputs"}:
            data = data["inputs"]
        if not isinstance(data, list) or not all(isinstance(entry, str) for entry in data):
            raise BatchError(f"manifest {path} must be a YAML list of paths (or a mapping 'inputs: [paths]')")
        return data
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def _measurement_files(paths: Iterable[str | Path]) -> list[Path]:
    return sorted(Path(p) for p in paths if Path(p).suffix.lower() in MEASUREMENT_SUFFIXES and Path(p).is_file())


def _expand(entry: str | os.PathLike, base: Path | None, manifest: Path | None) -> list[Path]:
    text = os.fspath(entry)
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    where = f" (listed in {manifest})" if manifest is not None else ""
    if any(c in text for c in _GLOB_CHARACTERS) and not path.exists():
        files = _measurement_files(glob.glob(str(path), recursive=True))
        if not files:
            raise BatchError(f"pattern {text!r}{where} matches no measurement file ({', '.join(MEASUREMENT_SUFFIXES)})")
        return files
    if path.is_dir():
        files = _measurement_files(path.iterdir())
        if not files:
            raise BatchError(f"folder {path}{where} holds no measurement file ({', '.join(MEASUREMENT_SUFFIXES)})")
        return files
    suffix = path.suffix.lower()
    if suffix in MANIFEST_SUFFIXES:
        if manifest is not None:
            raise BatchError(f"manifest {manifest} lists another manifest, {text}; list files, folders or patterns")
        if not path.is_file():
            raise BatchError(f"manifest {path} does not exist")
        return [p for e in _read_manifest(path) for p in _expand(e, base=path.parent, manifest=path)]
    if suffix in MEASUREMENT_SUFFIXES:
        return [path]  # a missing file is reported as a failed item, not a batch error
    raise BatchError(
        f"{text}{where} is not a measurement file ({', '.join(MEASUREMENT_SUFFIXES)}), a folder, a glob "
        f"pattern or a manifest ({', '.join(MANIFEST_SUFFIXES)})"
    )


def collect_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Measurement files named by ``inputs``, in order, without duplicates.

    Parameters
    ----------
    inputs : sequence of str or path
        Each one a measurement file (.npz, .h5, .hdf5), a folder (its measurement files,
        not recursive), a glob pattern (``"scans/*.npz"``, ``"**"`` is recursive) or a
        manifest: a text file (.txt, .lst) with one entry per line (``#`` starts a
        comment) or a YAML file (.yaml, .yml) holding a list of entries; entries are
        files, folders or patterns, relative to the manifest's folder.

    Returns
    -------
    list of pathlib.Path
        Absolute paths.

    Raises
    ------
    BatchError
        A pattern or folder that yields no file, an unreadable manifest, an input of
        unknown kind, or no input at all. A named file that does not exist is not an
        error here; :func:`imaging.run.batch.reconstruct_many` reports it as a failed item.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: dict[Path, None] = {}
    for entry in inputs:
        for path in _expand(entry, base=None, manifest=None):
            files.setdefault(Path(os.path.abspath(path)), None)
    if not files:
        raise BatchError("no inputs given: name measurement files, folders, glob patterns or manifests")
    return list(files)


def file_digest(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hexadecimal digits.

    The batch keys an input's work files (checkpoints, finished slices) and the record in
    its output by this digest, so that two inputs of the same name, or an input changed
    in place, never share them.
    """
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
