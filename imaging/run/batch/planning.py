"""The client side of a batch, per input file: what is left to do, and what came of it.

Planning reads each input, skips it when its output is already finished, and otherwise
lists its tasks (one per 2D file, one per unfinished slice of a volume). Every failure
of one item (an unreadable, encrypted or malformed file, one too large for memory, a
damaged earlier output) is recorded in that item's row and never stops the others.

Work files live in ``OUTDIR/.imaging-batch/`` under the name :func:`work_name`, which
holds the SHA-256 of the input's bytes: a checkpoint or a finished slice is only ever
reused for the very same input file, and a finished output only counts when it records
that digest (``extras/input_sha256``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ...io import load_measurements, load_reconstruction, save_reconstruction
from ..volumes import assemble_volume
from .inputs import file_digest
from .memory import task_bytes
from .tasks import INPUT_DIGEST_EXTRA, TaskSpec, describe_error

#: Work folder (inside the output folder) for checkpoints and finished slices.
WORK_DIR_NAME = ".imaging-batch"
#: Hexadecimal digits of the input's SHA-256 in its work files' names.
_DIGEST_DIGITS = 16


@dataclasses.dataclass
class Item:
    """One input file, its tasks still to run and its row of the summary."""

    path: Path
    output: Path
    row: dict[str, Any]
    specs: list[tuple[int, TaskSpec]] = dataclasses.field(default_factory=list)
    task_bytes: int = 0
    n_slices: int = 1
    is_volume: bool = False
    slice_dir: Path | None = None
    digest: str = ""
    pending: set[int] = dataclasses.field(default_factory=set)
    seconds: float = 0.0
    slice_errors: dict[int, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def for_input(cls, path: Path, output_dir: Path) -> Item:
        """A pending item for input ``path`` writing ``output_dir/<stem>.npz``."""
        row = {"item": str(path), "status": "pending", "error": None, "seconds": 0.0, "output": None,
               "metrics": None, "slices": None, "input_sha256": None}
        return cls(path=path, output=output_dir / f"{path.stem}.npz", row=row)

    def fail(self, error: str) -> None:
        self.row.update(status="failed", error=error, output=None)
        self.specs = []


def normalised(params: dict) -> dict:
    """``params`` as it reads back from a reconstruction file (JSON round trip)."""
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def settings_tag(method: str, params: dict) -> str:
    """A short digest of the method and its parameters (in checkpoint names)."""
    return hashlib.sha256(json.dumps([method, params], sort_keys=True).encode()).hexdigest()[:10]


def work_name(path: Path, digest: str) -> str:
    """The name of input ``path``'s work files: its stem and the start of its SHA-256 ``digest``."""
    return f"{path.stem}-{digest[:_DIGEST_DIGITS]}"


def output_folder_refusal(paths: list[Path], output_dir: Path) -> str | None:
    """Why writing into ``output_dir`` could put outputs among (or over) the inputs
    ``paths``: the inputs that lie in that very folder (links resolved); None if none."""
    folder = os.path.realpath(output_dir)
    inside = [path for path in paths if os.path.dirname(os.path.realpath(path)) == folder]
    if not inside:
        return None
    names = ", ".join(path.name for path in inside[:3]) + (", ..." if len(inside) > 3 else "")
    replaced = any(path.name == f"{path.stem}.npz" for path in inside)  # the output's own name
    return (
        f"output folder {output_dir} holds {len(inside)} input file(s) ({names})"
        f"{': outputs would replace the .npz inputs' if replaced else ''}; choose another output folder, or "
        "allow it explicitly (--allow-output-in-input-folder, allow_output_in_input_folder=True in Python)"
    )


