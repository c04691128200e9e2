"""Shared machinery of the dynamic phantoms: argument checks, coordinates, noise, warps.

Coordinates are normalised so that the inscribed circle of the N x N grid is the unit
disk: pixel ``[i, j]`` sits at ``y = (i - c) / (N / 2)``, ``x = (j - c) / (N / 2)`` with
``c = (N - 1) / 2``, so ``x**2 + y**2 <= 1`` is exactly ``imaging.operators.disk_mask``.
A phantom is a static reference image (rendered once, anti-aliased by supersampling)
that is resampled through an analytic, time-varying backward warp: frame ``p`` at
pixel ``(x, y)`` shows the reference at ``warp_p(x, y)``.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from scipy import ndimage

from .._grids import disk_mask

MIN_SIZE = 8

# Longest side of the supersampled grid used to anti-alias a reference image; keeps the
# procedural rendering of large phantoms fast while small ones are sampled 4x4 per pixel.
_SUPERSAMPLED_SIDE = 512


def check_arguments(frames, size, seed) -> tuple[int, int, int]:
    """Validate the common phantom arguments and return them as Python ints.

    Parameters
    ----------
    frames : int
        Number of time frames P, at least 1.
    size : int
        Image side N in pixels, at least 8.
    seed : int
        Non-negative seed of the random structure and motion.

    Returns
    -------
    tuple of int
        ``(frames, size, seed)``.

    Raises
    ------
    ValueError
        If an argument is not an integer or is out of range.
    """
    frames = as_integer("frames", frames)
    size = as_integer("size", size)
    seed = as_integer("seed", seed)
    if frames < 1:
        raise ValueError(f"frames must be an integer >= 1, got {frames}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    return frames, size, seed


def as_integer(name: str, value) -> int:
    """``value`` as a Python int; ValueError naming ``name`` for non-integers (bools included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def pixel_grid(size: int, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Normalised coordinates of pixel centres, optionally of sub-pixel sample points.

    Parameters
    ----------
    size : int
        Image side N.
    supersample : int
        Sub-samples per pixel and axis S; the sub-samples of pixel ``[i, j]`` are the
        entries ``[i*S:(i+1)*S, j*S:(j+1)*S]``.

    Returns
    -------
    y, x : numpy.ndarray
        float64 (N*S, N*S) coordinates; the inscribed circle is ``x**2 + y**2 <= 1``.
    """
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    axis = (np.arange(size)[:, None] + offsets[None, :]).ravel()
    axis = (axis - (size - 1) / 2.0) / (size / 2.0)
    return np.meshgrid(axis, axis, indexing="ij")


def supersample_factor(size: int) -> int:
    """Sub-samples per pixel and axis for rendering an N x N reference image."""
    return int(np.clip(_SUPERSAMPLED_SIDE // size, 1, 4))


def render_antialiased(render, size: int) -> np.ndarray:
    """Render a procedural image by box-filtering a supersampled evaluation.

    Parameters
    ----------
    render : callable
        ``render(y, x)`` receives the supersampled grid as a float64 column ``y``
        (M, 1) and row ``x`` (1, M) and returns (M, M) values.
    size : int
        Image side N.

    Returns
    -------
    numpy.ndarray
        float64 (N, N), the mean of ``render`` over each pixel's sub-samples.
    """
    factor = supersample_factor(size)
    y, x = pixel_grid(size, factor)
    values = render(y[:, :1], x[:1, :])
    return values.reshape(size, factor, size, factor).mean(axis=(1, 3))


def smoothstep(edge0: float, edge1: float, value):
    """Cubic Hermite step: 0 below ``edge0``, 1 above ``edge1``, C1 in between."""
    t = np.clip((np.asarray(value, dtype=np.float64) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def coverage(signed_distance, pixel: float):
    """Fraction of a pixel of width ``pixel`` covered by the region ``signed_distance > 0``.

    A linear ramp one pixel wide: the box-filtered indicator of a straight edge.
    """
    return np.clip(0.5 + np.asarray(signed_distance) / pixel, 0.0, 1.0)


class SmoothNoise:
    """Band-limited random field: a normalised sum of random plane waves.

    The field is defined on continuous coordinates, so it looks the same at every
    image size, and its third coordinate z lets it vary smoothly from slice to slice.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the random wave vectors and phases.
    wavenumber : tuple of float
        Range ``(low, high)`` of angular wavenumbers in radians per unit length; the
        feature size is about ``pi / wavenumber``.
    waves : int
        Number of plane waves; more waves give a more isotropic, Gaussian-like field.

    Notes
    -----
    Values have mean 0 and standard deviation about 1 over space.
    """

    def __init__(self, rng: np.random.Generator, wavenumber: tuple[float, float], waves: int = 32):
        directions = rng.normal(size=(waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        magnitudes = rng.uniform(wavenumber[0], wavenumber[1], size=waves)
        self.wave_vectors = directions * magnitudes[:, None]
        self.phases = rng.uniform(0.0, 2.0 * np.pi, size=waves)
        self.amplitude = np.sqrt(2.0 / waves)

    def on_grid(self, y_axis: np.ndarray, x_axis: np.ndarray, z: float = 0.0) -> np.ndarray:
        """Evaluate on the separable grid ``y_axis x x_axis`` of the slice at height z.

        Parameters
        ----------
        y_axis, x_axis : numpy.ndarray
            1D float coordinates of the rows (length M) and columns (length L).
        z : float
            Slice height.

        Returns
        -------
        numpy.ndarray
            float64 (M, L).
        """
        # cos(a + b) = cos a cos b - sin a sin b separates each plane wave into a row
        # and a column factor, so the sum over waves is two real matrix products.
        k_y, k_x, k_z = self.wave_vectors.T
        row_phase = np.ravel(y_axis)[:, None] * k_y + self.phases + k_z * z
        column_phase = np.ravel(x_axis)[None, :] * k_x[:, None]
        total = np.cos(row_phase) @ np.cos(column_phase) - np.sin(row_phase) @ np.sin(column_phase)
        return self.amplitude * total

    def __call__(self, y: np.ndarray, x: np.ndarray, z: float = 0.0) -> np.ndarray:
        """Evaluate at arbitrary broadcastable coordinate arrays ``y``, ``x`` (float64)."""
        total = np.zeros(np.broadcast_shapes(np.shape(y), np.shape(x)))
        for (k_y, k_x, k_z), phase in zip(self.wave_vectors, self.phases):
            total += np.cos(k_y * y + k_x * x + (k_z * z + phase))
        return self.amplitude * total


class AngularNoise:
    """Random smooth periodic function of the polar angle, varying smoothly with z.

    A sum of harmonics ``m`` in ``[low, high]`` with amplitudes falling as ``1/m``,
    normalised to unit standard deviation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the amplitudes and phases.
    harmonics : tuple of int
        Lowest and highest harmonic.
    """

    def __init__(self, rng: np.random.Generator, harmonics: tuple[int, int]):
        self.orders = np.arange(harmonics[0], harmonics[1] + 1)
        amplitudes = rng.standard_normal(len(self.orders)) / self.orders
        self.amplitudes = amplitudes / np.sqrt(0.5 * np.sum(amplitudes**2))
        self.phases = rng.uniform(0.0, 2.0 * np.pi, size=len(self.orders))
        self.drifts = rng.normal(0.0, 2.0, size=len(self.orders))

    def __call__(self, unit: np.ndarray, z: float = 0.0) -> np.ndarray:
        """Evaluate at angles given as unit complex numbers ``exp(1j * theta)`` (any shape)."""
        total = np.zeros(np.shape(unit))
        power = unit ** self.orders[0]
        for order, amplitude, phase, drift in zip(self.orders, self.amplitudes, self.phases, self.drifts):
            total += amplitude * (power * np.exp(1j * (phase + drift * z))).real
            power = power * unit
        return total


class PiecewiseAffineWarp:
    """Piecewise-affine displacement on a regular triangulated grid of control points.

    The square ``[-extent, extent]^2`` carries ``nodes x nodes`` control points; each
    grid cell is split into two triangles along its anti-diagonal and the displacement
    inside a triangle is the affine (barycentric) interpolation of its three corners'
    displacements, as in scikit-image's ``PiecewiseAffineTransform``. The barycentric
    weights of all pixels form one sparse (pixels x control points) matrix, so many
    frames are interpolated by one sparse matrix product.

    Parameters
    ----------
    y, x : numpy.ndarray
        float64 normalised coordinates (any shape S, the same for both) at which the
        warp is evaluated.
    nodes : int
        Control points per axis, at least 2.
    extent : float
        Half-width of the control grid in normalised units; points outside are clamped
        to the border cells.
    """

    def __init__(self, y: np.ndarray, x: np.ndarray, nodes: int, extent: float):
        self.shape = np.shape(y)
        self.node_axis = np.linspace(-extent, extent, nodes)
        spacing = self.node_axis[1] - self.node_axis[0]
        y, x = np.ravel(y), np.ravel(x)
        cell_y = np.clip(np.floor((y + extent) / spacing), 0, nodes - 2).astype(np.intp)
        cell_x = np.clip(np.floor((x + extent) / spacing), 0, nodes - 2).astype(np.intp)
        v = np.clip((y + extent) / spacing - cell_y, 0.0, 1.0)
        u = np.clip((x + extent) / spacing - cell_x, 0.0, 1.0)
        lower = u + v <= 1.0
        # Corners in the order (y0, x0), (y0, x1), (y1, x0), (y1, x1).
        weights = np.stack(
            [
                np.where(lower, 1.0 - u - v, 0.0),
                np.where(lower, u, 1.0 - v),
                np.where(lower, v, 1.0 - u),
                np.where(lower, 0.0, u + v - 1.0),
            ],
            axis=1,
        )
        corner = cell_y * nodes + cell_x
        columns = np.stack([corner, corner + 1, corner + nodes, corner + nodes + 1], axis=1)
        rows = np.repeat(np.arange(y.size), 4)
        self.matrix = sp.csr_matrix(
            (weights.ravel().astype(np.float32), (rows, columns.ravel())), shape=(y.size, nodes * nodes)
        )

    def control_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Control point coordinates ``(y, x)``, each float64 (nodes, nodes)."""
        return np.meshgrid(self.node_axis, self.node_axis, indexing="ij")

    def displacement(self, node_displacement: np.ndarray) -> np.ndarray:
        """Interpolate control point displacements to the evaluation points.

        Parameters
        ----------
        node_displacement : numpy.ndarray
            (P, nodes, nodes) displacement of each control point in each frame (one
            component; call once per axis).

        Returns
        -------
        numpy.ndarray
            float32 (P, *S) displacement at the evaluation points.
        """
        frames = node_displacement.shape[0]
        flat = node_displacement.reshape(frames, -1).astype(np.float32)
        field = (self.matrix @ flat.T).T
        return np.ascontiguousarray(field).reshape((frames,) + self.shape)


def sample(reference: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Resample a reference image at normalised coordinates (cubic spline, zero outside).

    Parameters
    ----------
    reference : numpy.ndarray
        (M, M) image whose pixel grid follows the normalised convention of this module.
    y, x : numpy.ndarray
        Normalised coordinates of one shape, e.g. (P, N, N).

    Returns
    -------
    numpy.ndarray
        float32 array of the coordinates' shape, clipped to ``[0, 1]`` to remove the
        spline's overshoot at edges.
    """
    side = reference.shape[0]
    half, centre = side / 2.0, (side - 1) / 2.0
    index = np.stack([np.asarray(y, np.float32) * half + centre, np.asarray(x, np.float32) * half + centre])
    values = ndimage.map_coordinates(
        reference.astype(np.float32), index, order=3, mode="grid-constant", cval=0.0, output=np.float32
    )
    return np.clip(values, 0.0, 1.0, out=values)


def radial_taper(radius: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Weight 1 inside ``inner``, 0 beyond ``outer``, smooth in between; keeps motion in the disk."""
    return 1.0 - smoothstep(inner, outer, radius)


def disk_outside(size: int) -> np.ndarray:
    """Boolean (N, N) mask of the pixels outside the inscribed circle."""
    return ~disk_mask(size)


def piecewise_affine_motion(
    rng: np.random.Generator,
    y: np.ndarray,
    x: np.ndarray,
    times: np.ndarray,
    nodes: int = 9,
    local_amplitude: float = 0.025,
    rotation: float = 0.04,
    scaling: float = 0.028,
    shear: float = 0.028,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth, periodic, random piecewise-affine backward warp (the paper's motion model).

    Every control point of a ``nodes x nodes`` grid over ``[-1, 1]^2`` moves along a
    closed smooth path: a global affine motion (rotation, anisotropic scaling, shear)
    plus a local deformation drawn from smooth random fields (neighbouring control
    points move alike), each a sum of the first two harmonics of one period spanning
    ``times`` in ``[0, 1)``. Displacements are tapered to zero from radius 0.75 to
    1.05, so content inside the inscribed circle stays inside.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the random amplitudes, fields and phases.
    y, x : numpy.ndarray
        float64 normalised pixel coordinates, any shape S.
    times : numpy.ndarray
        float64 (P,) times; the motion has period 1.
    nodes : int
        Control points per axis.
    local_amplitude : float
        Typical local displacement of a control point (normalised units; 0.025 is
        1.6 pixels at N = 128).
    rotation : float
        Typical rotation angle of the global affine part, radians.
    scaling : float
        Typical relative scaling per axis of the global affine part.
    shear : float
        Typical shear of the global affine part.

    Returns
    -------
    dy, dx : numpy.ndarray
        float32 (P, *S) displacements; frame p samples the reference at
        ``(y + dy[p], x + dx[p])``.
    """
    warp = PiecewiseAffineWarp(y, x, nodes, extent=1.0)
    node_y, node_x = warp.control_points()
    taper = radial_taper(np.hypot(node_y, node_x), 0.75, 1.05)
    phase = 2.0 * np.pi * np.asarray(times, dtype=np.float64)[:, None, None]

    def oscillation(amplitude, per_node=False):
        # Fundamental plus a weaker second harmonic: a smooth, closed, non-sinusoidal path.
        # Per-node amplitudes come from a smooth random field, so neighbours move alike.
        total = 0.0
        for harmonic, weight in ((1, 1.0), (2, 0.4)):
            for wave in (np.sin, np.cos):
                if per_node:
                    coefficient = SmoothNoise(rng, (1.5, 4.0), 16).on_grid(node_y[:, 0], node_x[0, :])
                else:
                    coefficient = rng.uniform(-1.0, 1.0)
                total = total + weight * coefficient * wave(harmonic * phase)
        return amplitude * total / np.sqrt(2.0)

    angle = oscillation(rotation)
    scale_y, scale_x = oscillation(scaling), oscillation(scaling)
    shear_xy = oscillation(shear)
    affine_y = (np.cos(angle) * (1 + scale_y) - 1) * node_y + (np.sin(angle) + shear_xy) * node_x
    affine_x = -np.sin(angle) * node_y + (np.cos(angle) * (1 + scale_x) - 1) * node_x
    local_y = oscillation(local_amplitude, per_node=True)
    local_x = oscillation(local_amplitude, per_node=True)
    dy = warp.displacement(taper * (affine_y + local_y))
    dx = warp.displacement(taper * (affine_x + local_x))
    return dy, dx


def frame_times(frames: int, periodic: bool) -> np.ndarray:
    """Times of the frames: ``p / P`` for periodic motion, ``p / (P - 1)`` for a ramp.

    Returns
    -------
    numpy.ndarray
        float64 (P,) in ``[0, 1)`` (periodic) or ``[0, 1]`` (ramp; ``[0.]`` for P = 1).
    """
    if periodic or frames == 1:
        return np.arange(frames) / frames
    return np.arange(frames) / (frames - 1)
