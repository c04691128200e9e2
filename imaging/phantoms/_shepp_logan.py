"""Shepp-Logan head phantom (scikit-image's) under smooth piecewise-affine motion."""

from __future__ import annotations

import numpy as np
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from ._geometry import check_arguments, disk_outside, frame_times, piecewise_affine_motion, pixel_grid, sample

# The head fills 88 % of the field of view, leaving room for the motion inside the circle.
HEAD_SCALE = 0.88


def _reference(size: int) -> np.ndarray:
    """scikit-image's modified Shepp-Logan phantom (400 x 400) resized to float64 (N, N)."""
    image = shepp_logan_phantom()
    return np.clip(resize(image, (size, size), order=1, anti_aliasing=size < image.shape[0]), 0.0, 1.0)


def render(frames: int, size: int, seed: int, slice_positions) -> np.ndarray:
    """Shepp-Logan frames for each slice position z in [-1, 1]; see :func:`shepp_logan`.

    Slices other than z = 0 show the head narrowed by ``sqrt(1 - 0.3 z^2)`` (an
    ellipsoidal head) and its interior displaced by a static random piecewise-affine
    field growing linearly with z, so the structure changes smoothly along z.

    Returns
    -------
    numpy.ndarray
        float32 (P, Z, N, N).
    """
    frames, size, seed = check_arguments(frames, size, seed)
    head = _reference(size)
    y, x = pixel_grid(size)
    dy, dx = piecewise_affine_motion(np.random.default_rng([seed, 1]), y, x, frame_times(frames, periodic=True))
    warped_y, warped_x = y + dy, x + dx
    # One frame of a second, independent deformation serves as the slice-to-slice change.
    slice_dy, slice_dx = piecewise_affine_motion(
        np.random.default_rng([seed, 2]), y, x, np.array([0.25]), rotation=0.0, scaling=0.0, shear=0.0
    )
    outside = disk_outside(size)
    volume = np.empty((frames, len(slice_positions), size, size), dtype=np.float32)
    for index, z in enumerate(slice_positions):
        narrowing = HEAD_SCALE * np.sqrt(1.0 - 0.3 * z * z)
        reference = sample(head, (y + z * slice_dy[0]) / narrowing, (x + z * slice_dx[0]) / narrowing)
        volume[:, index] = sample(reference, warped_y, warped_x)
    volume[:, :, outside] = 0.0
    return volume


def shepp_logan(frames: int = 64, size: int = 128, seed: int = 0) -> np.ndarray:
    """Dynamic Shepp-Logan phantom under smooth piecewise-affine motion.

    scikit-image's modified Shepp-Logan head phantom (values 0 to 1) resized to N x N
    and shrunk to 88 % of the field of view (room for the motion), deformed by the same
    kind of random piecewise-affine warp as :func:`walnut`: a 9 x 9 grid of control
    points following closed smooth paths (global rotation, scaling and shear plus a
    spatially smooth local deformation; typically 1 to 2 pixels, at most about 5 pixels
    at N = 128), one period over the P frames, tapered to zero at the inscribed circle.

    Parameters
    ----------
    frames : int
        Number of time frames P >= 1; the motion period always spans the P frames.
    size : int
        Image side N >= 8 (pixels).
    seed : int
        Non-negative seed of the motion (the head itself is fixed).

    Returns
    -------
    numpy.ndarray
        float32 (P, N, N) values in ``[0, 1]``, zero outside the inscribed circle.

    Raises
    ------
    ValueError
        If frames < 1, size < 8 or seed < 0, or an argument is not an integer.
    """
    return render(frames, size, seed, [0.0])[:, 0]
