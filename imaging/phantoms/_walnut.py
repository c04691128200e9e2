"""Procedural walnut: shell, septum, convoluted kernel and air gaps, in 3D."""

from __future__ import annotations

import numpy as np

from ._geometry import (
    AngularNoise,
    SmoothNoise,
    check_arguments,
    disk_outside,
    frame_times,
    piecewise_affine_motion,
    pixel_grid,
    render_antialiased,
    sample,
    smoothstep,
)

SHELL_DENSITY = 0.9
SEPTUM_DENSITY = 0.72
KERNEL_DENSITY = 0.55
SLICE_HALF_THICKNESS = 0.6  # z in [-1, 1] maps to heights within +-0.6 of the nut's centre


class _Walnut:
    """A random walnut, a function of continuous 3D coordinates (z along the nut's axis)."""

    def __init__(self, rng: np.random.Generator):
        self.orientation = rng.uniform(0, np.pi)
        self.radius = 0.74
        self.ellipticity = rng.uniform(0.03, 0.07)
        self.shell_thickness = 0.075
        self.outline = AngularNoise(rng, (3, 9))
        self.gap = AngularNoise(rng, (2, 7))
        self.wrinkles = SmoothNoise(rng, (20.0, 34.0))
        self.shell_texture = SmoothNoise(rng, (35.0, 60.0), 48)
        self.thickness_variation = SmoothNoise(rng, (4.0, 8.0))
        self.septum_wave = SmoothNoise(rng, (3.0, 6.0), 8)
        self.lobes = SmoothNoise(rng, (6.0, 11.0))
        self.folds = SmoothNoise(rng, (10.0, 16.0), 48)
        self.kernel_texture = SmoothNoise(rng, (30.0, 60.0), 48)

    def __call__(self, y: np.ndarray, x: np.ndarray, z: float) -> np.ndarray:
        """Density in ``[0, 1]`` on the grid ``y`` (M, 1) x ``x`` (1, L) of the slice at height z."""
        cos_o, sin_o = np.cos(self.orientation), np.sin(self.orientation)
        # (u, v): the seam and the septum run along u.
        u = cos_o * x + sin_o * y
        v = -sin_o * x + cos_o * y
        r = np.hypot(u, v)
        unit = (u + 1j * v) / np.maximum(r, 1e-12)

        def field(noise):
            return noise.on_grid(y, x, z)

        profile = np.sqrt(max(1.0 - 0.75 * z * z, 0.05))
        seam = 0.03 * np.exp(-((unit.imag / 0.08) ** 2))
        outer = (
            self.radius * profile * (1 + self.ellipticity * (unit**2).real) * (1 + 0.025 * self.outline(unit, z))
            + 0.01 * field(self.wrinkles)
            + seam
        )
        thickness = self.shell_thickness * (1 + 0.2 * field(self.thickness_variation)) + 0.5 * seam
        inner = outer - thickness
        shell = (r <= outer) & (r > inner)

        septum_offset = 0.02 * self.septum_wave(u, 0.0, z)
        septum_half_width = 0.012 + 0.025 * np.exp(-((u / 0.2) ** 2))
        septum_distance = np.abs(v - septum_offset) - septum_half_width
        septum = (septum_distance < 0) & (r <= inner)

        # The kernel keeps an air gap of varying width to the shell and the septum; the
        # level is roughly the depth below the kernel's lobed surface.
        gap = 0.035 + 0.02 * self.gap(unit, z)
        kernel_level = np.minimum(inner - r - gap, septum_distance - 0.012)
        kernel_level = kernel_level + 0.045 * field(self.lobes)
        # Folds are air along the zero lines of a random field, wide where they open to
        # the surface and closing with depth, like the sulci of a walnut kernel.
        fold_width = 0.25 * (1 - smoothstep(0.06, 0.2, kernel_level)) + 0.25 * (1 - smoothstep(0.0, 0.05, kernel_level))
        kernel = (kernel_level > 0) & (np.abs(field(self.folds)) > fold_width)

        density = np.zeros(np.broadcast_shapes(y.shape, x.shape))
        density[kernel] = (KERNEL_DENSITY + 0.04 * field(self.kernel_texture))[kernel]
        density[septum] = SEPTUM_DENSITY
        density[shell] = (SHELL_DENSITY + 0.05 * field(self.shell_texture))[shell]
        return np.clip(density, 0.0, 1.0)


def render(frames: int, size: int, seed: int, slice_positions) -> np.ndarray:
    """Walnut frames for each slice position z in [-1, 1]; see :func:`walnut`.

    Returns
    -------
    numpy.ndarray
        float32 (P, Z, N, N).
    """
    frames, size, seed = check_arguments(frames, size, seed)
    nut = _Walnut(np.random.default_rng([seed, 0]))
    y, x = pixel_grid(size)
    dy, dx = piecewise_affine_motion(np.random.default_rng([seed, 1]), y, x, frame_times(frames, periodic=True))
    warped_y, warped_x = y + dy, x + dx
    outside = disk_outside(size)
    volume = np.empty((frames, len(slice_positions), size, size), dtype=np.float32)
    for index, z in enumerate(slice_positions):
        height = SLICE_HALF_THICKNESS * float(z)
        reference = render_antialiased(lambda yy, xx: nut(yy, xx, height), size)
        volume[:, index] = sample(reference, warped_y, warped_x)
    volume[:, :, outside] = 0.0
    return volume


def walnut(frames: int = 64, size: int = 128, seed: int = 0) -> np.ndarray:
    """Dynamic walnut cross-section under smooth piecewise-affine motion.

    A procedural nut: a hard, wrinkled shell (density about 0.9) with seam ridges, a
    thin septum across the cavity, and two convoluted kernel halves (density about
    0.55) whose lobed outlines and deep folds leave air gaps to the shell and inside
    the kernel. The static object is deformed by a random piecewise-affine warp (the
    motion model of the RED-PSM walnut experiments): the control points of a 9 x 9
    grid follow closed smooth paths (global rotation, scaling and shear plus a
    spatially smooth local deformation), one period over the P frames, tapered to
    zero at the inscribed circle. Displacements are typically 1 to 2 pixels and at
    most about 5 pixels at N = 128 (scaled with N).

    Parameters
    ----------
    frames : int
        Number of time frames P >= 1; the motion period always spans the P frames.
    size : int
        Image side N >= 8 (pixels).
    seed : int
        Non-negative seed of the nut's shape and of its motion.

    Returns
    -------
    numpy.ndarray
        float32 (P, N, N) densities in ``[0, 1]``, zero outside the inscribed circle.

    Raises
    ------
    ValueError
        If frames < 1, size < 8 or seed < 0, or an argument is not an integer.
    """
    return render(frames, size, seed, [0.0])[:, 0]
