"""Denoiser weights files: safe loading, atomic saving and provenance checks.

A weights file is a ``torch.save`` of a plain dictionary::

    {"format": "imaging-dncnn", "version": 1,
     "architecture": {"depth": int, "width": int, "residual": bool,
                      "bias": bool, "dilations": [int, ...],    # optional
                      "members": int},                         # optional: an ensemble
     "state_dict": {name: tensor, ...}}

It is read with ``torch.load(..., weights_only=True)``, which only rebuilds tensors and
plain containers, so a weights file cannot run code; a file holding a pickled module
is refused. Before that, the archive's unpacked size is checked against the memory
available (:func:`imaging.io.safe.load_torch_file`), and before the network is built its
tensors must match the recorded architecture, so a small file cannot allocate much.

Integrity: the shipped weights must match the SHA-256 pinned in
:data:`SHIPPED_SHA256`. Other weights are checked against the ``sha256`` of the
provenance JSON with the same stem when there is one; without it (or without a
``sha256`` in it) loading warns (:class:`UnverifiedWeightsWarning`) that the weights'
origin is not verified.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .._version import __version__
from ..io.atomic import write_atomic, write_text_atomic
from ..io.safe import FileFormatError, first_line, load_torch_file
from ..operators.base import resolve_device
from .dncnn import DnCNN, ensemble

WEIGHTS_FORMAT = "imaging-dncnn"
WEIGHTS_VERSION = 1

#: Names accepted by :func:`load_denoiser` instead of a path, mapped to files in
#: :func:`data_directory`.
SHIPPED_DENOISERS = {
    "default": "dncnn_v3.pt",
    "dncnn-v3": "dncnn_v3.pt",
    "dncnn-e3": "dncnn_e3.pt",
    "dncnn-v2": "dncnn_v2.pt",
    "dncnn-v1": "dncnn_v1.pt",
}

#: SHA-256 of each shipped weights file, checked on every load (a provenance file beside
#: the weights could be replaced together with them).
_V3_SHA256 = "177a72251d9f396837b6edf926a8eb45b0fad82c416b93dc2a9470045dcbde47"
SHIPPED_SHA256 = {
    "default": _V3_SHA256,
    "dncnn-v3": _V3_SHA256,
    "dncnn-e3": "7d83a8d2d95636e471f3ca437c5f2b3ea49463e75243e7b95a416d7bef9364de",
    "dncnn-v2": "751955ed00635b5822a1e290347c4fc6313e176535e6a85839f85eb7e4856c8a",
    "dncnn-v1": "96c8acc95adcbe405dd3836024b599f01e74796d28b0805147989f87dcd40a76",
}


def data_directory() -> Path:
    """The folder of the shipped denoiser weights: ``imaging/data/denoiser`` (package data,
    so it is in the wheel and found from any installation)."""
    return Path(__file__).resolve().parents[1] / "data" / "denoiser"


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
    # Serialised in memory: saved to a path, torch names the archive's root folder after the
    # (temporary) file name, so the same weights would get another SHA-256 every time.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    write_atomic(path, lambda temporary: Path(temporary).write_bytes(buffer.getvalue()), make_parents=True)
    return file_sha256(path)


def weights_record(model: DnCNN, weights_path: str | os.PathLike, sha256: str) -> dict:
    """The first entries of a provenance record: the weights file's name and SHA-256, the
    network's architecture, parameter count and receptive field."""
    return {
        "weights_file": Path(weights_path).name,
        "sha256": sha256,
        "architecture": model.architecture,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "receptive_field": model.receptive_field,
    }


def write_provenance(weights_path: str | os.PathLike, provenance: dict) -> Path:
    """Write ``provenance`` atomically as JSON beside ``weights_path`` and return its path."""
    target = provenance_path(weights_path)
    text = json.dumps(provenance, indent=2, sort_keys=False) + "\n"
    return write_text_atomic(target, text, make_parents=True)


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


class UnverifiedWeightsWarning(UserWarning):
    """Denoiser weights whose integrity cannot be checked (no provenance SHA-256)."""


#: Provenance JSON files larger than this are refused (ours are a few kilobytes).
_MAX_PROVENANCE_BYTES = 1 << 20


