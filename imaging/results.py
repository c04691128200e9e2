"""The result of a reconstruction, as the runner returns it and the files hold it.

A plain data container (like :class:`imaging.measurements.Measurements`), kept apart
from the runner so that the file layer (:mod:`imaging.io`) can build results without
importing the solvers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


def magnitude_image(images) -> np.ndarray:
    """What is shown and scored of a reconstruction: the magnitude of complex images, real ones as they are.

    Parameters
    ----------
    images : numpy.ndarray
        float32 or complex64 image stack of any shape.

    Returns
    -------
    numpy.ndarray
        float32, same shape.
    """
    images = np.asarray(images)
    return (np.abs(images) if images.dtype.kind == "c" else images).astype(np.float32, copy=False)


@dataclasses.dataclass
class ReconstructionResult:
    """A finished (or stopped) reconstruction, as written to the reconstruction file.

    Attributes
    ----------
    reconstruction : numpy.ndarray
        float32 (P, N, N) for one slice, (P, Z, N, N) for a volume; complex64 for MRI
        (complex images, :func:`magnitude_image` for display and scoring).
    method : str
        The method's registered name.
    params : dict
        Every parameter of the run, defaults included (JSON-serialisable).
    history : list of dict
        One entry per outer iteration: ``iteration``, ``data_residual``,
        ``elapsed_seconds``, metrics against a ground truth when known; entries of a
        volume carry ``slice``.
    elapsed_seconds : float
        Wall time of the solver (sum over slices for a volume).
    stop_reason : str
        ``max_iter``, ``converged`` or ``stopped`` (distinct reasons of a volume's
        slices joined by ", ").
    extras : dict of str to numpy.ndarray
        By-products of the method (e.g. the PSM factors), stacked on a leading slice
        axis for a volume.
    """

    reconstruction: np.ndarray
    method: str
    params: dict[str, Any]
    history: list[dict[str, Any]]
    elapsed_seconds: float
    stop_reason: str
    extras: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
