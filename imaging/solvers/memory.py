"""The memory model of a reconstruction: what one slice needs, and the largest size that fits.

:meth:`imaging.solvers.base.Solver.estimate_bytes` predicts the peak resident memory of
reconstructing one slice, beyond the process's memory after its imports (Python,
PyTorch, ASTRA: :data:`PROCESS_BYTES`), as the sum of

- the method's fixed cost (``Solver.fixed_bytes``: denoiser or network weights,
  first-use buffers of PyTorch's kernels);
- the arrays the measurements hold (:func:`measurement_bytes`);
- the operator (:func:`operator_bytes`): the sparse tomography weights, nothing for the
  matrix-free projector (:mod:`imaging.operators.tomography_matrix_free`), the MRI
  operator's FFT temporaries;
- the method's own state and temporaries (``Solver.state_bytes``), in float32
  ``(P, N, N)`` stacks and smaller terms.

A problem's size is a :class:`ProblemSize`, made from measurements
(:meth:`ProblemSize.of`) or from the sizes alone (:meth:`ProblemSize.tomography`), so
that :func:`largest_fitting_size` can ask the model about sizes nobody has measured yet.
The constants were fitted to peaks measured by ``benchmarks/memory_model.py`` (the table
in ``benchmarks/results/memory_model.md``).
"""

from __future__ import annotations

import dataclasses

from ..operators.mri import sampled_line_count
from ..operators.tomography_matrix_free import choose_projector_backend, sparse_weight_count

#: Resident memory of a process that has imported ``imaging`` (Python, PyTorch, ASTRA):
#: measured 254 MiB on Linux, Python 3.11, torch 2.13 CPU. Not part of
#: ``estimate_bytes``; :func:`largest_fitting_size` adds it.
PROCESS_BYTES = 256 * 2**20

#: Peak bytes per weight of the sparse tomography operator on the CPU: its float32 value
#: and int32 index (8 bytes) and what the allocator keeps of the per-block build
#: temporaries; measured 10.0-12.5 bytes per weight at N = 256-1024.
SPARSE_OPERATOR_BYTES_PER_WEIGHT = 12

#: The same on CUDA, in host memory while the operator is built: the blocks, the joined
#: matrix and its transpose before they move to the GPU.
CUDA_OPERATOR_BUILD_BYTES_PER_WEIGHT = 24

#: Peak bytes per k-space sample of the MRI operator: three k-space sized complex64 FFT
#: temporaries. Fitted on single-coil line-sampled Cartesian data (multi-coil data: each
#: method's ``multicoil_coil_copies``).
MRI_OPERATOR_BYTES_PER_SAMPLE = 3 * 8

#: Multi-coil MRI (C > 1): first-use memory of the products (FFT and NUFFT plans, the
#: allocator's arenas) unless a method states its own ``multicoil_fixed_bytes``.
MULTICOIL_FIXED_BYTES = 40 * 2**20
#: ESPIRiT coil-map estimation (multi-coil data without maps, before the run): peak
#: copies of its (C, C, N, N) complex128 operator (eigen-decomposition, eigenvectors),
#: beyond :data:`ESPIRIT_FIXED_BYTES`.
ESPIRIT_OPERATOR_COPIES = 4.5
ESPIRIT_FIXED_BYTES = 24 * 2**20


def measurement_bytes(measurements) -> int:
    """Bytes of the arrays a :class:`~imaging.measurements.Measurements` holds.

    The data (sinogram or k-space), the geometry (angles) or sampling (mask, coil maps)
    and the ground truth, whichever are present; a slice or a volume.
    """
    arrays = (
        measurements.sinogram, measurements.angles, measurements.kspace, measurements.mask,
        measurements.trajectory, measurements.coil_maps, measurements.ground_truth,
    )
    return int(sum(array.nbytes for array in arrays if array is not None))


