"""Sampling orders: view angles for dynamic tomography and k-t masks for dynamic MRI.

View angles
-----------
An acquisition of ``P`` frames with ``V`` views per frame has ``M = P * V`` acquisition
instants in time order; frame ``p`` is measured at instants ``p * V ... p * V + V - 1``.
Each schedule assigns one angle in ``[0, arc)`` to every instant: ``arc = pi`` by
default (parallel-beam projections at ``theta`` and ``theta + pi`` are mirror images, so
half a turn suffices), ``arc = 2 pi`` for a full circle (a fan beam needs one).

K-t masks
---------
Cartesian sampling in centred k-space layout (DC at row ``H // 2``): every frame
samples whole rows (phase-encode lines, ``ky``) with a full readout along the columns
(``kx``). A block of ``center_lines`` rows around DC is sampled in every frame.
"""

from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("bit-reversal", "golden-angle", "linear", "random", "interlaced")
MASK_PATTERNS = ("variable-density", "golden-ratio", "equispaced")

#: The golden angle for half-turn schedules, ``pi / phi = pi * (sqrt(5) - 1) / 2``
#: (111.246 degrees): successive views split the largest remaining gap of ``[0, pi)``
#: close to the golden ratio, whatever the number of views acquired so far.
GOLDEN_ANGLE = math.pi * (math.sqrt(5.0) - 1.0) / 2.0

#: ``1 / phi``, the fractional step of the golden-ratio line order.
_INVERSE_GOLDEN_RATIO = (math.sqrt(5.0) - 1.0) / 2.0


#: Largest angular interval a view may stand for, relative to the median interval.
MAX_INTERVAL_RATIO = 3.0


def angular_weights(angles: np.ndarray, period: float = np.pi) -> np.ndarray:
    """Quadrature weights of views at ``angles`` (radians) for back-projection.

    Each distinct angle (modulo ``period``: pi for parallel beam, whose views repeat
    after half a turn, 2 pi for a fan beam) stands for half of the gaps to its two
    neighbours on the circle of circumference ``period``, capped at three times the
    median such interval (so the two end views of a limited arc do not stand for the
    whole missing arc); views that repeat an angle share its interval; the weights are
    then scaled to sum to pi, so that the reconstruction keeps the object's mean value
    (over a full circle every ray is measured twice, hence FBP's factor 1/2). ``M``
    equispaced views get ``pi / M`` each.

    Parameters
    ----------
    angles : numpy.ndarray
        (M,) float.
    period : float
        The rotation after which views repeat the same rays.

    Returns
    -------
    numpy.ndarray
        float64 (M,), positive, summing to pi.
    """
    folded = np.mod(np.asarray(angles, dtype=np.float64), period)
    distinct, inverse, counts = np.unique(folded, return_inverse=True, return_counts=True)
    if distinct.size == 1:
        cells = np.array([period])
    else:
        gaps = np.diff(np.concatenate([distinct, [distinct[0] + period]]))
        cells = 0.5 * (gaps + np.roll(gaps, 1))
    cells = np.minimum(cells, MAX_INTERVAL_RATIO * np.median(cells))
    weights = cells[inverse] / counts[inverse]
    return weights * (np.pi / weights.sum())


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def bit_reversal_order(n: int) -> np.ndarray:
    """A permutation of ``0 .. n-1`` that visits the range coarse-to-fine.

    For ``n`` a power of two this is the bit-reversal permutation: entry ``k`` is ``k``
    with its ``log2(n)`` bits reversed (``0, n/2, n/4, 3n/4, ...``). Otherwise it is the
    bit-reversal permutation of the next power of two with the entries ``>= n`` left
    out, which keeps the coarse-to-fine property and is still a permutation.

    Parameters
    ----------
    n : int
        Length of the permutation, ``n >= 1``.

    Returns
    -------
    numpy.ndarray
        int64 (n,).
    """
    n = _check_count("n", n)
    bits = max(0, (n - 1).bit_length())
    indices = np.arange(1 << bits, dtype=np.int64)
    reversed_indices = np.zeros_like(indices)
    for bit in range(bits):
        reversed_indices |= ((indices >> bit) & 1) << (bits - 1 - bit)
    return reversed_indices[reversed_indices < n]


