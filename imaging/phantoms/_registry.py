"""Phantom registry and dynamic volumes built from the phantoms' 3D structure."""

from __future__ import annotations

import numpy as np

from . import _cardiac, _material, _shepp_logan, _walnut
from ._geometry import (
    as_integer,
    check_arguments,
    disk_outside,
    frame_times,
    piecewise_affine_motion,
    pixel_grid,
    sample,
)

PHANTOMS = {
    "walnut": _walnut.walnut,
    "shepp_logan": _shepp_logan.shepp_logan,
    "material": _material.material,
    "cardiac": _cardiac.cardiac,
}

_SLICE_RENDERERS = {
    "walnut": _walnut.render,
    "shepp_logan": _shepp_logan.render,
    "material": _material.render,
    "cardiac": _cardiac.render,
}


def get_phantom(name: str):
    """Look up a phantom function by name.

    Parameters
    ----------
    name : str
        One of ``PHANTOMS`` ("walnut", "shepp_logan", "material", "cardiac").

    Returns
    -------
    callable
        ``phantom(frames=64, size=128, seed=0)`` returning float32 (P, N, N).

    Raises
    ------
    ValueError
        If ``name`` is not a known phantom; the message lists the valid names.
    """
    try:
        return PHANTOMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown phantom {name!r}; expected one of: {', '.join(PHANTOMS)}") from None


def volume(name: str, frames: int, size: int, slices: int, seed: int = 0) -> np.ndarray:
    """Dynamic volume: a stack of slices through the phantom's 3D object, all moving alike.

    Slice ``k`` lies at height ``z_k = linspace(-1, 1, slices)[k]`` through the
    object (``z = 0`` for a single slice, so ``volume(name, P, N, 1)[:, 0]`` equals
    ``get_phantom(name)(P, N)``). The structure changes smoothly with z: the walnut's
    shell narrows and its kernel folds change (3D random fields), the foam block is cut
    through different spherical pores, the heart narrows from base to apex while the
    liver grows, and the Shepp-Logan head narrows and its interior shifts. The
    motion, which depends on time and seed only, is the same for every slice (for
    cardiac: the same heartbeat and breathing phases, acting on each slice's anatomy),
    so the volume can be reconstructed slice by slice.

    Parameters
    ----------
    name : str
        Phantom name, one of ``PHANTOMS``.
    frames : int
        Number of time frames P >= 1.
    size : int
        Image side N >= 8.
    slices : int
        Number of slices Z >= 1.
    seed : int
        Non-negative seed of the structure and motion.

    Returns
    -------
    numpy.ndarray
        float32 (P, Z, N, N) with values in ``[0, 1]``; zero outside the inscribed
        circle of each slice for the tomography phantoms.

    Raises
    ------
    ValueError
        If the name is unknown or frames < 1, size < 8, slices < 1, seed < 0.
    """
    get_phantom(name)
    slices = as_integer("slices", slices)
    if slices < 1:
        raise ValueError(f"slices must be an integer >= 1, got {slices}")
    positions = np.linspace(-1.0, 1.0, slices) if slices > 1 else np.zeros(1)
    return _SLICE_RENDERERS[name](frames, size, seed, positions)


def animate(image, frames: int, seed: int = 0) -> np.ndarray:
    """Move a static image with the phantoms' random piecewise-affine motion.

    The motion is that of the walnut and Shepp-Logan phantoms (a 9 x 9 grid of control
    points on closed smooth paths: global rotation, scaling and shear plus a smooth
    local deformation, one period over the frames, tapered to zero at the inscribed
    circle); it turns any static object into a dynamic one.

    Parameters
    ----------
    image : array_like, shape (N, N)
        Static image with values in ``[0, 1]``.
    frames : int
        Number of time frames P >= 1.
    seed : int
        Non-negative seed of the motion.

    Returns
    -------
    numpy.ndarray
        float32 (P, N, N) in ``[0, 1]``, zero outside the inscribed circle.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != image.shape[1]:
        raise ValueError(f"image must be square (N, N), got shape {image.shape}")
    frames, size, seed = check_arguments(frames, image.shape[0], seed)
    y, x = pixel_grid(size)
    dy, dx = piecewise_affine_motion(np.random.default_rng([seed, 1]), y, x, frame_times(frames, periodic=True))
    movie = sample(image, y + dy, x + dx)
    movie[:, disk_outside(size)] = 0.0
    return movie