def _verify_integrity(path: Path) -> str | None:
    """Check the SHA-256 of a weights file: the digest pinned in :data:`SHIPPED_SHA256` for
    the shipped weights, else the one its provenance JSON records. Returns the warning to
    give once the weights have loaded when there is no digest to check, else None."""
    # Several shipped names may point at one file ("default" and its versioned name): every
    # digest pinned for it must match.
    pinned = {SHIPPED_SHA256[key] for key, name in SHIPPED_DENOISERS.items()
              if (data_directory() / name).resolve() == path.resolve()}
    if pinned:
        expected = sorted(pinned, key=lambda digest: digest == file_sha256(path))[0]  # a mismatch first
        source = "the digest pinned for the shipped weights"
    else:
        prov_file = provenance_path(path)
        if not prov_file.is_file():
            return (
                f"denoiser weights {path} have no provenance file {prov_file.name}: their origin and integrity "
                "are not verified"
            )
        if prov_file.stat().st_size > _MAX_PROVENANCE_BYTES:
            raise ValueError(f"provenance file {prov_file} is larger than {_MAX_PROVENANCE_BYTES} bytes")
        try:
            provenance = json.loads(prov_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as err:
            raise ValueError(f"provenance file {prov_file} is not valid JSON: {first_line(err)}") from None
        expected = provenance.get("sha256") if isinstance(provenance, dict) else None
        if not isinstance(expected, str):
            return f"the provenance file {prov_file.name} of {path} records no sha256: their integrity is not verified"
        source = f"its provenance file {prov_file.name}"
    actual = file_sha256(path)
    if actual != expected:
        raise ValueError(
            f"SHA-256 of {path} is {actual} but {source} records {expected}: "
            "the weights were modified or corrupted"
        )
    return None


def _read_payload(path: Path) -> dict:
    try:
        payload = load_torch_file(path, what="denoiser weights file")
    except FileFormatError as err:
        raise ValueError(str(err)) from None
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
        or not {"depth", "width", "residual"} <= set(arch) <= {"depth", "width", "residual", "bias", "dilations",
                                                              "members"}
        or not all(isinstance(arch.get(k, 1), int) and not isinstance(arch.get(k, 1), bool)
                   for k in ("depth", "width", "members"))
        or not all(isinstance(arch.get(k, True), bool) for k in ("residual", "bias"))
        or not isinstance(arch.get("dilations", []), list)
        or not isinstance(payload.get("state_dict"), dict)
    ):
        raise ValueError(
            f"{path} has an invalid architecture record: expected "
            "{'depth': int, 'width': int, 'residual': bool} (optionally 'bias': bool, "
            "'dilations': [int, ...], 'members': int) and a state_dict"
        )
    _check_state_fits(path, arch, payload["state_dict"])
    return payload


def _check_state_fits(path: Path, arch: dict, state: dict) -> None:
    """Refuse weights that do not match the recorded architecture, before the network is
    built: a small file declaring ``width=4000`` must not allocate gigabytes."""
    # Two tensors (weight, bias) per layer, one without biases: bounds the depth by what the file holds.
    per_layer = 2 if arch.get("bias", True) else 1
    if not 2 <= arch["depth"] == len(state) // per_layer or len(state) % per_layer or arch["width"] < 1:
        raise ValueError(
            f"{path}: weights do not fit the recorded architecture {arch}: {len(state)} tensors for depth "
            f"{arch['depth']}"
        )
    with torch.device("meta"):  # shapes only, nothing allocated
        try:
            expected = {name: (tuple(t.shape), t.dtype) for name, t in DnCNN(**arch).state_dict().items()}
        except ValueError as err:  # e.g. dilations that do not fit the depth
            raise ValueError(f"{path}: invalid architecture record {arch}: {err}") from None
    found = {name: (tuple(t.shape), t.dtype) if isinstance(t, torch.Tensor) else type(t).__name__
             for name, t in state.items()}
    if found != expected:
        wrong = sorted(name for name in set(expected) | set(found) if expected.get(name) != found.get(name))
        raise ValueError(
            f"{path}: weights do not fit the recorded architecture {arch} (tensor(s) {', '.join(wrong[:3])})"
        )
    if not all(bool(torch.isfinite(t).all()) for t in state.values()):
        raise ValueError(f"{path}: the weights hold NaN or infinite values")