def view_angles(
    schedule: str, frames: int, views_per_frame: int = 1, seed: int = 0, arc: float = math.pi, turns: int | None = None
) -> np.ndarray:
    """View angles of a dynamic tomography acquisition over ``[0, arc)``.

    Parameters
    ----------
    schedule : {"bit-reversal", "golden-angle", "linear", "random"}
        Order of the ``M = frames * views_per_frame`` acquisition instants ``k``:

        - ``"linear"``: ``theta_k = arc * k / M`` (one sweep of the arc);
        - ``"bit-reversal"``: ``theta_k = arc / M * bitrev(k)``, the paper's schedule
          (``0, pi/2, pi/4, 3pi/4, ...`` for ``M = 256`` over a half turn). When ``M``
          is not a power of two, ``bitrev`` is the bit-reversal permutation of the next
          power of two with the out-of-range entries skipped (see
          :func:`bit_reversal_order`), so the angles are still a permutation of the
          linear ones;
        - ``"golden-angle"``: ``theta_k = (k * arc (sqrt 5 - 1) / 2) mod arc``, the
          golden section of the arc (for the half turn, :data:`GOLDEN_ANGLE` = 111.246
          degrees taken modulo 180 degrees);
        - ``"random"``: independent uniform angles in ``[0, arc)`` from
          ``numpy.random.default_rng(seed)``;
        - ``"interlaced"``: a continuous rotation of ``turns`` sweeps of the arc, each
          at ``L = ceil(M / turns)`` equispaced angles, sweep ``j`` shifted by
          ``bitrev(j) / turns`` of their spacing (Mohan et al.'s interlaced views):
          ``theta_k = arc * (i * turns + bitrev(j)) / (L * turns)`` for instant
          ``k = j * L + i``, so the sweeps fill each other's gaps coarse-to-fine.
    frames : int
        Number of time frames ``P >= 1``.
    views_per_frame : int
        Views per frame ``V >= 1``; frame ``p`` gets instants ``p*V .. p*V + V - 1``.
    seed : int
        Seed of the ``"random"`` schedule (the other schedules are deterministic).
    arc : float
        The angular range in radians, ``0 < arc <= 2 pi``: ``pi`` (default) for
        parallel beam, ``2 pi`` for a full circle.
    turns : int, optional
        Sweeps of the ``"interlaced"`` schedule, ``1 <= turns <= M`` (default
        ``min(4, M)``).

    Returns
    -------
    numpy.ndarray
        float64 (P, V), radians in ``[0, arc)``, ASTRA's convention.
    """
    frames = _check_count("frames", frames)
    views_per_frame = _check_count("views_per_frame", views_per_frame)
    arc = float(arc)
    if not 0.0 < arc <= 2.0 * math.pi:
        raise ValueError(f"arc must be in (0, 2 pi] radians, got {arc!r}")
    n_instants = frames * views_per_frame
    instants = np.arange(n_instants, dtype=np.float64)
    if schedule == "linear":
        angles = arc * instants / n_instants
    elif schedule == "bit-reversal":
        angles = arc / n_instants * bit_reversal_order(n_instants).astype(np.float64)
    elif schedule == "golden-angle":
        angles = np.mod(instants * (arc * _INVERSE_GOLDEN_RATIO), arc)
        # Rounding in the modulo can land exactly on the arc's end, which is the same view as 0.
        angles[angles >= arc] = 0.0
    elif schedule == "random":
        angles = np.random.default_rng(seed).uniform(0.0, arc, size=n_instants)
    elif schedule == "interlaced":
        turns = min(4, n_instants) if turns is None else _check_count("turns", turns)
        if turns > n_instants:
            raise ValueError(f"turns ({turns}) cannot exceed the {n_instants} views of the acquisition")
        per_turn = math.ceil(n_instants / turns)
        sweep, index = np.divmod(np.arange(n_instants), per_turn)
        angles = arc * (index * turns + bit_reversal_order(turns)[sweep]) / (per_turn * turns)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
    return angles.reshape(frames, views_per_frame)


def center_rows(height: int, center_lines: int) -> np.ndarray:
    """Row indices of the ``center_lines`` rows around DC (row ``height // 2``), int64."""
    first = height // 2 - center_lines // 2
    return np.arange(first, first + center_lines, dtype=np.int64)


