"""Dynamic 2D parallel-beam tomography, matrix-free in the sense that matters: sparse.

Frame ``p`` of the object is projected at its own view angles ``angles[p]`` with ASTRA's
2D parallel-beam geometry (``astra.create_proj_geom('parallel', detector_spacing, D,
angles[p])`` over ``astra.create_vol_geom(N, N)``). The per-view projection weights come
from ASTRA's CPU projector and are stacked into one block-diagonal sparse matrix (one
block per frame), held once in float32 with int32 indices. The dense system matrix of
the paper's reference code (4.3 GB at N=128, P=256) is never formed.

On the CPU the forward product runs in PyTorch's (multi-threaded) sparse kernels and
the adjoint runs as a transposed product in SciPy over the *same* buffers, so the
operator holds one copy of the weights. On CUDA both the matrix and its transpose live
on the GPU.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .base import LinearOperator, resolve_device

PROJECTORS = ("line", "linear", "strip")
SUPPORTS = ("disk", "square")


def disk_mask(n: int) -> np.ndarray:
    """Boolean (n, n) mask of the pixels whose centres lie in the inscribed circle."""
    centre = (n - 1) / 2.0
    yy, xx = np.mgrid[:n, :n]
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= (n / 2.0) ** 2


def _as_angle_array(angles) -> np.ndarray:
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim == 1:
        angles = angles[:, None]
    if angles.ndim != 2 or angles.shape[0] == 0 or angles.shape[1] == 0:
        raise ValueError(f"angles must have shape (P,) or (P, V) with P, V >= 1, got {angles.shape}")
    if not np.all(np.isfinite(angles)):
        raise ValueError("angles contain NaN or infinite values")
    return angles


def astra_projection_matrix(angles_flat, image_size, n_detectors, detector_spacing, projector):
    """ASTRA's projection matrix (len(angles_flat) * D, N * N) as SciPy CSR (float64)."""
    import astra

    vol_geom = astra.create_vol_geom(image_size, image_size)
    proj_geom = astra.create_proj_geom(
        "parallel", float(detector_spacing), int(n_detectors), np.asarray(angles_flat, dtype=np.float64)
    )
    projector_id = astra.create_projector(projector, proj_geom, vol_geom)
    try:
        matrix_id = astra.projector.matrix(projector_id)
        try:
            matrix = astra.matrix.get(matrix_id)
        finally:
            astra.matrix.delete(matrix_id)
    finally:
        astra.projector.delete(projector_id)
    return sp.csr_matrix(matrix)


def block_diagonal_projector(angles, image_size, n_detectors, detector_spacing=1.0, projector="line", support="disk"):
    """Block-diagonal CSR (P*V*D, P*N*N) float32 with one ASTRA block per frame.

    Entries for pixels outside ``support`` are dropped, which makes the operator
    ``A M`` with ``M`` the support mask (its adjoint is ``M A^T``).
    """
    angles = _as_angle_array(angles)
    n_frames, n_views = angles.shape
    n_pixels = image_size * image_size
    matrix = astra_projection_matrix(angles.ravel(), image_size, n_detectors, detector_spacing, projector)
    rows_per_frame = n_views * n_detectors
    entry_row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    row_frame = entry_row // rows_per_frame
    keep = np.ones(matrix.nnz, dtype=bool)
    if support == "disk":
        keep = disk_mask(image_size).ravel()[matrix.indices]
    index_dtype = np.int32 if n_frames * n_pixels < np.iinfo(np.int32).max else np.int64
    columns = (matrix.indices[keep].astype(np.int64) + row_frame[keep] * n_pixels).astype(index_dtype)
    kept_per_row = np.bincount(entry_row[keep], minlength=matrix.shape[0])
    indptr = np.zeros(matrix.shape[0] + 1, dtype=index_dtype)
    np.cumsum(kept_per_row, out=indptr[1:])
    return sp.csr_matrix(
        (matrix.data[keep].astype(np.float32), columns, indptr),
        shape=(matrix.shape[0], n_frames * n_pixels),
    )


def _torch_csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr),
            torch.from_numpy(matrix.indices),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
        ).to(device)


class _Project(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_flat, op):
        ctx.op = op
        return op._matvec(x_flat)

    @staticmethod
    def backward(ctx, grad):
        return ctx.op._rmatvec(grad), None