def load_denoiser(name_or_path: str | os.PathLike = "default", device: str | torch.device = "cpu") -> nn.Module:
    """Load a DnCNN denoiser from the tensors-only weights format.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        ``"default"`` for the shipped weights ``imaging/data/denoiser/dncnn_v3.pt`` (also
        ``"dncnn-v3"``; ``"dncnn-e3"`` is the ensemble of v3 and two networks trained
        like it with seeds 1 and 2; ``"dncnn-v2"`` and ``"dncnn-v1"`` are the earlier
        defaults, v1 with biases), or the
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
        the recorded architecture, or does not match its pinned or provenance SHA-256.

    Warns
    -----
    UnverifiedWeightsWarning
        User weights without a provenance SHA-256.
    """
    path = resolve_weights_path(name_or_path)
    unverified = _verify_integrity(path)
    payload = _read_payload(path)
    arch = payload["architecture"]
    try:
        model = DnCNN(**arch)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: weights do not fit the recorded architecture {arch}: {first_line(err)}") from None
    model.to(resolve_device(device)).eval()
    model.requires_grad_(False)
    if unverified:
        warnings.warn(unverified, UnverifiedWeightsWarning, stacklevel=2)
    return model


def _member_provenance(name_or_path, path: Path) -> dict:
    """What an ensemble records of one member: its name or file, SHA-256 and training record."""
    record = {"member": str(name_or_path), "sha256": file_sha256(path)}
    prov_file = provenance_path(path)
    if prov_file.is_file() and prov_file.stat().st_size <= _MAX_PROVENANCE_BYTES:
        try:
            training = json.loads(prov_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            training = None  # already refused by load_denoiser, which checked its sha256
        if isinstance(training, dict):
            record["provenance"] = training
    return record


def save_ensemble(members, output: str | os.PathLike, command: str | None = None) -> dict:
    """Combine trained denoisers into one ensemble weights file with provenance.

    Parameters
    ----------
    members : sequence of str or os.PathLike
        Two or more shipped names or weights files of single DnCNNs with one
        architecture (e.g. ``imaging train-denoiser`` runs that differ only in ``--seed``).
        Each is loaded (and its SHA-256 checked) as by :func:`load_denoiser`.
    output : str or os.PathLike
        The ensemble's weights file (``.pt``); its provenance JSON goes beside it. Both
        are written atomically, and nothing is written if a member cannot be used.
    command : str or None
        The command line, recorded in the provenance (None: this function call).

    Returns
    -------
    dict
        The provenance record: the ensemble's SHA-256 and architecture, and for each
        member its name, SHA-256 and training provenance.
    """
    names = list(members)
    if len(names) < 2:
        raise ValueError(f"an ensemble needs at least 2 member denoisers, got {len(names)}")
    output = Path(output)
    if output.suffix.lower() not in (".pt", ".pth"):
        raise ValueError(f"output must be a .pt (or .pth) weights file, got {str(output)!r}")
    paths = [resolve_weights_path(name) for name in names]
    if output.resolve() in {path.resolve() for path in paths}:
        raise ValueError(f"output {output} is one of the members; write the ensemble to a new file")
    with warnings.catch_warnings():
        # Members without a provenance SHA-256 are allowed, and their record says so.
        warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        networks = [load_denoiser(path) for path in paths]
    try:
        model = ensemble(networks)
    except ValueError as err:
        raise ValueError(f"cannot combine {', '.join(map(str, names))}: {err}") from None
    records = [_member_provenance(name, path) for name, path in zip(names, paths)]
    sha256 = save_denoiser(model, output)
    provenance = {
        **weights_record(model, output, sha256),
        "command": command if command is not None else f"imaging.denoisers.save_ensemble({[str(n) for n in names]!r}, "
        f"{str(output)!r})",
        "combination": "mean of the members' outputs (one network with grouped convolutions)",
        "members": records,
        "torch_version": torch.__version__,
        "imaging_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_provenance(output, provenance)
    return provenance
