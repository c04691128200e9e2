"""The worker side of a batch: one task reads an input file and reconstructs it, or one
slice of it, through the runner (:func:`imaging.run.reconstruct`)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np

#: Name of the extra (``extras/input_sha256`` in the file) in which a batch output
#: records the SHA-256 of the measurement file it was reconstructed from.
INPUT_DIGEST_EXTRA = "input_sha256"


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One reconstruction a worker runs: read ``input_path``, write ``output_path``.

    ``slice_index`` None reconstructs the whole file (a 2D measurement); an integer z
    reconstructs slice z of a volume file and writes it as a single-slice result
    (P, N, N). ``input_sha256``, when given, is recorded in the output's extras
    (:data:`INPUT_DIGEST_EXTRA`). The runner checkpoints to ``checkpoint_path`` (slice
    z of a volume: :func:`imaging.run.slice_checkpoint` of it) and resumes from it.
    """

    name: str
    input_path: str
    output_path: str
    checkpoint_path: str
    method: str
    preset: str | None
    params: dict
    device: str
    checkpoint_every: int
    score: bool
    torch_threads: int = 1
    slice_index: int | None = None
    input_sha256: str | None = None


def describe_error(exc: BaseException) -> str:
    """One line for the summary: the message of a ``ValueError`` (bad input, bad
    parameters), else the exception's type and message."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(exc).split()) or "no details"
    if isinstance(exc, MemoryError):
        return f"out of memory ({type(exc).__name__}: {text})"
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def single_slice_result(result):
    """The result of a run on ``slices=[z]`` of a volume, (P, 1, N, N), as the
    single-slice result (P, N, N) that :func:`imaging.run.assemble_volume` stacks."""
    return dataclasses.replace(
        result,
        reconstruction=result.reconstruction[:, 0],
        history=[{key: value for key, value in entry.items() if key != "slice"} for entry in result.history],
        extras={name: value[0] for name, value in result.extras.items()},
    )


def run_task(spec: TaskSpec) -> dict[str, Any]:
    """Run one task on a worker; returns ``{"status", "error", "seconds", "metrics"}``.

    Errors that a retry cannot fix (an unreadable file, bad parameters, out of memory)
    come back as ``status "failed"``; any other exception propagates so that Dask
    retries the task.
    """
    import torch

    from ...io import load_measurements, open_ground_truth, save_reconstruction
    from ..runner import reconstruct
    from ..volumes import slice_checkpoint

    torch.set_num_threads(spec.torch_threads)
    start = time.perf_counter()

    def failed(exc: BaseException) -> dict[str, Any]:
        return {"status": "failed", "error": describe_error(exc), "seconds": time.perf_counter() - start,
                "metrics": None}

    try:
        # The ground truth stays in the file while the solver runs (scored from there a
        # block of frames at a time) and is loaded for the final metrics once it is done.
        measurements = load_measurements(spec.input_path, ground_truth=False)
        ground_truth = open_ground_truth(spec.input_path, (measurements.n_frames, *measurements.image_shape))
    except Exception as exc:  # a file fails to read the same way every time: no retry
        return failed(exc)
    slices = None if spec.slice_index is None else [spec.slice_index]
    checkpoint = Path(spec.checkpoint_path)
    try:
        result = reconstruct(
            measurements,
            spec.method,
            device=spec.device,
            preset=spec.preset,
            checkpoint=checkpoint,
            checkpoint_every=spec.checkpoint_every,
            resume=True,
            slices=slices,
            ground_truth=ground_truth,
            # The task's share of the cores, fixed: the runner's default would take the cores
            # idle when the task starts, which the other tasks starting with it leave idle too.
            threads=spec.torch_threads,
            **spec.params,
        )
        if slices is not None:
            result = single_slice_result(result)
            checkpoint = slice_checkpoint(checkpoint, spec.slice_index)
        if spec.input_sha256 is not None:
            result.extras[INPUT_DIGEST_EXTRA] = np.array(spec.input_sha256)
        save_reconstruction(spec.output_path, result)
    except (ValueError, FileNotFoundError, MemoryError) as exc:
        return failed(exc)
    checkpoint.unlink(missing_ok=True)
    metrics = None
    if spec.score and ground_truth is not None:
        from ...metrics import evaluate

        reference = ground_truth[:]
        metrics = {k: float(v) for k, v in evaluate(result.reconstruction, reference).items()}
    return {"status": "ok", "error": None, "seconds": time.perf_counter() - start, "metrics": metrics}
