"""Dynamic phantoms: time-varying 2D objects and slice stacks for the simulations.

Every phantom is a function ``name(frames=64, size=128, seed=0)`` returning a float32
array (P, N, N) with values in [0, 1], deterministic for a given seed::

    from imaging.phantoms import walnut, get_phantom, volume
    frames = walnut(frames=64, size=128)          # (64, 128, 128)
    frames = get_phantom("cardiac")(frames=32)    # (32, 128, 128)
    stack = volume("material", 64, 128, 8)        # (64, 8, 128, 128)
    movie = animate(static_image, frames=64)      # any static (N, N) object, moving

The tomography phantoms (walnut, shepp_logan, material) are zero outside the circle
inscribed in the N x N grid (``imaging.operators.disk_mask``); cardiac is an MRI
magnitude image and is not masked; ``cardiac_phase`` gives it a smooth, drifting phase
(complex frames ``cardiac(...) * exp(1j * cardiac_phase(...))``).
"""

from ._cardiac import cardiac, cardiac_phase
from ._material import material
from ._registry import PHANTOMS, animate, get_phantom, volume
from ._shepp_logan import shepp_logan
from ._walnut import walnut

__all__ = ["walnut", "shepp_logan", "material", "cardiac", "cardiac_phase", "PHANTOMS", "animate", "get_phantom", "volume"]
