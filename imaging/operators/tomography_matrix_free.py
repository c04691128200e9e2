"""Matrix-free dynamic tomography: ASTRA's CPU projector applied on the fly, frame by frame.

The sparse operator (:mod:`imaging.operators.tomography`) stores about N weights per
ray, 8 bytes each (float32 value, int32 index): ``8 N P V D`` bytes, twice a float32
(P, N, N) image stack for one view per frame and a detector of N bins (0.54 GB at
N=512, P=256; 2.1 GB at N=1024), and building them takes 10-17 bytes per weight of
peak memory. :class:`FrameProjectors` holds no weights: each product runs ASTRA's CPU
forward projection (algorithm ``FP``) or back-projection (``BP``) of one frame at its
own views, with one ASTRA projector per frame, and the frames are spread over the
thread pool (ASTRA releases the GIL while it runs).

Both algorithms walk the rays with the projector's own kernel and apply the same
weights that ASTRA's projection matrix holds (the one the sparse operator stores), in
the same order: measured, the products equal the sparse ones bit for bit (and a whole
red-psm run, N=64, P=32, gave the same reconstruction bit for bit), so the two back
ends are the same operator and the matrix-free one is as exactly adjoint (up to
float32 rounding of the sums). A support mask ``M`` makes the operator ``A M`` (the
image is multiplied by the mask before projecting, the back-projection after), which
equals the sparse operator's dropped weights.

Cost, measured on the 2-core test machine (one view per frame, detector of N bins,
one thread, under load): at N=512 ASTRA's forward projection takes 3-4 ms per frame
and its back-projection 2-3 ms, against 1.3 and 1.7 ms for the sparse products; at
N=1024 16 and 13 ms. Building the sparse weights takes 60-85 ms per frame at N=512,
about 40 pairs of products' worth of the difference, while an iterative method applies
the operator hundreds of times: the sparse operator is faster whenever its weights fit.
The choice is therefore one of memory, :func:`choose_projector_backend`: ``"auto"``
keeps the sparse weights while they take at most :data:`SPARSE_MEMORY_SHARE` of the
memory available to the process and projects on the fly beyond.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from .._limits import available_memory
from ._pool import run_on_threads

PROJECTOR_BACKENDS = ("auto", "sparse", "matrix-free")

#: Bytes the sparse operator holds per weight: a float32 value and an int32 column index.
SPARSE_BYTES_PER_WEIGHT = 8

#: ``"auto"`` keeps the sparse weights while ``SPARSE_BYTES_PER_WEIGHT`` times their
#: count is at most this share of the available memory (one view per frame, D = N: up to
#: P = 128 at N = 1024 on 8 GiB, P = 384 on 24 GiB). The weights are then about 2 image
#: stacks of the 10 that RED-PSM's peak holds with them, so a run that keeps them takes
#: at most about 60 % of the memory; beyond, their memory is worth more to the iterates
#: than the 2-3 times faster products (a quarter would keep them at N = 1024, P = 256 on
#: 8 GiB, where the run would then need 9.8 GiB instead of 6.8 GiB).
SPARSE_MEMORY_SHARE = 0.125


def sparse_weight_count(image_size: int, n_frames: int, n_views: int, n_detectors: int) -> int:
    """Weights of the sparse operator, about ``N`` per ray: ``N P V D``.

    Measured with ASTRA's ``line`` projector and the disk support: 1.00 ``N^2`` weights
    per view for a detector of N bins at N = 256, 512 and 1024.
    """
    return int(image_size) * int(n_frames) * int(n_views) * int(n_detectors)


def choose_projector_backend(
    requested: str,
    image_size: int,
    n_frames: int,
    n_views: int,
    n_detectors: int,
    device_type: str = "cpu",
    memory_bytes: int | None = None,
) -> str:
    """The projector back end, ``"sparse"`` or ``"matrix-free"``, for a requested one.

    Parameters
    ----------
    requested : {"auto", "sparse", "matrix-free"}
    image_size, n_frames, n_views, n_detectors : int
        N, P, V and D of the operator.
    device_type : str
        ``"cuda"``: ``"auto"`` chooses the sparse matrix (held on the GPU, where the
        matrix-free products would run on the CPU).
    memory_bytes : int, optional
        The memory to compare with (default: what this process may still allocate,
        :func:`imaging._limits.available_memory`: the free memory, a cgroup's room or
        ``IMAGING_MEMORY_LIMIT``). The back ends give the same products, so the choice
        changes the memory and the time of a run, not its result.

    Returns
    -------
    str
        ``requested`` unless it is ``"auto"``; then ``"sparse"`` while the weights take at
        most :data:`SPARSE_MEMORY_SHARE` of ``memory_bytes``, ``"matrix-free"`` beyond.
    """
    if requested not in PROJECTOR_BACKENDS:
        raise ValueError(f"projector_backend must be one of {PROJECTOR_BACKENDS}, got {requested!r}")
    if requested != "auto":
        return requested
    if device_type == "cuda":
        return "sparse"
    memory_bytes = available_memory() if memory_bytes is None else memory_bytes
    weights_bytes = SPARSE_BYTES_PER_WEIGHT * sparse_weight_count(image_size, n_frames, n_views, n_detectors)
    return "sparse" if weights_bytes <= SPARSE_MEMORY_SHARE * memory_bytes else "matrix-free"


def _delete_projectors(projector_ids: list[int]) -> None:
    import astra

    for projector_id in projector_ids:
        astra.projector.delete(projector_id)


class FrameProjectors:
    """ASTRA's CPU projector of each frame, applied without stored weights.

    Parameters
    ----------
    angles : numpy.ndarray
        float64 (P, V) view angles in radians, V views per frame.
    image_size : int
        N of the (N, N) grid (``astra.create_vol_geom(N, N)``).
    astra_geometry : callable
        ``angles (V,) -> ASTRA projection geometry`` (e.g. ``astra.create_proj_geom(
        'parallel', spacing, D, angles)``); its detector has ``D`` bins.
    astra_projector : str
        ASTRA CPU projector type for that geometry ("line", "linear", "strip", ...).
    support_mask : numpy.ndarray, optional
        (N, N) boolean mask ``M``; the operator is then ``A M``.

    Notes
    -----
    :meth:`forward` maps float32 (P, N, N) to (P, V, D), :meth:`adjoint` back; both on
    numpy arrays, spread over frames on ``torch.get_num_threads()`` threads, each
    thread holding one (N, N) image of working memory at most.
    """

    def __init__(
        self,
        angles: np.ndarray,
        image_size: int,
        astra_geometry: Callable[[np.ndarray], dict],
        astra_projector: str,
        support_mask: np.ndarray | None = None,
    ):
        import astra

        self.angles = np.asarray(angles, dtype=np.float64)
        n_frames, n_views = self.angles.shape
        self.image_size = int(image_size)
        self.support_mask = None if support_mask is None else np.asarray(support_mask, dtype=bool)
        self._outside = None if support_mask is None else ~self.support_mask
        self._volume_geometry = astra.create_vol_geom(self.image_size, self.image_size)
        self._geometries = [astra_geometry(self.angles[p]) for p in range(n_frames)]
        self._projector_ids: list[int] = []
        # Released with the operator; a failure half-way releases those made so far.
        self._release = weakref.finalize(self, _delete_projectors, self._projector_ids)
        for geometry in self._geometries:
            self._projector_ids.append(astra.create_projector(astra_projector, geometry, self._volume_geometry))
        self.n_detectors = int(self._geometries[0]["DetectorCount"])
        self.domain_shape = (n_frames, self.image_size, self.image_size)
        self.range_shape = (n_frames, n_views, self.n_detectors)

    @property
    def nbytes(self) -> int:
        """Memory held between products (the angles and the mask), bytes."""
        mask = 0 if self.support_mask is None else 2 * self.support_mask.nbytes
        return self.angles.nbytes + mask

    def _run(self, algorithm: str, frame: int, image: np.ndarray, sinogram: np.ndarray) -> None:
        """ASTRA's ``FP`` (image -> sinogram) or ``BP`` (sinogram -> image) of one frame.

        Both write their whole output (ASTRA zeroes it first); the arrays are linked,
        not copied, so they must be C-contiguous float32 of the frame's shapes.
        """
        import astra

        volume_id = astra.data2d.link("-vol", self._volume_geometry, image)
        try:
            sinogram_id = astra.data2d.link("-sino", self._geometries[frame], sinogram)
            try:
                config = astra.astra_dict(algorithm)
                config["ProjectorId"] = self._projector_ids[frame]
                config["ProjectionDataId"] = sinogram_id
                config["VolumeDataId" if algorithm == "FP" else "ReconstructionDataId"] = volume_id
                algorithm_id = astra.algorithm.create(config)
                try:
                    astra.algorithm.run(algorithm_id)
                finally:
                    astra.algorithm.delete(algorithm_id)
            finally:
                astra.data2d.delete(sinogram_id)
        finally:
            astra.data2d.delete(volume_id)

    def forward(self, images: np.ndarray) -> np.ndarray:
        """Project float32 (P, N, N) images to (P, V, D) sinograms."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        out = np.empty(self.range_shape, dtype=np.float32)

        def project(frame: int) -> None:
            image = images[frame] if self.support_mask is None else np.where(self.support_mask, images[frame], 0)
            self._run("FP", frame, image, out[frame])

        run_on_threads(project, range(self.domain_shape[0]))
        return out

    def adjoint(self, sinograms: np.ndarray) -> np.ndarray:
        """Back-project float32 (P, V, D) sinograms to (P, N, N) images."""
        sinograms = np.ascontiguousarray(sinograms, dtype=np.float32)
        out = np.empty(self.domain_shape, dtype=np.float32)

        def back_project(frame: int) -> None:
            self._run("BP", frame, out[frame], sinograms[frame])
            if self._outside is not None:
                out[frame][self._outside] = 0.0

        run_on_threads(back_project, range(self.domain_shape[0]))
        return out
