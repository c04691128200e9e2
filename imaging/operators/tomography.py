"""Dynamic 2D tomography (parallel or fan beam), matrix-free in the sense that matters: sparse.

Frame ``p`` of the object is projected at its own view angles ``angles[p]`` with ASTRA's
2D geometry (:class:`imaging.operators.geometry.ProjectionGeometry`: parallel beam
``astra.create_proj_geom('parallel', detector_spacing, D, angles[p])``, or fan beam
``'fanflat'`` with ``source_origin`` and ``origin_detector``, and the vector geometries
when the rotation axis is off the detector centre) over ``astra.create_vol_geom(N, N)``.
The per-view projection weights come from ASTRA's CPU projector. The operator is block
diagonal over frames; its weights are held once, in float32 with int32 indices, as a list
of *frame blocks*: CSR matrices that each cover a run of consecutive frames, with column
indices local to the block. The dense system matrix of the paper's reference code (4.3 GB
at N=128, P=256) is never formed.

On the CPU both products run in SciPy's sparse kernels, which release the GIL, on a pool
of threads, one block per task: the forward product is the CSR product of each block,
the adjoint the product of its transpose, a CSC view of the *same* buffers, so the
operator holds one copy of the weights. Blocks write disjoint parts of the output, and a
block's back-projection (a few frames) stays in cache while its weights scatter into it,
which makes the adjoint about as fast as the forward product. (PyTorch's CSR kernel is
as fast for one large forward product, but its transposed product is two orders of
magnitude slower, and one call per block makes its OpenMP threads spin when other
processes share the cores.) On CUDA the blocks are joined into one CSR matrix and its
transpose, both on the GPU.

Where the weights would take too much memory (large N and P), the same operator is
applied without them: ASTRA's projector runs on the fly, frame by frame
(:mod:`imaging.operators.tomography_matrix_free`, ``projector_backend``).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .._grids import disk_mask
from .._limits import DETECTOR_SPACING_RANGE, MAX_ABS_ANGLE
from ._pool import run_on_threads
from .base import LinearOperator, linear_map, resolve_device
from .geometry import ProjectionGeometry
from .tomography_matrix_free import FrameProjectors, choose_projector_backend

PROJECTORS = ("line", "linear", "strip")
SUPPORTS = ("disk", "square")

#: Weights per frame block (about 2 MB with their indices). Many small blocks keep the
#: threads evenly loaded even when other processes compete for the cores, and the cost
#: of one block call (about 20 microseconds) stays negligible next to its product.
_NONZEROS_PER_BLOCK = 1 << 18


def _as_angle_array(angles) -> np.ndarray:
    angles = np.asarray(angles, dtype=np.float64)
    if angles.ndim == 1:
        angles = angles[:, None]
    if angles.ndim != 2 or angles.shape[0] == 0 or angles.shape[1] == 0:
        raise ValueError(f"angles must have shape (P,) or (P, V) with P, V >= 1, got {angles.shape}")
    if not np.all(np.isfinite(angles)):
        raise ValueError("angles contain NaN or infinite values")
    return angles


def _astra_angles(angles_flat) -> np.ndarray:
    """Angles reduced to [0, 2 pi): ASTRA computes in float32 and loops forever on angles of
    about 2e8 rad, and loses the angle long before; beyond :data:`MAX_ABS_ANGLE` the
    reduction itself would be inexact, so those are refused."""
    angles = np.asarray(angles_flat, dtype=np.float64)
    if not np.all(np.abs(angles) <= MAX_ABS_ANGLE):
        raise ValueError(f"angles must be finite and within +-{MAX_ABS_ANGLE:g} rad")
    return np.mod(angles, 2 * np.pi)


def astra_geometry(angles_flat, geometry: ProjectionGeometry) -> dict:
    """ASTRA's projection geometry of views at ``angles_flat`` (radians), angles reduced
    (:func:`_astra_angles`) and the detector spacing checked against
    :data:`~imaging._limits.DETECTOR_SPACING_RANGE`; shared by the sparse and the
    matrix-free projectors."""
    low, high = DETECTOR_SPACING_RANGE
    if not low <= float(geometry.detector_spacing) <= high:
        raise ValueError(f"detector_spacing must be between {low:g} and {high:g}, got {geometry.detector_spacing!r}")
    return geometry.astra_geometry(_astra_angles(angles_flat))


def astra_projection_matrix(angles_flat, image_size, geometry: ProjectionGeometry, projector="line"):
    """ASTRA's projection matrix (len(angles_flat) * D, N * N) as SciPy CSR (float64).

    Parameters
    ----------
    angles_flat : array_like
        (M,) view angles in radians.
    image_size : int
        N of the (N, N) grid.
    geometry : ProjectionGeometry
        Detector, source and axis offset.
    projector : {"line", "linear", "strip"}
        Kind of weights (ASTRA's projector of that kind for the geometry).
    """
    import astra

    vol_geom = astra.create_vol_geom(image_size, image_size)
    proj_geom = astra_geometry(angles_flat, geometry)
    projector_id = astra.create_projector(geometry.astra_projector(projector), proj_geom, vol_geom)
    try:
        matrix_id = astra.projector.matrix(projector_id)
        try:
            matrix = astra.matrix.get(matrix_id)
        finally:
            astra.matrix.delete(matrix_id)
    finally:
        astra.projector.delete(projector_id)
    return sp.csr_matrix(matrix)


def _torch_csr(matrix: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr),
            torch.from_numpy(matrix.indices),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
        ).to(device)


@dataclasses.dataclass(frozen=True)
class FrameBlock:
    """The projection weights of frames ``[first_frame, stop_frame)``.

    ``matrix`` is CSR float32 of shape ``(F * V * D, F * N * N)`` with ``F`` the block's
    frame count: row ``(f, v, d)`` and column ``(f, i, j)`` in C order, local to the block.
    ``transposed`` is its transpose as a CSC view of the same buffers.
    """

    first_frame: int
    stop_frame: int
    matrix: sp.csr_matrix
    transposed: sp.csc_matrix

    @property
    def nbytes(self) -> int:
        m = self.matrix
        return m.data.nbytes + m.indices.nbytes + m.indptr.nbytes


def frame_block(angles, image_size, geometry: ProjectionGeometry, projector="line", support="disk"):
    """Build one :class:`FrameBlock` for ``angles`` of shape (F, V) (frames 0..F-1).

    Entries for pixels outside ``support`` are dropped, which makes the operator
    ``A M`` with ``M`` the support mask (its adjoint is ``M A^T``).
    """
    angles = _as_angle_array(angles)
    n_frames, n_views = angles.shape
    n_pixels = image_size * image_size
    n_detectors = geometry.n_detectors
    matrix = astra_projection_matrix(angles.ravel(), image_size, geometry, projector)
    entry_row = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    entry_frame = entry_row // (n_views * n_detectors)
    keep = disk_mask(image_size).ravel()[matrix.indices] if support == "disk" else slice(None)
    index_dtype = np.int32 if n_frames * n_pixels <= np.iinfo(np.int32).max else np.int64
    columns = (matrix.indices[keep] + entry_frame[keep] * n_pixels).astype(index_dtype)
    indptr = np.zeros(matrix.shape[0] + 1, dtype=index_dtype)
    np.cumsum(np.bincount(entry_row[keep], minlength=matrix.shape[0]), out=indptr[1:])
    block = sp.csr_matrix(
        (matrix.data[keep].astype(np.float32), columns, indptr), shape=(matrix.shape[0], n_frames * n_pixels)
    )
    return FrameBlock(0, n_frames, block, block.T)


def frame_blocks(angles, image_size, geometry: ProjectionGeometry, projector="line", support="disk"):
    """The block-diagonal projector of ``angles`` (P, V) as a list of :class:`FrameBlock`.

    Blocks hold about ``_NONZEROS_PER_BLOCK`` weights each (ASTRA's projectors put about
    N weights on a ray of an N x N image) and are built one after the other, so building
    never needs more temporary memory than one block.
    """
    angles = _as_angle_array(angles)
    n_frames, n_views = angles.shape
    frames_per_block = max(1, _NONZEROS_PER_BLOCK // (n_views * geometry.n_detectors * image_size))
    blocks = []
    for first in range(0, n_frames, frames_per_block):
        stop = min(n_frames, first + frames_per_block)
        local = frame_block(angles[first:stop], image_size, geometry, projector, support)
        blocks.append(dataclasses.replace(local, first_frame=first, stop_frame=stop))
    return blocks


def block_diagonal_matrix(blocks: list[FrameBlock]) -> sp.csr_matrix:
    """Join frame blocks into one CSR matrix (P*V*D, P*N*N) with global column indices."""
    rows_per_frame = blocks[0].matrix.shape[0] // (blocks[0].stop_frame - blocks[0].first_frame)
    cols_per_frame = blocks[0].matrix.shape[1] // (blocks[0].stop_frame - blocks[0].first_frame)
    n_frames = blocks[-1].stop_frame
    n_cols = n_frames * cols_per_frame
    offsets = np.cumsum([0] + [b.matrix.nnz for b in blocks])
    index_dtype = np.int32 if max(n_cols, offsets[-1]) <= np.iinfo(np.int32).max else np.int64
    indptr = np.concatenate([[0]] + [b.matrix.indptr[1:] + off for b, off in zip(blocks, offsets)])
    columns = np.concatenate([b.matrix.indices.astype(index_dtype) + b.first_frame * cols_per_frame for b in blocks])
    data = np.concatenate([b.matrix.data for b in blocks])
    return sp.csr_matrix((data, columns, indptr.astype(index_dtype)), shape=(n_frames * rows_per_frame, n_cols))


class DynamicTomography(LinearOperator):
    """Dynamic 2D tomography (parallel or fan beam): frame p projected at ``angles[p]``.

    Parameters
    ----------
    angles : array_like, shape (P,) or (P, V)
        View angles in radians (ASTRA convention), V views per frame.
    image_shape : tuple (N, N)
        Reconstruction grid; square images only.
    n_detectors : int, optional
        Detector bins D (default N).
    detector_spacing : float
        Bin width in pixel units (at the detector, for a fan beam).
    device : {"cpu", "cuda", "auto"}
    projector : {"line", "linear", "strip"}
        ASTRA CPU projector that supplies the weights ("line" holds the fewest entries).
        Fan beam: "line" (``line_fanflat``) or, without an axis offset, "strip"
        (``strip_fanflat``).
    support : {"disk", "square"}
        "disk" treats the object as zero outside the inscribed circle (the field of view
        that every view sees) and stores only those pixels' weights.
    geometry : {"parallel", "fan"}
    center_offset : float
        Where the rotation axis projects, in detector bins from the detector centre
        (signed, sub-pixel).
    source_origin, origin_detector : float, optional
        Fan beam: source-to-axis and axis-to-detector distances in pixel units (ASTRA
        ``fanflat``); the source must lie outside the grid.
    projector_backend : {"auto", "sparse", "matrix-free"}
        "sparse" stores the weights (fastest products); "matrix-free" applies ASTRA's
        projector on the fly, frame by frame, on the CPU (same weights, same products,
        no stored matrix: :mod:`imaging.operators.tomography_matrix_free`); "auto"
        keeps the sparse weights while they take at most an eighth of the memory
        available to the process (:func:`~imaging.operators.tomography_matrix_free.choose_projector_backend`).
        The choice is :attr:`projector_backend`.

    Notes
    -----
    ``forward``: torch (P, N, N) float32 -> (P, V, D) float32.
    ``adjoint``: (P, V, D) -> (P, N, N). Both are differentiable.
    On the CPU, both products use ``torch.get_num_threads()`` threads.
    The geometry is :attr:`projection_geometry`
    (:class:`imaging.operators.geometry.ProjectionGeometry`).
    """

    initialisations = ("fbp-svd", "projection")
    nonnegative_images = True  # attenuation coefficients
    costly_to_build = True
    # With the ramp-filter preconditioner 8 and 16 steps gave the same iterates to four
    # digits (walnut P = 128, benchmarks/results/tune_red_psm.md section 2): the steps
    # after the 8th cost time (half of a red-psm iteration's projections) and change nothing.
    lambda_cg_iterations = 8
    # One view per frame measures far fewer dimensions than MRI's lines and coils, and the
    # low-rank penalty carries more of the prior: on the tuning walnut and material (P = 64 /
    # 128 / 256) 4 gave 0.5-1.0 dB over 0.2 after 45 iterations, 2 and 8 less than 4
    # (benchmarks/results/tune_red_psm.md section 8).
    psm_penalty = 4.0

    def __init__(
        self,
        angles,
        image_shape,
        n_detectors=None,
        detector_spacing=1.0,
        device="cpu",
        projector="line",
        support="disk",
        geometry="parallel",
        center_offset=0.0,
        source_origin=None,
        origin_detector=None,
        projector_backend="auto",
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
        projection_geometry = ProjectionGeometry(
            n if n_detectors is None else n_detectors,
            detector_spacing,
            geometry,
            center_offset,
            source_origin,
            origin_detector,
        )
        projection_geometry.check_image_size(n)
        projection_geometry.astra_projector(projector)  # refuses a projector the geometry lacks
        n_detectors = int(projection_geometry.n_detectors)
        self.angles = angles
        self.image_shape = image_shape
        self.projection_geometry = projection_geometry
        self.n_detectors = n_detectors
        self.detector_spacing = float(detector_spacing)
        self.projector = projector
        self.support = support
        self.device = resolve_device(device)
        n_frames, n_views = angles.shape
        self.domain_shape = (n_frames, n, n)
        self.range_shape = (n_frames, n_views, n_detectors)
        self.projector_backend = choose_projector_backend(
            projector_backend, n, n_frames, n_views, n_detectors, self.device.type
        )
        self._frame_projectors = None
        if self.projector_backend == "matrix-free":
            self._blocks = None
            self._frame_projectors = FrameProjectors(
                angles,
                n,
                lambda frame_angles: astra_geometry(frame_angles, projection_geometry),
                projection_geometry.astra_projector(projector),
                disk_mask(n) if support == "disk" else None,
            )
            self._nbytes = self._frame_projectors.nbytes
            return
        blocks = frame_blocks(angles, n, projection_geometry, projector, support)
        if self.device.type == "cuda":
            matrix = block_diagonal_matrix(blocks)
            self._blocks = None
            self._cuda_matrix = _torch_csr(matrix, self.device)
            self._cuda_matrix_transposed = _torch_csr(matrix.T.tocsr(), self.device)
            self._nbytes = 2 * (matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes)
        else:
            self._blocks = blocks
            self._nbytes = sum(block.nbytes for block in blocks)

    @classmethod
    def from_measurements(cls, measurements, device="cpu", **options) -> "DynamicTomography":
        """The operator of single-slice tomography measurements (angles, detector, beam geometry)."""
        return cls(
            measurements.angles,
            measurements.image_shape,
            n_detectors=measurements.sinogram.shape[2],
            detector_spacing=measurements.detector_spacing,
            device=device,
            **measurements.geometry_fields(),
            **options,
        )

    @property
    def n_frames(self) -> int:
        return self.domain_shape[0]

    @property
    def nbytes(self) -> int:
        """Memory held by the sparse weights and their indices (bytes; matrix-free: angles and mask)."""
        return self._nbytes

    def support_mask(self) -> torch.Tensor:
        """(N, N) float 0/1 mask of the pixels the operator sees (all ones for ``support="square"``)."""
        n = self.image_shape[0]
        mask = disk_mask(n) if self.support == "disk" else np.ones((n, n), dtype=bool)
        return torch.from_numpy(mask.astype(np.float32)).to(self.device)

    def _matvec(self, x_flat: torch.Tensor) -> torch.Tensor:
        if self._frame_projectors is not None:
            images = x_flat.detach().cpu().contiguous().numpy().reshape(self.domain_shape)
            return torch.from_numpy(self._frame_projectors.forward(images).reshape(-1)).to(self.device)
        if self._blocks is None:
            return torch.mv(self._cuda_matrix, x_flat.contiguous())
        x = x_flat.detach().contiguous().numpy()
        out = np.empty(int(np.prod(self.range_shape)), dtype=np.float32)
        rows, cols = self.range_shape[1] * self.range_shape[2], self.image_shape[0] * self.image_shape[1]

        def project(block: FrameBlock) -> None:
            out[block.first_frame * rows : block.stop_frame * rows] = (
                block.matrix @ x[block.first_frame * cols : block.stop_frame * cols]
            )

        run_on_threads(project, self._blocks)
        return torch.from_numpy(out)

    def _rmatvec(self, y_flat: torch.Tensor) -> torch.Tensor:
        if self._frame_projectors is not None:
            sinograms = y_flat.detach().cpu().contiguous().numpy().reshape(self.range_shape)
            return torch.from_numpy(self._frame_projectors.adjoint(sinograms).reshape(-1)).to(self.device)
        if self._blocks is None:
            return torch.mv(self._cuda_matrix_transposed, y_flat.contiguous())
        y = y_flat.detach().contiguous().numpy()
        out = np.empty(int(np.prod(self.domain_shape)), dtype=np.float32)
        rows, cols = self.range_shape[1] * self.range_shape[2], self.image_shape[0] * self.image_shape[1]

        def back_project(block: FrameBlock) -> None:
            out[block.first_frame * cols : block.stop_frame * cols] = (
                block.transposed @ y[block.first_frame * rows : block.stop_frame * rows]
            )

        run_on_threads(back_project, self._blocks)
        return torch.from_numpy(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project: (P, N, N) -> (P, V, D)."""
        x = self._check_input(x, self.domain_shape, "forward").to(torch.float32)
        return linear_map(x.reshape(-1), self._matvec, self._rmatvec).reshape(self.range_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Back-project: (P, V, D) -> (P, N, N)."""
        y = self._check_input(y, self.range_shape, "adjoint").to(torch.float32)
        return linear_map(y.reshape(-1), self._rmatvec, self._matvec).reshape(self.domain_shape)
