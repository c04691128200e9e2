"""Time-varying volumes: stacks of 2D slices, reconstructed slice by slice.

A volume measurement (see :class:`imaging.measurements.Measurements`) holds Z slices
that share the time axis and the acquisition schedule. For parallel-beam tomography a
slice is measured by its own detector row, so reconstructing slice by slice is exact
(no approximation against a 3D cone-beam model, and ASTRA's 3D projectors need CUDA);
for Cartesian multi-slice MRI every slice has its own k-space. Every slice is therefore
an independent 2D problem: the runner (:func:`imaging.run.iterate`) solves them in turn
and :mod:`imaging.run.batch` spreads them over Dask workers; this module holds what
both share (the per-slice checkpoint names and the assembly of slice results).

Shapes, time first (P frames, Z slices, N x N or H x W grid, V views, D detector bins,
C coils):

==================  ==========================  =====================================
array               one slice                   volume
==================  ==========================  =====================================
``image_shape``     (N, N)                      (Z, N, N)
``sinogram``        (P, V, D)                   (P, V, Z, D)
``angles``          (P, V)                      (P, V), shared by all slices
``kspace``          (P, C, H, W)                (P, Z, C, H, W)
``mask``            (P, H, W)                   (P, H, W) shared, or (P, Z, H, W)
``coil_maps``       (C, H, W)                   (C, H, W) shared, or (Z, C, H, W)
``ground_truth``    (P, N, N)                   (P, Z, N, N)
reconstruction      (P, N, N)                   (P, Z, N, N)
==================  ==========================  =====================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..results import ReconstructionResult


def slice_checkpoint(checkpoint: str | os.PathLike, z: int) -> Path:
    """The checkpoint file of slice ``z`` for a volume run given ``checkpoint``.

    ``reconstruct_volume(..., checkpoint="out.npz.ckpt")`` writes one checkpoint per
    slice, ``out.npz.ckpt.z0000``, ``out.npz.ckpt.z0001``, ...; remove them with this
    function once the volume is saved.
    """
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(f"{checkpoint.name}.z{z:04d}")


def assemble_volume(slice_results: Sequence[ReconstructionResult], n_slices: int) -> ReconstructionResult:
    """Stack per-slice results into one volume result.

    Parameters
    ----------
    slice_results : sequence of ReconstructionResult
        Results of slices 0, 1, ..., k-1 in order (k <= ``n_slices``), each with a
        float32 (P, N, N) reconstruction, all by the same method and parameters.
    n_slices : int
        Z; slices without a result (a run stopped early) are left at zero.

    Returns
    -------
    ReconstructionResult
        ``reconstruction`` float32 (P, Z, N, N); ``history`` every slice's entries in
        slice order, each tagged with ``"slice": z``; ``elapsed_seconds`` the sum over
        slices; ``stop_reason`` the slices' reasons, distinct ones joined by ", " in
        slice order (e.g. "max_iter" or "converged, max_iter"); ``extras[name]`` the
        slices' extras stacked on a leading slice axis (k, ...).
    """
    if not slice_results:
        raise ValueError("assemble_volume needs the result of at least one slice")
    if len(slice_results) > n_slices:
        raise ValueError(f"got {len(slice_results)} slice results for a volume of {n_slices} slices")
    first = slice_results[0]
    frames, height, width = first.reconstruction.shape
    reconstruction = np.zeros((frames, n_slices, height, width), dtype=first.reconstruction.dtype)
    history: list[dict[str, Any]] = []
    reasons: list[str] = []
    for z, result in enumerate(slice_results):
        if result.reconstruction.shape != first.reconstruction.shape:
            raise ValueError(
                f"slice {z} has a reconstruction of shape {result.reconstruction.shape}, "
                f"slice 0 has {first.reconstruction.shape}"
            )
        if result.method != first.method or result.params != first.params:
            raise ValueError(f"slice {z} was reconstructed with other settings than slice 0")
        reconstruction[:, z] = result.reconstruction
        history.extend({"slice": z, **entry} for entry in result.history)
        if result.stop_reason not in reasons:
            reasons.append(result.stop_reason)
    extras = {
        name: np.stack([np.asarray(result.extras[name]) for result in slice_results])
        for name in first.extras
        if all(name in result.extras for result in slice_results)
    }
    return ReconstructionResult(
        reconstruction=reconstruction,
        method=first.method,
        params=first.params,
        history=history,
        elapsed_seconds=float(sum(result.elapsed_seconds for result in slice_results)),
        stop_reason=", ".join(reasons),
        extras=extras,
    )
