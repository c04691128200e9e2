"""Porous material (a foam block with random spherical pores) under progressive compression."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._geometry import (
    SmoothNoise,
    check_arguments,
    coverage,
    disk_outside,
    frame_times,
    pixel_grid,
)

HALF_WIDTH = 0.62
HALF_HEIGHT = 0.56
CORNER_RADIUS = 0.06
SOLID_DENSITY = 0.8
MAX_STRAIN = 0.2  # final vertical compression (20 %)
POISSON_BULGE = 0.1  # lateral barrel-shaped bulge at full compression
MIN_PORE_SCALE = 0.6  # pore cross-sections shrink to 60 % of their size
SLICE_HALF_THICKNESS = 0.5  # z in [-1, 1] maps to heights within +-0.5 of the block centre
POROSITY = 0.45


class _Foam:
    """A random block of solid with Poisson-distributed spherical pores of log-normal radii."""

    def __init__(self, rng: np.random.Generator):
        depth = SLICE_HALF_THICKNESS + 0.15
        box = np.array([HALF_HEIGHT + 0.1, HALF_WIDTH + 0.1, depth])
        median, sigma = 0.038, 0.45
        mean_volume = 4.0 / 3.0 * np.pi * median**3 * np.exp(4.5 * sigma**2)
        # Poisson spheres leave the volume fraction exp(-density * mean volume) solid.
        count = int(round(-np.log(1.0 - POROSITY) * np.prod(2 * box) / mean_volume))
        self.centres = rng.uniform(-box, box, size=(count, 3))
        self.radii = np.clip(median * np.exp(sigma * rng.standard_normal(count)), 0.02, 0.12)
        self.texture = SmoothNoise(rng, (12.0, 30.0), 64)

    def pore_fields(self, y: np.ndarray, x: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
        """Distance to, and cross-section radius of, the relatively nearest pore in the slice.

        Parameters
        ----------
        y, x : numpy.ndarray
            float64 column (M, 1) and row (1, M) of normalised coordinates.
        z : float
            Slice height.

        Returns
        -------
        distance, radius : numpy.ndarray
            float64 (M, M): for the pore minimising ``distance / radius`` at each point,
            the in-plane distance to its centre and the radius of its cross-section. A
            point lies in a pore shrunk by the factor s exactly when
            ``distance < s * radius``.
        """
        shape = np.broadcast_shapes(y.shape, x.shape)
        best_ratio = np.full(shape, np.inf)
        distance = np.full(shape, 1.0)
        radius = np.full(shape, 1e-3)
        section_squared = self.radii**2 - (self.centres[:, 2] - z) ** 2
        for (centre_y, centre_x, _), section in zip(self.centres, np.sqrt(np.maximum(section_squared, 0.0))):
            if section <= 0.0:
                continue
            pore_distance = np.hypot(y - centre_y, x - centre_x)
            ratio = pore_distance / section
            closer = ratio < best_ratio
            best_ratio[closer] = ratio[closer]
            distance[closer] = pore_distance[closer]
            radius[closer] = section
        return distance, radius


def _block_signed_distance(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Signed distance to the rounded-rectangle outline of the block, positive inside."""
    inner_y = np.abs(y) - (HALF_HEIGHT - CORNER_RADIUS)
    inner_x = np.abs(x) - (HALF_WIDTH - CORNER_RADIUS)
    outside = np.hypot(np.maximum(inner_y, 0.0), np.maximum(inner_x, 0.0))
    inside = np.minimum(np.maximum(inner_y, inner_x), 0.0)
    return CORNER_RADIUS - outside - inside


