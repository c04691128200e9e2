"""Denoiser weights files: safe loading, atomic saving and provenance checks.

A weights file is a ``torch.save`` of a plain dictionary::

    {"format": "imaging-dncnn", "version": 1,
     "architecture": {"depth": int, "width": int, "residual": bool},
     "state_dict": {name: tensor, ...}}

It is read with ``torch.load(..., weights_only=True)``, which only rebuilds tensors and
plain containers, so a weights file cannot run code; a file holding a pickled module
is refused. A provenance JSON with the same stem may sit beside the weights; when it
records a ``sha256``, the weights file must match it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..operators.base import resolve_device
from .dncnn import DnCNN

WEIGHTS_FORMAT = "imaging-dncnn"
WEIGHTS_VERSION = 1

#: Names accepted by :func:`load_denoiser` instead of a path, mapped to files in
#: :func:`data_directory`.
SHIPPED_DENOISERS = {"default": "dncnn_default.pt"}


def data_directory() -> Path:
    """The folder of the shipped denoiser weights: ``<repository>/data/denoiser``."""
    return Path(__file__).resolve().parents[2] / "data" / "denoiser"


def provenance_path(weights_path: str | os.PathLike) -> Path:
    """The provenance JSON that belongs to a weights file (same stem, ``.json``)."""
    return Path(weights_path).with_suffix(".json")


def file_sha256(path: str | os.PathLike) -> str:
    """Hexadecimal SHA-256 digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_module(model: nn.Module) -> str:
    """A JSON-friendly name of an in-memory denoiser: ``"module:<class>:sha256=<12 hex>"``.

    The digest covers every entry of ``model.state_dict()`` (name, dtype, shape and
    values, in order), so two modules with the same weights get the same name and a
    change of any weight changes it: a run records it among its parameters, and a
    checkpoint resumes only with the same weights.
    """
    digest = hashlib.sha256()
    for name, value in model.state_dict().items():
        digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return f"module:{type(model).__name__}:sha256={digest.hexdigest()[:12]}"


def _atomic_write(path: Path, write) -> None:
    """Call ``write(temporary_path)`` and move the result onto ``path`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp_name))
        # mkstemp creates the file private (0600); give it the permissions of a normal new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_denoiser(model: DnCNN, path: str | os.PathLike) -> str:
    """Write a DnCNN's weights atomically in the tensors-only format.

    Parameters
    ----------
    model : DnCNN
        The network; its parameters are copied to the CPU.
    path : str or os.PathLike
        Destination ``.pt`` file; an existing file is replaced only once the new one is
        complete.

    Returns
    -------
    str
        SHA-256 of the written file.
    """
    if not isinstance(model, DnCNN):
        raise TypeError(f"save_denoiser expects a DnCNN, got {type(model).__name__}")
    payload = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "architecture": model.architecture,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))
    return file_sha256(path)


def write_provenance(weights_path: str | os.PathLike, provenance: dict) -> Path:
    """Write ``provenance`` atomically as JSON beside ``weights_path`` and return its path."""
    target = provenance_path(weights_path)
    text = json.dumps(provenance, indent=2, sort_keys=False) + "\n"
    _atomic_write(target, lambda tmp: tmp.write_text(text))
    return target


def resolve_weights_path(name_or_path: str | os.PathLike) -> Path:
    """Turn a shipped name (see :data:`SHIPPED_DENOISERS`) or a file path into a path."""
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_DENOISERS:
        path = data_directory() / SHIPPED_DENOISERS[name_or_path]
        if not path.is_file():
            raise FileNotFoundError(
                f"shipped denoiser {name_or_path!r} is missing: expected {path}; "
                "reinstall the package or train one with `imaging train-denoiser`"
            )
        return path
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(repr(n) for n in SHIPPED_DENOISERS)
        raise FileNotFoundError(
            f"denoiser weights {str(name_or_path)!r} not found: expected one of {known} "
            "or the path of a .pt weights file"
        )
    return path


def _verify_provenance(path: Path) -> None:
    prov_file = provenance_path(path)
    if not prov_file.is_file():
        return
    try:
        provenance = json.loads(prov_file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"provenance file {prov_file} is not valid JSON: {err}") from None
    expected = provenance.get("sha256") if isinstance(provenance, dict) else None
    if expected is None:
        return
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"SHA-256 of {path} is {actual} but its provenance file {prov_file.name} "
            f"records {expected}: the weights were modified or corrupted"
        )


def _read_payload(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, AttributeError,
            TypeError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"{path} is not a tensors-only denoiser weights file (a pickled module or a "
            f"corrupt file is refused): {first_line}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(
            f"{path} is not an imaging denoiser weights file: expected a dictionary with "
            f"format {WEIGHTS_FORMAT!r}"
        )
    if payload.get("version") != WEIGHTS_VERSION:
        raise ValueError(
            f"{path} has weights format version {payload.get('version')!r}; this version of "
            f"imaging reads version {WEIGHTS_VERSION}"
        )
    arch = payload.get("architecture")
    if (
        not isinstance(arch, dict)
        or set(arch) != {"depth", "width", "residual"}
        or not all(isinstance(arch[k], int) and not isinstance(arch[k], bool) for k in ("depth", "width"))
        or not isinstance(arch["residual"], bool)
        or not isinstance(payload.get("state_dict"), dict)
    ):
        raise ValueError(
            f"{path} has an invalid architecture record: expected "
            "{'depth': int, 'width': int, 'residual': bool} and a state_dict"
        )
    return payload


def load_denoiser(name_or_path: str | os.PathLike = "default", device: str | torch.device = "cpu") -> nn.Module:
    """Load a DnCNN denoiser from the tensors-only weights format.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        ``"default"`` for the shipped weights ``data/denoiser/dncnn_default.pt``, or the
        path of a weights file written by :func:`save_denoiser` /
        :func:`~imaging.denoisers.train_denoiser`.
    device : str or torch.device
        Device for the parameters (``"cpu"``, ``"cuda"``, ``"auto"``).

    Returns
    -------
    torch.nn.Module
        A :class:`DnCNN` in eval mode whose parameters do not require gradients.
        Input/output float32 ``(B, 1, H, W)``.

    Raises
    ------
    FileNotFoundError
        The name is unknown or the file does not exist.
    ValueError
        The file is corrupt, holds a pickled object instead of tensors, does not fit
        the recorded architecture, or does not match the SHA-256 of its provenance JSON.
    """
    path = resolve_weights_path(name_or_path)
    _verify_provenance(path)
    payload = _read_payload(path)
    arch = payload["architecture"]
    try:
        model = DnCNN(arch["depth"], arch["width"], arch["residual"])
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not fit the recorded architecture {arch}: {first_line}") from None
    model.to(resolve_device(device)).eval()
    model.requires_grad_(False)
    return model