def _remove_work(work_dir: Path, path: Path, keep: str | None) -> None:
    """Remove the work files of input ``path`` (checkpoints, finished slices) made from
    other contents than ``keep`` (a :func:`work_name`), or all of them when None."""
    if not work_dir.is_dir():
        return
    pattern = re.compile(re.escape(path.stem) + rf"-[0-9a-f]{{{_DIGEST_DIGITS}}}(\..+)?")
    for entry in work_dir.iterdir():
        if not pattern.fullmatch(entry.name) or (keep and (entry.name == keep or entry.name.startswith(keep + "."))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _finished(path: Path, shape: tuple[int, ...], method: str, params: dict, digest: str | None = None):
    """The loaded result if ``path`` is a finished output of these settings (and, when
    ``digest`` is given, of the input with that SHA-256), else None."""
    if not path.is_file():
        return None
    try:
        result = load_reconstruction(path)
        recorded = str(result.extras.get(INPUT_DIGEST_EXTRA, "")) if digest is not None else None
        same = (result.reconstruction.shape == shape and result.method == method
                and normalised(result.params) == params and recorded == digest)
    except Exception:  # damaged, foreign, too large, or absurd JSON (RecursionError): computed again
        return None
    return result if same else None


def score(result, ground_truth) -> dict[str, float] | None:
    """The metrics of a (P, N, N) or (P, Z, N, N) result against the ground truth, if any."""
    if ground_truth is None:
        return None
    if result.reconstruction.ndim == 4:
        from ...metrics import evaluate_volume

        return evaluate_volume(result.reconstruction, ground_truth)
    from ...metrics import evaluate

    return {k: float(v) for k, v in evaluate(result.reconstruction, ground_truth).items()}


def plan_item(item: Item, method: str, solver_cls, params, template: TaskSpec) -> None:
    """Read ``item``'s input and list its tasks still to run (``item.specs``), or mark it
    skipped (finished earlier) or failed (any error: the batch goes on without it).

    ``params`` is the run's :class:`~imaging.solvers.SolverParams`; ``template`` a
    :class:`TaskSpec` with the settings shared by every task.
    """
    try:
        _plan(item, method, solver_cls, params, template)
    except Exception as exc:  # one bad item never stops the batch
        unreadable = isinstance(exc, OSError) and exc.strerror and exc.filename == str(item.path)
        item.fail(f"cannot read {item.path}: {exc.strerror}" if unreadable else describe_error(exc))


def _plan(item: Item, method: str, solver_cls, params, template: TaskSpec) -> None:
    record = normalised(dataclasses.asdict(params))
    item.digest = file_digest(item.path)
    item.row["input_sha256"] = item.digest
    measurements = load_measurements(item.path)
    item.is_volume = measurements.is_volume
    item.n_slices = measurements.n_slices
    if item.is_volume:
        item.row["slices"] = item.n_slices
    item.task_bytes = task_bytes(measurements, solver_cls, params)
    shape = (measurements.n_frames, *measurements.image_shape)
    work_dir = item.output.parent / WORK_DIR_NAME
    finished = _finished(item.output, shape, method, record, item.digest)
    if finished is not None:
        item.row.update(status="skipped", output=str(item.output), metrics=score(finished, measurements.ground_truth))
        _remove_work(work_dir, item.path, keep=None)
        return
    name = work_name(item.path, item.digest)
    _remove_work(work_dir, item.path, keep=name)
    tag = settings_tag(method, record)
    if not item.is_volume:
        work_dir.mkdir(exist_ok=True)
        item.pending = {0}
        item.specs = [(0, dataclasses.replace(
            template, name=item.path.name, input_path=str(item.path), output_path=str(item.output),
            checkpoint_path=str(work_dir / f"{name}.{tag}.ckpt"), score=True, input_sha256=item.digest,
        ))]
        return
    item.slice_dir = work_dir / name
    item.slice_dir.mkdir(parents=True, exist_ok=True)
    slice_shape = (measurements.n_frames, *measurements.slice_shape)
    for z in range(item.n_slices):
        partial = item.slice_dir / f"slice-{z:04d}.npz"
        if _finished(partial, slice_shape, method, record) is not None:
            continue
        item.specs.append((z, dataclasses.replace(
            template, name=f"{item.path.name}[z={z}]", input_path=str(item.path), output_path=str(partial),
            checkpoint_path=str(item.slice_dir / f"{tag}.ckpt"), slice_index=z, score=False,
        )))
        item.pending.add(z)


def assemble(item: Item) -> None:
    """Stack the finished slices of a volume item into its output and drop its work files."""
    try:
        slices = [load_reconstruction(item.slice_dir / f"slice-{z:04d}.npz") for z in range(item.n_slices)]
        result = assemble_volume(slices, item.n_slices)
        result.extras[INPUT_DIGEST_EXTRA] = np.array(item.digest)
        save_reconstruction(item.output, result)
        metrics = score(result, load_measurements(item.path).ground_truth)
    except Exception as exc:
        item.fail(f"assembling the volume failed: {describe_error(exc)}")
        return
    item.row.update(status="ok", output=str(item.output), metrics=metrics)
    shutil.rmtree(item.slice_dir, ignore_errors=True)


def record(item: Item, z: int, outcome: dict[str, Any]) -> None:
    """Enter the outcome of ``item``'s task ``z`` (0 for a 2D file); assemble a volume
    once all its slices are done."""
    item.seconds += outcome.get("seconds") or 0.0
    item.row["seconds"] = item.seconds
    item.pending.discard(z)
    if outcome["status"] != "ok":
        item.slice_errors[z] = outcome["error"]
    elif not item.is_volume:
        item.row.update(status="ok", output=str(item.output), metrics=outcome["metrics"])
    if item.pending:
        return
    if item.slice_errors:
        if item.is_volume:
            failed = ", ".join(str(z) for z in sorted(item.slice_errors))
            first = item.slice_errors[min(item.slice_errors)]
            item.fail(
                f"{len(item.slice_errors)} of {item.n_slices} slices failed ({failed}); "
                f"slice {min(item.slice_errors)}: {first}"
            )
        else:
            item.fail(item.slice_errors[0])
    elif item.is_volume:
        assemble(item)