def _variable_density_rows(candidates, height, n_lines, frames, rng):
    # Density (1 - |ky| / ky_max)^2 with ky_max just beyond the edge, so that the outermost
    # lines keep a small, non-zero chance of being picked.
    distance = np.abs(candidates - height // 2) / (height / 2.0 + 1.0)
    weights = (1.0 - distance) ** 2
    weights /= weights.sum()
    return [rng.choice(candidates, size=n_lines, replace=False, p=weights) for _ in range(frames)]


def _golden_ratio_rows(candidates, n_lines, frames):
    # The k-th acquired line sits at frac(k / phi) of the candidate rows; the counter runs
    # on across frames, and a position already taken in the current frame is skipped.
    n_candidates = len(candidates)
    rows, counter = [], 0
    for _ in range(frames):
        chosen: list[int] = []
        while len(chosen) < n_lines:
            position = int(((counter * _INVERSE_GOLDEN_RATIO) % 1.0) * n_candidates)
            counter += 1
            if position not in chosen:
                chosen.append(position)
        rows.append(candidates[chosen])
    return rows


def _equispaced_rows(candidates, n_lines, frames):
    # A regular lattice of step n_candidates / n_lines whose offset moves by one line per
    # frame and wraps after ceil(step) frames, so consecutive frames fill each other's gaps.
    n_candidates = len(candidates)
    step = n_candidates / n_lines
    base = np.floor(np.arange(n_lines) * step).astype(np.int64)
    period = math.ceil(step)
    return [candidates[(base + frame % period) % n_candidates] for frame in range(frames)]


def kt_mask(
    pattern: str,
    frames: int,
    shape,
    lines_per_frame: int,
    center_lines: int = 4,
    seed: int = 0,
) -> np.ndarray:
    """Cartesian k-t sampling mask: whole phase-encode rows per frame.

    Parameters
    ----------
    pattern : {"variable-density", "golden-ratio", "equispaced"}
        How the rows outside the centre block are chosen in each frame:

        - ``"variable-density"``: drawn at random without replacement with probability
          proportional to ``(1 - |ky| / (H/2 + 1))^2`` (peaked at DC), a new draw in
          every frame from ``numpy.random.default_rng(seed)``;
        - ``"golden-ratio"``: the ``k``-th acquired line (counted across all frames) is
          at fraction ``frac(k / phi)`` of the non-centre rows, so each frame continues
          the golden-ratio sequence of the previous one (deterministic, ``seed`` unused);
        - ``"equispaced"``: equispaced rows among the non-centre rows (step
          ``s = (H - center_lines) / (lines_per_frame - center_lines)``), sheared in
          time: the offset moves by one row per frame and wraps after ``ceil(s)``
          frames (deterministic, ``seed`` unused).
    frames : int
        Number of frames ``P >= 1``.
    shape : tuple (H, W)
        K-space grid; rows are phase-encode lines.
    lines_per_frame : int
        Rows sampled per frame, ``center_lines <= lines_per_frame <= H``. The centre
        rows count towards this number.
    center_lines : int
        Rows around DC (row ``H // 2``) sampled in every frame, ``>= 0``.
    seed : int
        Seed of the ``"variable-density"`` pattern.

    Returns
    -------
    numpy.ndarray
        bool (P, H, W), exactly ``lines_per_frame`` full rows set per frame.
    """
    frames = _check_count("frames", frames)
    shape = tuple(np.atleast_1d(shape).tolist())
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape must be two positive integers (H, W), got {shape!r}")
    height, width = shape
    lines_per_frame = _check_count("lines_per_frame", lines_per_frame)
    if lines_per_frame > height:
        raise ValueError(f"lines_per_frame ({lines_per_frame}) cannot exceed the {height} rows of the grid")
    if isinstance(center_lines, bool) or not isinstance(center_lines, (int, np.integer)) or center_lines < 0:
        raise ValueError(f"center_lines must be an integer >= 0, got {center_lines!r}")
    if center_lines > lines_per_frame:
        raise ValueError(
            f"center_lines ({center_lines}) cannot exceed lines_per_frame ({lines_per_frame}): "
            "the centre lines count towards the lines of each frame"
        )
    centre = center_rows(height, int(center_lines))
    candidates = np.setdiff1d(np.arange(height, dtype=np.int64), centre)
    n_outer = lines_per_frame - int(center_lines)
    if pattern == "variable-density":
        outer_rows = _variable_density_rows(candidates, height, n_outer, frames, np.random.default_rng(seed))
    elif pattern == "golden-ratio":
        outer_rows = _golden_ratio_rows(candidates, n_outer, frames) if n_outer else [candidates[:0]] * frames
    elif pattern == "equispaced":
        outer_rows = _equispaced_rows(candidates, n_outer, frames) if n_outer else [candidates[:0]] * frames
    else:
        raise ValueError(f"unknown mask pattern {pattern!r}; choose one of: {', '.join(MASK_PATTERNS)}")
    mask = np.zeros((frames, height, width), dtype=bool)
    mask[:, centre, :] = True
    for frame, rows in enumerate(outer_rows):
        mask[frame, rows, :] = True
    return mask