class _BackProject(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y_flat, op):
        ctx.op = op
        return op._rmatvec(y_flat)

    @staticmethod
    def backward(ctx, grad):
        return ctx.op._matvec(grad), None


class DynamicTomography(LinearOperator):
    """Dynamic parallel-beam tomography: frame p projected at ``angles[p]``.

    Parameters
    ----------
    angles : array_like, shape (P,) or (P, V)
        View angles in radians (ASTRA convention), V views per frame.
    image_shape : tuple (N, N)
        Reconstruction grid; square images only.
    n_detectors : int, optional
        Detector bins D (default N).
    detector_spacing : float
        Bin width in pixel units.
    device : {"cpu", "cuda", "auto"}
    projector : {"line", "linear", "strip"}
        ASTRA CPU projector that supplies the weights ("line" holds the fewest entries).
    support : {"disk", "square"}
        "disk" treats the object as zero outside the inscribed circle (the field of view
        that every view sees) and stores only those pixels' weights.

    Notes
    -----
    ``forward``: torch (P, N, N) float32 -> (P, V, D) float32.
    ``adjoint``: (P, V, D) -> (P, N, N). Both are differentiable.
    """

    def __init__(
        self,
        angles,
        image_shape,
        n_detectors=None,
        detector_spacing=1.0,
        device="cpu",
        projector="line",
        support="disk",
    ):
        angles = _as_angle_array(angles)
        image_shape = tuple(int(s) for s in np.atleast_1d(image_shape))
        if len(image_shape) != 2 or image_shape[0] != image_shape[1] or image_shape[0] < 2:
            raise ValueError(f"image_shape must be (N, N) with N >= 2, got {image_shape}")
        if projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, got {projector!r}")
        if support not in SUPPORTS:
            raise ValueError(f"support must be one of {SUPPORTS}, got {support!r}")
        n = image_shape[0]
        n_detectors = n if n_detectors is None else int(n_detectors)
        if n_detectors < 1:
            raise ValueError(f"n_detectors must be positive, got {n_detectors}")
        if not np.isfinite(detector_spacing) or detector_spacing <= 0:
            raise ValueError(f"detector_spacing must be a positive number, got {detector_spacing}")
        self.angles = angles
        self.image_shape = image_shape
        self.n_detectors = n_detectors
        self.detector_spacing = float(detector_spacing)
        self.projector = projector
        self.support = support
        self.device = resolve_device(device)
        n_frames, n_views = angles.shape
        self.domain_shape = (n_frames, n, n)
        self.range_shape = (n_frames, n_views, n_detectors)
        self._matrix = block_diagonal_projector(
            angles, n, n_detectors, self.detector_spacing, projector, support
        )
        self._matrix_t = _torch_csr(self._matrix, self.device)
        self._matrix_t_transposed = (
            _torch_csr(self._matrix.T.tocsr(), self.device) if self.device.type == "cuda" else None
        )

    @property
    def n_frames(self) -> int:
        return self.domain_shape[0]

    @property
    def nbytes(self) -> int:
        """Memory held by the sparse weights (bytes)."""
        m = self._matrix
        total = m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        return total * (2 if self._matrix_t_transposed is not None else 1)

    def support_mask(self) -> torch.Tensor:
        """(N, N) float mask of the pixels the operator sees."""
        n = self.image_shape[0]
        mask = disk_mask(n) if self.support == "disk" else np.ones((n, n), dtype=bool)
        return torch.from_numpy(mask.astype(np.float32)).to(self.device)

    def _matvec(self, x_flat: torch.Tensor) -> torch.Tensor:
        return torch.mv(self._matrix_t, x_flat.contiguous())

    def _rmatvec(self, y_flat: torch.Tensor) -> torch.Tensor:
        if self._matrix_t_transposed is not None:
            return torch.mv(self._matrix_t_transposed, y_flat.contiguous())
        y = y_flat.detach().contiguous().numpy()
        return torch.from_numpy(np.ascontiguousarray(self._matrix.T @ y, dtype=np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project: (P, N, N) -> (P, V, D)."""
        x = self._check_input(x, self.domain_shape, "forward").to(torch.float32)
        return _Project.apply(x.reshape(-1), self).reshape(self.range_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Back-project: (P, V, D) -> (P, N, N)."""
        y = self._check_input(y, self.range_shape, "adjoint").to(torch.float32)
        return _BackProject.apply(y.reshape(-1), self).reshape(self.domain_shape)