def compression(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertical strain and pore scale at each time.

    Parameters
    ----------
    times : numpy.ndarray
        float64 (P,) in ``[0, 1]``.

    Returns
    -------
    strain, pore_scale : numpy.ndarray
        float64 (P,): the block's height is ``1 - strain`` of the original, pore
        cross-sections are scaled by ``pore_scale``; both change monotonically.
    """
    progress = np.asarray(times, dtype=np.float64)
    return MAX_STRAIN * progress, 1.0 - (1.0 - MIN_PORE_SCALE) * progress


def render(frames: int, size: int, seed: int, slice_positions) -> np.ndarray:
    """Foam frames for each slice position z in [-1, 1]; see :func:`material`.

    Returns
    -------
    numpy.ndarray
        float32 (P, Z, N, N).
    """
    frames, size, seed = check_arguments(frames, size, seed)
    foam = _Foam(np.random.default_rng([seed, 0]))
    strain, pore_scale = compression(frame_times(frames, periodic=False))

    # Backward map of the compression: the bottom face (y = +HALF_HEIGHT; rows grow
    # downwards) rests on a fixed plate, the top plate moves down, and the block bulges
    # sideways most at mid-height like a compressed sample does. Reference rows depend
    # on (frame, row) only, so most quantities are (P, N, 1) columns.
    axis = pixel_grid(size)[0][:, 0].astype(np.float32)
    y, x = axis[None, :, None], axis[None, None, :]
    strain, pore_scale = (values.astype(np.float32)[:, None, None] for values in (strain, pore_scale))
    reference_y = HALF_HEIGHT + (y - HALF_HEIGHT) / (1.0 - strain)
    bulge = 1.0 + POISSON_BULGE * (strain / MAX_STRAIN) * (1.0 - np.clip(reference_y / HALF_HEIGHT, -1, 1) ** 2)
    reference_x = x / bulge
    # Edges are anti-aliased over one output pixel, measured in reference units.
    pixel = (2.0 / size) / np.sqrt((1.0 - strain) * bulge)
    block = coverage(_block_signed_distance(reference_y, reference_x), pixel)

    field_size = 2 * size
    field_axis = pixel_grid(field_size)[0][:, 0]
    index = np.empty((2, frames, size, size), dtype=np.float32)
    index[0], index[1] = reference_y, reference_x
    index = index * np.float32(field_size / 2.0) + np.float32((field_size - 1) / 2.0)
    outside = disk_outside(size)
    volume = np.empty((frames, len(slice_positions), size, size), dtype=np.float32)
    for slice_index, position in enumerate(slice_positions):
        z = SLICE_HALF_THICKNESS * float(position)
        distance, radius = foam.pore_fields(field_axis[:, None], field_axis[None, :], z)
        density = SOLID_DENSITY + 0.04 * foam.texture.on_grid(field_axis, field_axis, z)
        # Linear interpolation keeps distance - s * radius exact at the pore seams.
        distance, radius, density = (
            ndimage.map_coordinates(field.astype(np.float32), index, order=1, mode="nearest", output=np.float32)
            for field in (distance, radius, density)
        )
        solid = coverage(distance - pore_scale * radius, pixel)
        volume[:, slice_index] = block * solid * density
    volume[:, :, outside] = 0.0
    return np.clip(volume, 0.0, 1.0, out=volume)


def material(frames: int = 64, size: int = 128, seed: int = 0) -> np.ndarray:
    """Porous material (foam block) under progressive uniaxial compression.

    A rounded square block of solid (density about 0.8, with faint texture) cut from a
    3D foam of random spherical pores (log-normal radii, 45 % porosity). Over the
    frames the block is compressed vertically at a constant rate: its bottom face
    rests on a fixed plate, the top face moves down until the height is 80 % of the
    original, the sides bulge outwards by up to 10 % at mid-height, and the pores
    shrink to 60 % of their size (on top of being flattened by the compression).

    Parameters
    ----------
    frames : int
        Number of time frames P >= 1; frame 0 is uncompressed, frame P - 1 fully
        compressed.
    size : int
        Image side N >= 8 (pixels).
    seed : int
        Non-negative seed of the pore layout and texture.

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
