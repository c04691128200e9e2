"""Beating-heart phantom for dynamic MRI: short-axis cine slice with breathing drift."""

from __future__ import annotations

import numpy as np

from ._geometry import SmoothNoise, check_arguments, frame_times, pixel_grid, render_antialiased, sample

HEARTBEATS = 4  # cardiac cycles over the P frames
BREATHS = 1  # respiratory cycles over the P frames
EJECTION_SHRINK = 0.35  # the blood pool radius shrinks by 35 % at end-systole
SYSTOLE_FRACTION = 0.35  # share of the cycle from end-diastole to end-systole
BREATHING_SHIFT = 0.045  # largest vertical shift of the heart by breathing (normalised)
BREATHING_EXPANSION = 0.02  # largest relative expansion of the chest by breathing

# Magnitude-image intensities of a balanced SSFP cine.
BLOOD = 0.95
MYOCARDIUM = 0.28
FAT = 0.75
MUSCLE = 0.38
LIVER = 0.42
LUNG = 0.04
MARROW = 0.55
CSF = 0.9


def _ellipse(y, x, centre, semi_axes, angle=0.0):
    """Normalised elliptic radius: < 1 inside the ellipse."""
    cos_a, sin_a = np.cos(angle), np.sin(angle)
    dy, dx = y - centre[0], x - centre[1]
    along = cos_a * dx + sin_a * dy
    across = -sin_a * dx + cos_a * dy
    return np.hypot(along / semi_axes[1], across / semi_axes[0])


