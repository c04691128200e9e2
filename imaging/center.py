"""Rotation-axis offset from dynamic projection data, without ground truth.

``center_offset`` is where the rotation axis projects on the detector, in bins from the
detector centre (docs/design.md). In a dynamic acquisition the object moves between
views, so the classical estimators that compare views of one static object (a sinogram
and its mirror, Vo's Fourier metric) meet views of *different* states of the object.
Two estimators that account for that:

``"moments"`` (parallel beam, any schedule). The centroid of a parallel-beam view at
angle ``theta`` is ``o + x_c cos(theta) + y_c sin(theta)``: the offset plus the projection
of the object's centre of mass (the zeroth and first Helgason-Ludwig consistency
conditions, exact for line integrals of an object that stays on the detector). In a
dynamic acquisition ``(x_c, y_c)`` moves with time; it is modelled as cubic splines of
time (``knots`` knots, the temporal model of PSM) and ``o`` is the constant of the
weighted linear least-squares fit of the views' centroids (weights: the views' masses).
With angles that are not tied to time (bit-reversal, golden-angle, random, several
views per frame) the moving centroid and the constant separate.

``"opposing"`` (fan beam or full-circle parallel beam). A line is measured twice in a full
turn: a fan-beam ray at fan angle ``gamma`` from the source at ``beta`` is the ray at
``-gamma`` from the source at ``beta + pi - 2 gamma`` (parallel beam: the whole view at
``theta + pi``, mirrored). For every pair of views close in time (``window``
acquisitions apart) whose angles differ by ``pi`` within the fan (parallel beam: within
:data:`PARALLEL_PAIR_TOLERANCE`), the common line sits at virtual-detector positions
``-SO tan(delta / 2)`` and ``+SO tan(delta / 2)`` (``delta`` = angle difference minus pi)
about the axis' projection; the estimate is the offset that makes the two measurements of
every common line agree best (least squares over all pairs, searched on a grid of
:data:`SEARCH_STEP` bins over the central half of the detector and refined by a
parabola). Views close in time see nearly the
same state of the object, which is what makes this usable on moving objects.

``"auto"`` takes "moments" for parallel beam and "opposing" for fan beam.
``benchmarks/center_estimation.py`` compares them (and Vo's method on the angle-sorted
sinogram) on the project's moving phantoms.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .measurements import MeasurementError, Measurements
from .models.psm import interpolation_matrix

CENTER_METHODS = ("auto", "moments", "opposing")

#: Grid step (bins) of the opposing-views search before the parabolic refinement.
SEARCH_STEP = 0.25

#: Largest departure from pi (radians) of a parallel-beam pair of opposite views.
PARALLEL_PAIR_TOLERANCE = 1e-3


@dataclasses.dataclass(frozen=True)
class CenterEstimate:
    """An estimated rotation-axis offset (bins from the detector centre) and how it was found."""

    offset: float
    method: str
    details: dict


def _summed_rows(measurements: Measurements) -> np.ndarray:
    """(P, V, D) float64: the sinogram, summed over the detector rows of a volume."""
    sinogram = np.asarray(measurements.sinogram, dtype=np.float64)
    return sinogram.sum(axis=2) if measurements.is_volume else sinogram


def moments_offset(sinogram: np.ndarray, angles: np.ndarray, knots: int | None = None) -> tuple[float, dict]:
    """The offset from the views' centroids (method "moments"; parallel beam).

    Parameters
    ----------
    sinogram : numpy.ndarray
        (P, V, D) line integrals, frames in time order.
    angles : numpy.ndarray
        (P, V) radians.
    knots : int, optional
        Cubic-spline knots of the centre-of-mass trajectory; default ``P // 4`` within
        [2, 64].

    Returns
    -------
    offset : float
        Bins from the detector centre.
    details : dict
        ``knots`` and ``rms`` (root-mean-square misfit of the centroids, bins).
    """
    n_frames, n_views, n_bins = sinogram.shape
    knots = int(np.clip(n_frames // 4, 2, 64)) if knots is None else int(knots)
    knots = min(knots, n_frames)
    mass = sinogram.sum(axis=-1).ravel()
    if np.any(mass <= 0):
        raise MeasurementError(
            "the 'moments' centre estimate needs every view to see positive mass (line integrals of an object that "
            "stays on the detector); some views sum to zero or less"
        )
    bins = np.arange(n_bins) - (n_bins - 1) / 2.0
    centroid = (sinogram @ bins).ravel() / mass
    theta = np.asarray(angles, dtype=np.float64).ravel()
    temporal = np.repeat(interpolation_matrix(n_frames, knots, "cubic").double().numpy(), n_views, axis=0)
    design = np.hstack([np.ones((theta.size, 1)), temporal * np.cos(theta)[:, None], temporal * np.sin(theta)[:, None]])
    weight = np.sqrt(mass / mass.mean())
    solution, _, rank, _ = np.linalg.lstsq(design * weight[:, None], centroid * weight, rcond=None)
    if rank < design.shape[1]:
        raise MeasurementError(
            "the view angles do not separate the rotation axis from the object's motion (too few distinct angles "
            "for the temporal model); give the offset instead of estimating it"
        )
    misfit = design @ solution - centroid
    return float(solution[0]), {"knots": knots, "rms": float(np.sqrt(np.mean(misfit**2)))}


def _opposite_pairs(angles: np.ndarray, geometry, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j) of views at most ``window`` acquisitions apart that share a line, and its
    virtual-detector position in view i (pixels at the axis; view j sees it at minus that)."""
    theta = np.asarray(angles, dtype=np.float64).ravel()
    first, second, position = [], [], []
    if geometry.kind == "fan":
        usable = 0.8 * np.abs(geometry.ray_positions()).max()  # stay clear of the detector's ends
    for lag in range(1, window + 1):
        i = np.arange(theta.size - lag)
        j = i + lag
        delta = np.mod(theta[j] - theta[i] - np.pi + np.pi, 2 * np.pi) - np.pi
        if geometry.kind == "fan":
            s = -geometry.source_origin * np.tan(delta / 2.0)
            keep = np.abs(s) <= usable
        else:
            s = np.zeros_like(delta)
            keep = np.abs(delta) <= PARALLEL_PAIR_TOLERANCE
        first.append(i[keep])
        second.append(j[keep])
        position.append(s[keep])
    return np.concatenate(first), np.concatenate(second), np.concatenate(position)


