"""Dynamic Cartesian MRI: per-frame k-space sampling masks, single or multiple coils.

``forward``: image stack (P, H, W) -> k-space complex64 with
``y[p, c] = mask[p] * F(coil_maps[c] * x[p])`` where ``F`` is the orthonormal centred 2D
FFT ``fftshift(fft2(ifftshift(.), norm="ortho"))``.

Two layouts of the range, chosen from the mask:

- line sampling (every frame samples the same number L of whole phase-encode rows, as a
  scanner's k-t acquisitions do): the sampled rows only, (P, C, L, W), row ``l`` of frame
  ``p`` being k-space row ``sampled_rows[p, l]``. Only those rows are computed: the
  transform along the rows is a product with the L rows of the centred DFT matrix of
  each frame (a batched matrix product, over a few frames at a time so that the coil
  images stay in cache), then an FFT along the readout (its centring shifts folded
  into the maps and one sign per column); nothing is zero-filled. With P = 128, C = 8,
  N = 128 and 8 lines a forward and adjoint took 61 ms of CPU time on one thread against
  514 ms for the full FFTs of the same sampling density (benchmarks/results/mri_operators.md).
- any other mask: the full grid (P, C, H, W), zero where unsampled.

:meth:`DynamicMRI.measured` turns a measurement file's zero-filled (P, C, H, W) k-space
into the range layout, :meth:`DynamicMRI.zero_filled` the other way.

Full grid: for even H and W the shifts are done without moving data: there, ``F = s D fft2 D`` with
``D`` the checkerboard ``(-1)^(i+j)`` and ``s = (-1)^((H+W)/2)``, so the operator folds
``D`` into the coil maps and ``s D`` into a real-valued mask, computed once; a product is
then one complex multiplication by the maps, one FFT and one real multiplication by the
mask (the two shifts were each a full copy of the k-space).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import LinearOperator, resolve_device

#: Coil-image bytes the line-sampled products keep at once (a few frames): small enough to
#: stay in cache between the multiplication by the maps and the matrix product.
_CHUNK_BYTES = 4 * 2**20


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
        self.sampled_rows = _sampled_rows(mask)
        # The full-grid products fold the FFT shifts into modulated maps and mask (below).
        self._modulated = self.sampled_rows is None and height % 2 == 0 and width % 2 == 0
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
        if self.sampled_rows is not None:
            self._set_up_line_sampling()

    @property
    def line_sampled(self) -> bool:
        """True when the range holds the sampled rows only, (P, C, L, W)."""
        return self.sampled_rows is not None

    def _set_up_line_sampling(self) -> None:
        n_frames, n_lines = self.sampled_rows.shape
        height, width = self.image_shape
        n_coils = self.coil_maps.shape[0]
        # Row l of frame p of the centred orthonormal DFT along the rows (pixel y sits at
        # y - H // 2, row k at frequency k - H // 2).
        frequencies = (self.sampled_rows.double() - height // 2)[..., None]
        positions = torch.arange(height, dtype=torch.float64) - height // 2
        dft_rows = torch.exp(-2j * torch.pi * frequencies * positions / height) / height**0.5
        self._dft_rows = dft_rows.to(torch.complex64).to(self.device)  # (P, L, H)
        self._dft_rows_adjoint = self._dft_rows.conj().transpose(1, 2).contiguous()  # (P, H, L)
        maps = self.coil_maps
        # The centred FFT along an even readout is s D fft(D .) with D = (-1)^x and
        # s = (-1)^(W/2): D goes into the maps, s D into one real weight per column.
        if width % 2 == 0:
            alternating = torch.from_numpy(1.0 - 2.0 * (np.arange(width) % 2)).float().to(self.device)
            maps = maps * alternating
            self._readout_weights = (-1.0 if (width // 2) % 2 else 1.0) * alternating
        else:
            self._readout_weights = None
        self._readout_maps = maps.contiguous()
        self._conj_readout_maps = maps.conj().contiguous()
        self._chunk_frames = max(1, _CHUNK_BYTES // (8 * n_coils * height * width))
        self.sampled_rows = self.sampled_rows.to(self.device)
        self.range_shape = (n_frames, n_coils, n_lines, width)

    @classmethod
    def from_measurements(cls, measurements, device="cpu", **options) -> "DynamicMRI":
        """The operator of single-slice MRI measurements (their ``mask`` and ``coil_maps``).

        Images are complex unless ``complex_image=False`` is given: a scanner's images carry
        phase (field inhomogeneity, coil phases, flow), and real-valued images would
        double the effective sampling through conjugate symmetry.
        """
        options.setdefault("complex_image", True)
        return cls(measurements.mask, measurements.coil_maps, device=device, **options)

    @property
    def n_frames(self) -> int:
        return self.domain_shape[0]

    def support_mask(self) -> torch.Tensor | None:
        """Pixels some coil is sensitive to (see :func:`coil_support`)."""
        return coil_support(self.coil_maps)

    def kspace_normal_weights(self) -> torch.Tensor | None:
        """K-space sampling weights (P, H, W) of a single-coil operator (``None`` with coil maps).

        With complex images ``A_p^H A_p = F^H M_p F``: the mask itself. For real images
        ``A_p^T A_p x = Re(F^H M_p F x) = F^H Mbar_p F x`` with the symmetrised mask
        ``Mbar_p(omega) = (M_p(omega) + M_p(-omega)) / 2``. Coil maps other than 1 make
        ``A^H A`` no diagonal in k-space: ``None``.
        """
        maps = self.coil_maps
        if maps.shape[0] != 1 or not bool(torch.all(maps == 1)):
            return None
        mask = self.mask.float()
        if self.is_complex_domain:
            return mask
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
        if self.line_sampled:
            held += [self.sampled_rows, self._dft_rows, self._dft_rows_adjoint, self._readout_maps, self._conj_readout_maps]
        return sum(t.numel() * t.element_size() for t in held)

    def measured(self, data) -> torch.Tensor:
        """A file's k-space (P, C, H, W), zero-filled, in the range layout, on the operator's device."""
        data = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
        data = data.to(self.device).to(torch.complex64)
        full_shape = (self.n_frames, self.coil_maps.shape[0], *self.image_shape)
        if tuple(data.shape) != full_shape:
            raise ValueError(f"DynamicMRI.measured expects k-space of shape {full_shape}, got {tuple(data.shape)}")
        if not self.line_sampled:
            return data
        frames = torch.arange(self.n_frames, device=self.device)[:, None]
        return data.permute(0, 2, 1, 3)[frames, self.sampled_rows].permute(0, 2, 1, 3).contiguous()

    def zero_filled(self, y: torch.Tensor) -> torch.Tensor:
        """Range-layout k-space back on the full grid (P, C, H, W), zero where unsampled."""
        y = self._check_input(y, self.range_shape, "zero_filled")
        if not self.line_sampled:
            return y
        full = torch.zeros((self.n_frames, self.image_shape[0], self.coil_maps.shape[0], self.image_shape[1]),
                           dtype=y.dtype, device=self.device)
        frames = torch.arange(self.n_frames, device=self.device)[:, None]
        full[frames, self.sampled_rows] = y.permute(0, 2, 1, 3)
        return full.permute(0, 2, 1, 3).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(P, H, W) image -> complex k-space in the range layout (see the module docstring)."""
        x = self._check_input(x, self.domain_shape, "forward")
        x = x.to(torch.complex64) if (self.complex_image or x.is_complex()) else x.to(torch.float32)
        if not self.complex_image and x.is_complex():
            raise ValueError("this DynamicMRI operator takes real images; build it with complex_image=True")
        if self.line_sampled:
            return self._forward_lines(x)
        if not self._modulated:
            return fft2c(self.coil_maps[None] * x[:, None]) * self.mask[:, None]
        kspace = torch.fft.fft2(self._modulated_maps[None] * x[:, None], norm="ortho")
        return torch.view_as_complex(torch.view_as_real(kspace) * self._signed_mask)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Range-layout k-space -> (P, H, W) image (real part unless complex_image)."""
        y = self._check_input(y, self.range_shape, "adjoint").to(torch.complex64).resolve_conj()
        if self.line_sampled:
            image = self._adjoint_lines(y)
        elif self._modulated:
            masked = torch.view_as_complex(torch.view_as_real(y) * self._signed_mask)
            coil_images = torch.fft.ifft2(masked, norm="ortho")
            image = torch.sum(torch.conj(self._modulated_maps)[None] * coil_images, dim=1)
        else:
            coil_images = ifft2c(y * self.mask[:, None])
            image = torch.sum(torch.conj(self.coil_maps)[None] * coil_images, dim=1)
        return image if self.complex_image else image.real

    def _frame_chunks(self):
        return [slice(first, first + self._chunk_frames) for first in range(0, self.n_frames, self._chunk_frames)]

    def _forward_lines(self, x: torch.Tensor) -> torch.Tensor:
        # Per frame: the L sampled rows of the row DFT of every coil image, (C, L, W), a few
        # frames at a time so that the coil images stay in cache; then the readout FFT.
        lines = torch.cat([
            torch.matmul(self._dft_rows[chunk, None], self._readout_maps[None] * x[chunk, None])
            for chunk in self._frame_chunks()
        ])  # (P, C, L, W)
        if self._readout_weights is None:
            return torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(lines, dim=-1), dim=-1, norm="ortho"), dim=-1)
        kspace = torch.fft.fft(lines, dim=-1, norm="ortho")
        torch.view_as_real(kspace).mul_(self._readout_weights[:, None])  # a fresh tensor: in place
        return kspace

    def _adjoint_lines(self, y: torch.Tensor) -> torch.Tensor:
        if self._readout_weights is None:
            lines = torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(y, dim=-1), dim=-1, norm="ortho"), dim=-1)
        else:
            weighted = torch.view_as_complex(torch.view_as_real(y) * self._readout_weights[:, None])
            lines = torch.fft.ifft(weighted, dim=-1, norm="ortho")
        return torch.cat([
            torch.sum(self._conj_readout_maps[None] * torch.matmul(self._dft_rows_adjoint[chunk, None], lines[chunk]), dim=1)
            for chunk in self._frame_chunks()
        ])


def coil_support(coil_maps: torch.Tensor) -> torch.Tensor | None:
    """(H, W) float32 0/1 mask of the pixels where some coil map is non-zero, or ``None``.

    ESPIRiT sets the maps to zero where no coil sees signal (its eigenvalue crop): the data
    say nothing about those pixels, and the estimate there would come from the prior alone,
    so the solvers keep them zero, as a SENSE reconstruction with such maps does. Maps that
    are non-zero everywhere (coil sensitivities of a simulation, no maps) give ``None``.

    Parameters
    ----------
    coil_maps : torch.Tensor
        complex (C, H, W) sensitivities.
    """
    seen = torch.any(coil_maps != 0, dim=0)
    return None if bool(seen.all()) else seen.to(torch.float32)


def sampled_line_count(mask) -> int | None:
    """L, the phase-encode lines per frame of a line-sampled (P, H, W) mask (the
    :attr:`DynamicMRI.line_sampled` layout), or None for any other mask."""
    rows = _sampled_rows(np.asarray(mask, dtype=bool))
    return None if rows is None else int(rows.shape[1])


def _sampled_rows(mask: np.ndarray) -> torch.Tensor | None:
    """(P, L) int64 rows of a line-sampled mask (whole rows, L per frame, 0 < L < H), else None."""
    rows = mask.any(axis=2)
    if not np.array_equal(mask, np.broadcast_to(rows[:, :, None], mask.shape)):
        return None
    counts = rows.sum(axis=1)
    if counts.min() != counts.max() or not 0 < counts[0] < mask.shape[1]:
        return None
    return torch.from_numpy(np.nonzero(rows)[1].reshape(mask.shape[0], counts[0]))
