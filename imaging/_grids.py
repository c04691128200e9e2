"""Pixel-grid helpers that need only NumPy (the phantoms and the measurements use them
without loading the operators, and so PyTorch)."""

from __future__ import annotations

import numpy as np


def disk_mask(n: int) -> np.ndarray:
    """Boolean (n, n) mask of the pixels whose centres lie in the inscribed circle."""
    centre = (n - 1) / 2.0
    yy, xx = np.mgrid[:n, :n]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (n / 2.0) ** 2


def block_average(images: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` pixel blocks of the last two axes.

    Parameters
    ----------
    images : numpy.ndarray, shape (..., F*H, F*W)
    factor : int
        Block side F; it divides both sides.

    Returns
    -------
    numpy.ndarray
        (..., H, W), the dtype of ``images`` (complex stays complex).
    """
    if factor == 1:
        return images
    *lead, height, width = images.shape
    blocks = images.reshape(*lead, height // factor, factor, width // factor, factor)
    return blocks.mean(axis=(-3, -1)).astype(images.dtype, copy=False)