@dataclasses.dataclass(frozen=True)
class ProblemSize:
    """The sizes of one slice's reconstruction problem that set its memory.

    Attributes
    ----------
    modality : {"tomography", "mri"}
    n_frames : int
        P.
    slice_shape : tuple of int
        (N, N) or (H, W) of a frame.
    measurement_shape : tuple of int
        The data's shape: (P, V, D) sinogram or (P, C, H, W) k-space.
    data_bytes : int
        Bytes of every array the measurements hold (:func:`measurement_bytes`).
    layout : {"tomography", "lines", "grid", "non-cartesian"}
        The operator's range: a sinogram; the sampled k-space lines of every coil
        (P, C, L, W); the full Cartesian grid (P, C, H, W); non-Cartesian samples.
    range_values : int, optional
        Values of the operator's range (default: :attr:`measured_values`).
    estimates_coil_maps : bool
        Multi-coil MRI without coil maps: the run estimates them first (ESPIRiT).
    views_per_frame : float
        :attr:`Measurements.views_per_frame` (the automatic PSM order depends on it).
    """

    modality: str
    n_frames: int
    slice_shape: tuple[int, int]
    measurement_shape: tuple[int, ...]
    data_bytes: int
    layout: str = "tomography"
    range_values: int | None = None
    estimates_coil_maps: bool = False
    views_per_frame: float = 1.0

    @classmethod
    def of(cls, measurements) -> "ProblemSize":
        """The size of single-slice ``measurements``."""
        if measurements.is_volume:
            raise ValueError("estimate_bytes takes the measurements of one slice: pass measurements.slice(z)")
        size = cls(
            measurements.modality,
            measurements.n_frames,
            tuple(measurements.slice_shape),
            tuple(measurements.data.shape),
            measurement_bytes(measurements),
            views_per_frame=measurements.views_per_frame,
        )
        if measurements.modality != "mri":
            return size
        if measurements.trajectory is not None:
            layout, range_values = "non-cartesian", size.measured_values
        else:
            lines = sampled_line_count(measurements.mask)
            layout = "grid" if lines is None else "lines"
            range_values = size.measured_values if lines is None else size.measured_values // size.slice_shape[0] * lines
        return dataclasses.replace(
            size, layout=layout, range_values=range_values, estimates_coil_maps=measurements.needs_coil_maps
        )

    @classmethod
    def tomography(
        cls, size: int, frames: int, views: int = 1, detectors: int | None = None, ground_truth: bool = False
    ) -> "ProblemSize":
        """A tomography slice of N = ``size`` with P = ``frames``, V views per frame and D bins.

        The data held: the float32 sinogram, the float64 angles and, with
        ``ground_truth``, a float32 (P, N, N) ground truth.
        """
        detectors = size if detectors is None else detectors
        data = 4 * frames * views * detectors + 8 * frames * views + (4 * frames * size * size if ground_truth else 0)
        return cls("tomography", frames, (size, size), (frames, views, detectors), data, views_per_frame=views)

    @property
    def image_shape(self) -> tuple[int, int]:
        """The frame's grid, as :attr:`Measurements.image_shape` of a slice."""
        return self.slice_shape

    @property
    def pixels(self) -> int:
        """Pixels of one frame."""
        return self.slice_shape[0] * self.slice_shape[1]

    @property
    def stack_bytes(self) -> int:
        """Bytes of one (P, N, N) image stack: float32, complex64 for MRI (complex images; the
        fitted copies counts were measured on real stacks and are applied to these as is)."""
        return (8 if self.modality == "mri" else 4) * self.n_frames * self.pixels

    @property
    def coils(self) -> int:
        """C, the receive coils (1 for tomography)."""
        return self.measurement_shape[1] if self.modality == "mri" else 1

    @property
    def multicoil(self) -> bool:
        """MRI with several receive coils."""
        return self.modality == "mri" and self.coils > 1

    @property
    def coil_stack_bytes(self) -> int:
        """Bytes of the complex64 coil images of every frame, (P, C, N, N)."""
        return 8 * self.n_frames * self.coils * self.pixels

    @property
    def range_bytes(self) -> int:
        """Bytes of one array of the operator's range (complex64 k-space, float32 sinogram)."""
        values = self.measured_values if self.range_values is None else self.range_values
        return (8 if self.modality == "mri" else 4) * values

    @property
    def measured_values(self) -> int:
        """Values of the data (sinogram bins or k-space samples of all coils)."""
        count = 1
        for extent in self.measurement_shape:
            count *= extent
        return count


