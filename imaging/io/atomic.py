"""The one atomic writer of the toolkit.

Every file the toolkit writes (measurements, reconstructions, checkpoints, weights,
JSON summaries, napari exports) goes through :func:`write_atomic`, so all of them share
the same rules:

- the data is written to a temporary file in the target's own directory (a rename
  across file systems is not atomic), named ``.NAME.<random>.tmp`` and shortened when
  ``NAME`` is long, so that a legal target name never gives a too-long temporary name;
- the temporary file gets the permissions of an ordinary new file (``0o666`` minus the
  umask), is flushed to disk (``fsync``) and then renamed onto the target in one step;
- on any failure (including ``KeyboardInterrupt``) the temporary file is removed and the
  old target, if any, is left untouched; a symbolic link at the target is replaced, never
  followed.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

#: Longest file name most file systems accept (bytes).
_NAME_MAX = 255
_TMP_OVERHEAD = len(".") + 1 + 12 + len(".tmp")


def _temporary_name(name: str) -> str:
    stem = name
    while len(os.fsencode(stem)) + _TMP_OVERHEAD > _NAME_MAX:
        stem = stem[: len(stem) - 1]
    return f".{stem}.{uuid.uuid4().hex[:12]}.tmp"


def write_atomic(path, write: Callable[[str], None], *, make_parents: bool = False) -> Path:
    """Run ``write(temporary_path)`` and rename the result onto ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The target file.
    write : callable
        Called with the temporary file's path (a ``str``); it must write the whole file
        there (it may reopen and truncate it).
    make_parents : bool
        Create the target's missing parent directories first; otherwise a missing
        directory raises ``FileNotFoundError``.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    directory = path.parent
    if make_parents:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {directory} does not exist")
    temporary = directory / _temporary_name(path.name)
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        write(str(temporary))
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text: str, *, make_parents: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` with :func:`write_atomic`."""

    def write(temporary: str) -> None:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)

    return write_atomic(path, write, make_parents=make_parents)


def _strict(value):
    """``value`` with every non-finite float replaced by None (JSON has no NaN/Infinity)."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", None) == 0:
        return _strict(value.item())  # a NumPy scalar
    return value


def write_json_atomic(path, value, *, make_parents: bool = False) -> Path:
    """Write ``value`` as strict JSON with :func:`write_atomic`: NaN and infinities (an
    exact reconstruction's PSNR) become ``null``, other values JSON cannot hold (paths)
    their text."""
    import json

    text = json.dumps(_strict(value), indent=2, default=str, allow_nan=False) + "\n"
    return write_text_atomic(path, text, make_parents=make_parents)