class _Anatomy:
    """Random short-axis anatomy at one slice height z in [-1, 1] (base to apex)."""

    def __init__(self, rng: np.random.Generator, z: float):
        def jitter(spread):
            return 1.0 + rng.uniform(-spread, spread)

        self.z = z
        taper = 1.0 - 0.25 * z  # the left ventricle narrows towards the apex
        self.lv_centre = (-0.06 + 0.02 * rng.uniform(-1, 1), 0.12 + 0.02 * rng.uniform(-1, 1))
        self.blood_radius = 0.14 * jitter(0.08) * taper
        self.epicardium_radius = self.blood_radius + 0.085 * jitter(0.08) * taper
        self.rv_scale = jitter(0.1) * (1.0 - 0.35 * z)
        self.body_axes = (0.6 * jitter(0.04), 0.9 * jitter(0.03))
        self.liver_size = 0.22 + 0.06 * z
        self.texture = SmoothNoise(rng, (6.0, 20.0), 48)
        self.lung_vessels = SmoothNoise(rng, (20.0, 40.0), 48)

    def __call__(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Magnitude image in ``[0, 1]`` on the grid ``y`` (M, 1) x ``x`` (1, L)."""
        y, x = np.broadcast_arrays(y, x)
        image = np.zeros(y.shape)
        body = _ellipse(y, x, (0.0, 0.0), self.body_axes)
        image[body < 1.0] = FAT
        image[body < 0.92] = MUSCLE

        vessels = self.lung_vessels.on_grid(y[:, 0], x[0, :], self.z)
        lung_texture = LUNG + 0.35 * np.clip(vessels - 1.0, 0.0, None)
        for side in (-1.0, 1.0):
            lung = _ellipse(y, x, (-0.06, 0.47 * side), (0.4, 0.3), angle=0.25 * side) < 1.0
            image[lung] = lung_texture[lung]
        liver = _ellipse(y, x, (0.38, -0.42), (self.liver_size, 0.32), angle=-0.3) < 1.0
        image[liver] = LIVER

        # A thin layer of pericardial fat, then the right ventricle (blood pool in a
        # thin wall) that wraps around the septum, then the left ventricle on top.
        lv_y, lv_x = self.lv_centre
        rv_centre = (lv_y + 0.01, lv_x - 0.2 * self.rv_scale)
        rv_axes = (0.22 * self.rv_scale, 0.13 * self.rv_scale)
        epicardium = self.epicardium_radius
        heart_axes = (epicardium + 0.025, epicardium + 0.1 * self.rv_scale)
        heart = _ellipse(y, x, (lv_y + 0.01, lv_x - 0.08 * self.rv_scale), heart_axes, angle=-0.15)
        image[heart < 1.0] = FAT
        rv = _ellipse(y, x, rv_centre, rv_axes, angle=0.2)
        image[rv < 1.15] = MYOCARDIUM
        image[rv < 1.0] = BLOOD
        lv_radius = np.hypot(y - lv_y, x - lv_x)
        image[lv_radius < epicardium] = MYOCARDIUM
        image[lv_radius < self.blood_radius] = BLOOD
        # Papillary muscles: two small dark dots near the wall of the blood pool.
        for angle in (0.9, 2.3):
            papillary = np.hypot(
                y - lv_y - 0.72 * self.blood_radius * np.sin(angle), x - lv_x - 0.72 * self.blood_radius * np.cos(angle)
            )
            image[papillary < 0.14 * self.blood_radius] = MYOCARDIUM

        vertebra = _ellipse(y, x, (0.4, 0.0), (0.09, 0.1))
        image[vertebra < 1.0] = 0.15
        image[vertebra < 0.8] = MARROW
        image[np.hypot(y - 0.53, x) < 0.035] = CSF
        image[np.hypot(y - 0.28, x - 0.13) < 0.055] = BLOOD  # descending aorta
        image[_ellipse(y, x, (-0.52, 0.0), (0.04, 0.09)) < 1.0] = MARROW  # sternum

        shading = 1.0 + 0.06 * self.texture.on_grid(y[:, 0], x[0, :], self.z)
        return np.clip(image * shading, 0.0, 1.0)


def contraction(times: np.ndarray, phase_offset: float = 0.0) -> np.ndarray:
    """Contraction state 0 (end-diastole) to 1 (end-systole) at each time.

    The cycle is smooth and asymmetric: contraction takes ``SYSTOLE_FRACTION`` of
    the cycle, relaxation the rest.

    Parameters
    ----------
    times : numpy.ndarray
        float64 (P,) in ``[0, 1)``; ``HEARTBEATS`` cycles span ``[0, 1)``.
    phase_offset : float
        Cardiac phase at time 0, in cycles.

    Returns
    -------
    numpy.ndarray
        float64 (P,) in ``[0, 1]``.
    """
    cycle = (HEARTBEATS * np.asarray(times, dtype=np.float64) + phase_offset) % 1.0
    # Monotone time warp that maps SYSTOLE_FRACTION of the cycle onto its first half.
    skew = (0.5 - SYSTOLE_FRACTION) * 2.0 * np.pi / (1.0 - np.cos(2.0 * np.pi * SYSTOLE_FRACTION))
    warped = cycle + skew * (1.0 - np.cos(2.0 * np.pi * cycle)) / (2.0 * np.pi)
    return np.sin(np.pi * warped) ** 2


def _heart_backward_map(y, x, anatomy: _Anatomy, state):
    """Radial backward map of the beating left ventricle (incompressible myocardium).

    The blood pool radius shrinks to ``(1 - EJECTION_SHRINK * state)`` of its size; the
    myocardial ring keeps its area, so the wall thickens; tissue outside the
    epicardium follows with a displacement that fades over about 0.15 units.
    """
    lv_y, lv_x = anatomy.lv_centre
    blood0, epi0 = anatomy.blood_radius, anatomy.epicardium_radius
    blood = blood0 * (1.0 - EJECTION_SHRINK * state)
    epi = np.sqrt(blood**2 + epi0**2 - blood0**2)
    dy, dx = y - lv_y, x - lv_x
    radius = np.hypot(dy, dx)
    reference_radius = np.where(
        radius < blood,
        radius * blood0 / blood,
        np.where(
            radius < epi,
            np.sqrt(np.maximum(radius**2 - blood**2 + blood0**2, 0.0)),
            radius + (epi0 - epi) * np.exp(-(radius - epi) / 0.15),
        ),
    )
    scale = reference_radius / np.maximum(radius, 1e-12)
    return lv_y + dy * scale, lv_x + dx * scale


def render(frames: int, size: int, seed: int, slice_positions) -> np.ndarray:
    """Cardiac frames for each slice position z in [-1, 1] (base to apex); see :func:`cardiac`.

    Returns
    -------
    numpy.ndarray
        float32 (P, Z, N, N).
    """
    frames, size, seed = check_arguments(frames, size, seed)
    motion_rng = np.random.default_rng([seed, 1])
    times = frame_times(frames, periodic=True)
    state = contraction(times, motion_rng.uniform(0.0, 1.0))[:, None, None]
    breathing = np.sin(2.0 * np.pi * (BREATHS * times + motion_rng.uniform(0.0, 1.0)))[:, None, None]

    # Breathing: the chest expands about its centre and the heart and diaphragm, in a
    # soft central region, shift vertically.
    y, x = pixel_grid(size)
    expansion = 1.0 + BREATHING_EXPANSION * breathing
    central = np.exp(-((x / 0.6) ** 2) - (y / 0.7) ** 2)
    chest_y = y / expansion - BREATHING_SHIFT * breathing * central
    chest_x = x / expansion

    volume = np.empty((frames, len(slice_positions), size, size), dtype=np.float32)
    for index, z in enumerate(slice_positions):
        anatomy = _Anatomy(np.random.default_rng([seed, 0]), float(z))
        reference = render_antialiased(anatomy, size)
        reference_y, reference_x = _heart_backward_map(chest_y, chest_x, anatomy, state)
        volume[:, index] = sample(reference, reference_y, reference_x)
    return volume


def cardiac(frames: int = 64, size: int = 128, seed: int = 0) -> np.ndarray:
    """Beating heart in a short-axis cine MRI slice, with slow breathing drift.

    A magnitude image (balanced-SSFP-like contrast) of a chest: body with
    subcutaneous fat, dark lungs with faint vessels, liver, spine, aorta and sternum,
    and a heart with a bright left-ventricular blood pool inside a dark myocardial
    ring, papillary muscles, a right-ventricular crescent and pericardial fat.

    Motion: ``HEARTBEATS = 4`` smooth cardiac cycles over the P frames (fast
    contraction over 35 % of the cycle, slower relaxation); at end-systole the blood
    pool radius is 35 % smaller and the myocardium, which keeps its area, is thicker.
    One breathing cycle over the P frames expands the chest by up to 2 % and shifts
    the heart and liver vertically by up to 0.045 of the half field of view.

    Parameters
    ----------
    frames : int
        Number of time frames P >= 1; the heartbeats and the breath always span the
        P frames, so the motion is periodic in P.
    size : int
        Image side N >= 8 (pixels).
    seed : int
        Non-negative seed of the anatomy's variations, the texture and the cardiac
        and respiratory phases.

    Returns
    -------
    numpy.ndarray
        float32 (P, N, N) magnitudes in ``[0, 1]``; not masked to the inscribed
        circle (the body's corners are air, zero, anyway).

    Raises
    ------
    ValueError
        If frames < 1, size < 8 or seed < 0, or an argument is not an integer.
    """
    return render(frames, size, seed, [0.0])[:, 0]


# Smooth image phase of the cardiac phantom (radians), the kind a scanner's images carry:
# an off-resonance background of low spatial order, plus a slow drift over the scan
# (field drift and breathing) that changes the background's offset and gradients.
BACKGROUND_GRADIENT = 1.0  # largest linear phase across the half field of view
BACKGROUND_CURVATURE = 0.6  # largest quadratic phase at the edge of the half field of view
DRIFT_OFFSET = 1.0  # largest change of the global phase over the scan
DRIFT_GRADIENT = 0.4  # largest change of the linear phase over the scan
BREATHING_PHASE = 0.15  # largest phase modulation by breathing


def cardiac_phase(frames: int = 64, size: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth, slowly drifting image phase for the cardiac phantom (radians).

    ``phi(y, x, t) = b(y, x) + (t + BREATHING_PHASE * sin(2 pi (t + t0))) * d(y, x)`` on
    normalised coordinates ``y, x`` in [-1, 1] and times ``t = p / P``: ``b`` is a random
    second-order polynomial (an off-resonance background: a global phase in [0, 2 pi),
    gradients up to ``BACKGROUND_GRADIENT`` and curvatures up to ``BACKGROUND_CURVATURE``
    radians), ``d`` a random first-order polynomial (the drift: global up to
    ``DRIFT_OFFSET``, gradients up to ``DRIFT_GRADIENT``). The complex frames are
    ``cardiac(...) * exp(1j * cardiac_phase(...))`` (what ``imaging simulate`` measures
    for MRI).

    Parameters
    ----------
    frames, size, seed : int
        As :func:`cardiac`; the phase has its own random stream of ``seed``.

    Returns
    -------
    numpy.ndarray
        float32 (P, N, N).
    """
    frames, size, seed = check_arguments(frames, size, seed)
    rng = np.random.default_rng([seed, 2])
    y, x = pixel_grid(size)
    background = (
        rng.uniform(0.0, 2.0 * np.pi)
        + BACKGROUND_GRADIENT * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)
        + BACKGROUND_CURVATURE * (rng.uniform(-1, 1) * (x**2 - y**2) + rng.uniform(-1, 1) * x * y)
    )
    drift = DRIFT_OFFSET * rng.uniform(-1, 1) + DRIFT_GRADIENT * (rng.uniform(-1, 1) * x + rng.uniform(-1, 1) * y)
    times = frame_times(frames, periodic=True)
    progress = times + BREATHING_PHASE * np.sin(2.0 * np.pi * (BREATHS * times + rng.uniform(0.0, 1.0)))
    return (background[None] + progress[:, None, None] * drift[None]).astype(np.float32)