def operator_bytes(size: ProblemSize, device_type: str = "cpu", memory_bytes: int | None = None) -> int:
    """Peak memory of building and holding the forward operator (bytes).

    Tomography: the projector back end that ``projector_backend="auto"`` chooses for this
    size (:func:`~imaging.operators.tomography_matrix_free.choose_projector_backend`, on a
    machine of ``memory_bytes``; default this one): the sparse weights
    (:data:`SPARSE_OPERATOR_BYTES_PER_WEIGHT` per weight, about N per ray; on CUDA
    :data:`CUDA_OPERATOR_BUILD_BYTES_PER_WEIGHT` of host memory), or the matrix-free
    projector's per-thread images (negligible: 0). MRI:
    :data:`MRI_OPERATOR_BYTES_PER_SAMPLE` per k-space sample (single coil; a method models
    multi-coil data with its ``multicoil_coil_copies``, see
    :meth:`~imaging.solvers.base.Solver.operator_bytes`).
    """
    if size.modality != "tomography":
        return MRI_OPERATOR_BYTES_PER_SAMPLE * size.measured_values
    frames, views, detectors = size.measurement_shape
    image_size = size.slice_shape[0]
    backend = choose_projector_backend("auto", image_size, frames, views, detectors, device_type, memory_bytes)
    if backend == "matrix-free":
        return 0
    per_weight = CUDA_OPERATOR_BUILD_BYTES_PER_WEIGHT if device_type == "cuda" else SPARSE_OPERATOR_BYTES_PER_WEIGHT
    return per_weight * sparse_weight_count(image_size, frames, views, detectors)


def coil_map_estimation_bytes(size: ProblemSize) -> int:
    """Peak bytes of estimating the coil maps before the run (0 when the data hold them):
    ESPIRiT's (C, C, N, N) complex128 operator, :data:`ESPIRIT_OPERATOR_COPIES` times, plus
    :data:`ESPIRIT_FIXED_BYTES`."""
    if not size.estimates_coil_maps:
        return 0
    return int(ESPIRIT_FIXED_BYTES + ESPIRIT_OPERATOR_COPIES * 16 * size.coils**2 * size.pixels)


def largest_fitting_size(
    solver_cls,
    memory_bytes: int,
    frames: int = 256,
    views: int = 1,
    detectors: int | None = None,
    params=None,
    ground_truth: bool = False,
    sizes=range(16, 8193, 16),
    process_bytes: int = PROCESS_BYTES,
) -> int | None:
    """The largest N of a tomography slice whose reconstruction fits in ``memory_bytes``.

    A run fits when ``process_bytes`` plus ``solver_cls``'s estimate
    (:meth:`~imaging.solvers.base.Solver.estimate_size_bytes`, with the projector back
    end that ``memory_bytes`` of available memory gives) is at most ``memory_bytes``.

    Parameters
    ----------
    solver_cls : type
        A :class:`~imaging.solvers.base.Solver` subclass (``imaging.get_solver(name)``).
    memory_bytes : int
        The memory the run may use (e.g. a laptop's RAM less what else runs).
    frames, views : int
        P and V of the acquisition.
    detectors : int, optional
        D, the detector's bins (default N, the image size considered).
    params : SolverParams, optional
        The run's parameters (default: the method's defaults).
    ground_truth : bool
        Whether the measurements carry a ground truth (one more float32 stack).
    sizes : iterable of int
        The N to consider (default 16 to 8192 in steps of 16).
    process_bytes : int
        Memory of the process before the run (default :data:`PROCESS_BYTES`, a fresh
        process; 0 for the memory a running process has left).

    Returns
    -------
    int or None
        The largest fitting N of ``sizes``, or None when none fits. (The memory grows
        with N except where the back end changes, so every size is checked.)
    """
    fitting = [
        size
        for size in sizes
        if process_bytes
        + solver_cls.estimate_size_bytes(
            ProblemSize.tomography(size, frames, views, detectors, ground_truth), params, memory_bytes=memory_bytes
        )
        <= memory_bytes
    ]
    return max(fitting) if fitting else None
