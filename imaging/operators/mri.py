"""Dynamic Cartesian MRI: per-frame k-space sampling masks, single or multiple coils.

``forward``: image stack (P, H, W) -> k-space (P, C, H, W) complex64 with
``y[p, c] = mask[p] * F(coil_maps[c] * x[p])`` where ``F`` is the orthonormal centred 2D
FFT ``fftshift(fft2(ifftshift(.), norm="ortho"))``. Unsampled locations are zero.

For even H and W the shifts are done without moving data: there, ``F = s D fft2 D`` with
``D`` the checkerboard ``(-1)^(i+j)`` and ``s = (-1)^((H+W)/2)``, so the operator folds
``D`` into the coil maps and ``s D`` into a real-valued mask, computed once; a product is
then one complex multiplication by the maps, one FFT and one real multiplication by the
mask (the two shifts were each a full copy of the k-space).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import LinearOperator, resolve_device


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal centred 2D FFT over the last two axes."""
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c`."""
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=(-2, -1)), norm="ortho"), dim=(-2, -1))


class DynamicMRI(LinearOperator):
    """Dynamic Cartesian MRI with k-t sampling.

    Parameters
    ----------
    mask : array_like bool, shape (P, H, W)
        Sampled k-space locations of each frame (centred k-space layout).
    coil_maps : array_like complex, shape (C, H, W), optional
        Coil sensitivities; single coil with unit sensitivity when omitted.
    device : {"cpu", "cuda", "auto"}
    complex_image : bool
        False (default): the image is real, ``forward`` takes float32 (P, H, W) and
        ``adjoint`` returns the real part (the exact adjoint for the real inner product).
        True: complex64 images.
    """

    initialisations = ("kspace-centre",)

    def __init__(self, mask, coil_maps=None, device="cpu", complex_image=False):
        mask = np.asarray(mask)
        if mask.ndim != 3 or min(mask.shape) < 1:
            raise ValueError(f"mask must have shape (P, H, W), got {mask.shape}")
        if mask.dtype != bool:
            if not np.all(np.isin(mask, (0, 1))):
                raise ValueError("mask must be boolean (or hold only 0 and 1)")
            mask = mask.astype(bool)
        n_frames, height, width = mask.shape
        if coil_maps is None:
            coil_maps = np.ones((1, height, width), dtype=np.complex64)
        coil_maps = np.asarray(coil_maps)
        if coil_maps.ndim != 3 or coil_maps.shape[1:] != (height, width):
            raise ValueError(f"coil_maps must have shape (C, {height}, {width}), got {coil_maps.shape}")
        if not np.all(np.isfinite(coil_maps)):
            raise ValueError("coil_maps contain NaN or infinite values")
        self.device = resolve_device(device)
        self.complex_image = bool(complex_image)
        self.mask = torch.from_numpy(mask).to(self.device)
        self.coil_maps = torch.from_numpy(coil_maps.astype(np.complex64)).to(self.device)
        n_coils = coil_maps.shape[0]
        self.image_shape = (height, width)
        self._modulated = height % 2 == 0 and width % 2 == 0
        if self._modulated:
            rows, cols = np.indices((height, width))
            checkerboard = torch.from_numpy((1 - 2 * ((rows + cols) % 2)).astype(np.float32)).to(self.device)
            sign = -1.0 if ((height + width) // 2) % 2 else 1.0
            self._modulated_maps = self.coil_maps * checkerboard
            # (P, 1, H, W, 1): multiplies real views of (P, C, H, W) k-space.
            self._signed_mask = (self.mask * (sign * checkerboard))[:, None, :, :, None]
        self.domain_shape = (n_frames, height, width)
        self.range_shape = (n_frames, n_coils, height, width)
        self.domain_dtype = torch.complex64 if self.complex_image else torch.float32
        self.range_dtype = torch.complex64

    @classmethod
    def from_measurements(cls, measurements, device="cpu", **options) -> "DynamicMRI":
        """The operator of single-slice MRI measurements (their ``mask`` and ``coil_maps``)."""
        return cls(measurements.mask, measurements.coil_maps, device=device, **options)

    @property
    def n_frames(self) -> int:
        return self.domain_shape[0]

    def kspace_normal_weights(self) -> torch.Tensor | None:
        """Symmetrised k-space sampling masks (P, H, W) of a single-coil real-image operator.

        For real images ``A_p^T A_p x = Re(F^H M_p F x) = F^H Mbar_p F x`` with
        ``Mbar_p(omega) = (M_p(omega) + M_p(-omega)) / 2``, a diagonal in k-space. With
        complex images it is ``M_p`` itself, with coil maps other than 1 it is no
        diagonal; both return ``None``.
        """
        if self.is_complex_domain:
            return None
        maps = self.coil_maps
        if maps.shape[0] != 1 or not bool(torch.all(maps == 1)):
            return None
        mask = self.mask.float()
        height, width = mask.shape[-2:]
        # Centred layout: frequency -omega sits at index (N - c) mod N for even N, N - 1 - c for odd N.
        reflected = torch.roll(torch.flip(mask, dims=(-2, -1)), shifts=(1 - height % 2, 1 - width % 2), dims=(-2, -1))
        return 0.5 * (mask + reflected)

    @property
    def nbytes(self) -> int:
        """Memory held by the operator's tensors: mask, coil maps and their modulated forms (bytes)."""
        held = [self.mask, self.coil_maps]
        if self._modulated:
            held += [self._modulated_maps, self._signed_mask]
        return sum(t.numel() * t.element_size() for t in held)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(P, H, W) image -> (P, C, H, W) complex k-space, zero where unsampled."""
        x = self._check_input(x, self.domain_shape, "forward")
        x = x.to(torch.complex64) if (self.complex_image or x.is_complex()) else x.to(torch.float32)
        if not self.complex_image and x.is_complex():
            raise ValueError("this DynamicMRI operator takes real images; build it with complex_image=True")
        if not self._modulated:
            return fft2c(self.coil_maps[None] * x[:, None]) * self.mask[:, None]
        kspace = torch.fft.fft2(self._modulated_maps[None] * x[:, None], norm="ortho")
        return torch.view_as_complex(torch.view_as_real(kspace) * self._signed_mask)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """(P, C, H, W) k-space -> (P, H, W) image (real part unless complex_image)."""
        y = self._check_input(y, self.range_shape, "adjoint").to(torch.complex64).resolve_conj()
        if self._modulated:
            masked = torch.view_as_complex(torch.view_as_real(y) * self._signed_mask)
            coil_images = torch.fft.ifft2(masked, norm="ortho")
            image = torch.sum(torch.conj(self._modulated_maps)[None] * coil_images, dim=1)
        else:
            coil_images = ifft2c(y * self.mask[:, None])
            image = torch.sum(torch.conj(self.coil_maps)[None] * coil_images, dim=1)
        return image if self.complex_image else image.real
