"""Forward operators: dynamic tomography, dynamic Cartesian MRI and non-Cartesian (radial) MRI."""

from .base import LinearOperator, inner, resolve_device
from .mri import DynamicMRI, fft2c, ifft2c
from .nufft import DynamicNonCartesianMRI
from .tomography import DynamicTomography, disk_mask

__all__ = [
    "LinearOperator",
    "DynamicTomography",
    "DynamicMRI",
    "DynamicNonCartesianMRI",
    "fft2c",
    "ifft2c",
    "disk_mask",
    "inner",
    "resolve_device",
]
