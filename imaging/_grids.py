"""Pixel-grid helpers that need only NumPy (the phantoms use them without loading the
operators, and so PyTorch)."""

from __future__ import annotations

import numpy as np


def disk_mask(n: int) -> np.ndarray:
    """Boolean (n, n) mask of the pixels whose centres lie in the inscribed circle."""
    centre = (n - 1) / 2.0
    yy, xx = np.mgrid[:n, :n]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (n / 2.0) ** 2