def opposing_offset(sinogram: np.ndarray, angles: np.ndarray, geometry, window: int = 8) -> tuple[float, dict]:
    """The offset that makes lines measured twice agree (method "opposing").

    Parameters
    ----------
    sinogram : numpy.ndarray
        (P, V, D) line integrals, frames in time order.
    angles : numpy.ndarray
        (P, V) radians.
    geometry : imaging.operators.geometry.ProjectionGeometry
        Its ``center_offset`` is ignored (that is what is estimated).
    window : int
        Largest distance in acquisitions (views in time order) of a pair.

    Returns
    -------
    offset : float
    details : dict
        ``pairs`` used and ``rms`` (root-mean-square disagreement at the estimate).
    """
    views = sinogram.reshape(-1, sinogram.shape[-1])
    n_bins = views.shape[1]
    first, second, position = _opposite_pairs(angles, geometry, window)
    if first.size == 0:
        raise MeasurementError(
            "no pairs of views half a turn apart and close in time: the 'opposing' centre estimate needs a "
            "full-circle acquisition; give the offset instead"
        )
    centre = (n_bins - 1) / 2.0
    spacing = geometry.axis_spacing
    if geometry.kind == "parallel":  # the whole view is mirrored: every bin is a common line
        position = (np.arange(n_bins) - centre)[None, :] * spacing * np.ones((first.size, 1))
    else:
        position = position[:, None]
    limit = 0.25 * n_bins  # the axis is searched within the central half of the detector
    bins = np.arange(n_bins, dtype=np.float64)

    def disagreement(offset: float) -> float:
        at_first = centre + offset + position / spacing
        at_second = centre + offset - position / spacing
        inside = (at_first >= 0) & (at_first <= n_bins - 1) & (at_second >= 0) & (at_second <= n_bins - 1)
        value_first = _interpolate(views[first], at_first, bins)
        value_second = _interpolate(views[second], at_second, bins)
        difference = np.where(inside, value_first - value_second, 0.0)
        return float(np.sum(difference**2) / max(np.count_nonzero(inside), 1))

    grid = np.arange(-math.floor(limit / SEARCH_STEP), math.floor(limit / SEARCH_STEP) + 1) * SEARCH_STEP
    values = np.array([disagreement(o) for o in grid])
    best = int(np.argmin(values))
    offset = float(grid[best])
    if 0 < best < len(grid) - 1:
        left, middle, right = values[best - 1 : best + 2]
        curvature = left - 2 * middle + right
        if curvature > 0:
            offset += 0.5 * SEARCH_STEP * (left - right) / curvature
    return offset, {"pairs": int(first.size), "rms": math.sqrt(disagreement(offset))}


def _interpolate(views: np.ndarray, positions: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Linear interpolation of each view (row of ``views``) at its fractional bin ``positions``."""
    clipped = np.clip(positions, 0.0, bins[-1])
    lower = np.minimum(np.floor(clipped).astype(np.int64), len(bins) - 2)
    fraction = clipped - lower
    rows = np.arange(views.shape[0])[:, None]
    return (1.0 - fraction) * views[rows, lower] + fraction * views[rows, lower + 1]


def estimate_center_offset(measurements: Measurements, method: str = "auto", **options) -> CenterEstimate:
    """Estimate the rotation-axis offset of tomography measurements (see the module docstring).

    Parameters
    ----------
    measurements : Measurements
        Tomography, one slice or a volume (its rows are summed: the axis is shared); the
        stored ``center_offset`` is ignored.
    method : {"auto", "moments", "opposing"}
    **options
        ``knots`` (moments) or ``window`` (opposing).

    Returns
    -------
    CenterEstimate
    """
    if measurements.modality != "tomography":
        raise MeasurementError("a rotation-axis offset belongs to tomography measurements")
    if method not in CENTER_METHODS:
        raise ValueError(f"center method must be one of {', '.join(CENTER_METHODS)}, got {method!r}")
    if method == "auto":
        method = "moments" if measurements.geometry == "parallel" else "opposing"
    sinogram = _summed_rows(measurements)
    geometry = dataclasses.replace(measurements.projection_geometry(), center_offset=0.0)
    if method == "moments":
        if geometry.kind != "parallel":
            raise MeasurementError("the 'moments' centre estimate holds for parallel beam only; use 'opposing'")
        offset, details = moments_offset(sinogram, measurements.angles, **options)
    else:
        offset, details = opposing_offset(sinogram, measurements.angles, geometry, **options)
    return CenterEstimate(offset, method, details)
