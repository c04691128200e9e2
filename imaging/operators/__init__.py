"""Forward operators: dynamic parallel-beam tomography and dynamic Cartesian MRI."""

from .base import LinearOperator, inner, resolve_device
from .mri import DynamicMRI, fft2c, ifft2c
from .tomography import DynamicTomography, disk_mask

__all__ = [
    "LinearOperator",
    "DynamicTomography",
    "DynamicMRI",
    "fft2c",
    "ifft2c",
    "disk_mask",
    "inner",
    "resolve_device",
]
