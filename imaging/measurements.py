"""The in-memory form of a measurement file (docs/design.md §3).

A :class:`Measurements` holds exactly the keys of the file contract and validates them
on construction, so every consumer (solvers, CLI, GUI, batch) can rely on consistent
shapes, dtypes and finite values.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from ._grids import block_average
from ._limits import DETECTOR_SPACING_RANGE, MAX_ABS_ANGLE

MODALITIES = ("tomography", "mri")

#: Tomography geometries of the file contract (``geometry`` key).
GEOMETRIES = ("parallel", "fan")

#: The geometry fields of tomography measurements (keys of the file contract).
GEOMETRY_KEYS = ("geometry", "center_offset", "source_origin", "origin_detector")


class MeasurementError(ValueError):
    """Raised for measurement data that violate the file contract."""


def _require_finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise MeasurementError(f"'{name}' contains NaN or infinite values")


def _finite_number(name: str, value) -> float:
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "iuf" or not np.isfinite(array.reshape(())):
        raise MeasurementError(f"{name!r} must be a finite number, got {value!r}")
    return float(array.reshape(()))


def _finite_as(name: str, array: np.ndarray, dtype) -> np.ndarray:
    """``array`` as ``dtype`` once it is finite and fits it (a float64 1e300 would become inf)."""
    _require_finite(name, array)
    dtype = np.dtype(dtype)
    largest = float(np.finfo(dtype).max)
    if array.dtype.kind in "fc" and float(np.finfo(array.dtype).max) > largest and array.size:
        parts = (array.real, array.imag) if array.dtype.kind == "c" else (array,)
        peak = max(max(float(part.max()), -float(part.min())) for part in parts)
        if peak > largest:
            raise MeasurementError(
                f"'{name}' holds values too large for {dtype} (largest magnitude {peak:.3g}, limit {largest:.3g})"
            )
    return array.astype(dtype, copy=False)


@dataclass
class Measurements:
    """Dynamic measurements of one 2D slice or of a volume (a stack of Z slices), time first.

    One slice (``image_shape`` has two entries):

    - tomography: ``sinogram`` float32 (P, V, D), ``angles`` float64 (P, V) radians,
      ``detector_spacing``, ``image_shape`` (N, N); the geometry: ``geometry``
      ("parallel" or "fan"), ``center_offset`` (detector bins from the detector centre
      to where the rotation axis projects; signed, sub-pixel) and, for a fan beam,
      ``source_origin`` and ``origin_detector`` (pixel units, ASTRA ``fanflat``;
      ``detector_spacing`` is then the bin width at the detector);
    - MRI: ``kspace`` complex64 (P, C, H, W), ``mask`` bool (P, H, W), optional
      ``coil_maps`` complex64 (C, H, W) (with several coils and none given, the runner
      estimates them from the data: :meth:`estimate_coil_maps`); ``image_shape`` is (H, W);
    - non-Cartesian MRI: ``trajectory`` float64 (P, S, R, 2) instead of the mask (S shots of
      R samples per frame, (ky, kx) in cycles per pixel within [-1/2, 1/2]) and ``kspace``
      complex64 (P, C, S, R);
    - optional for both: ``ground_truth`` float32 (P, N, N) (scoring only) and ``noise_std``.

    A volume (``image_shape`` has three entries, (Z, N, N) or (Z, H, W)); the slice axis
    comes right after the time axis of the images and right before the detector or coil
    axis of the data:

    - tomography: ``sinogram`` float32 (P, V, Z, D) (parallel beam: detector row z sees
      slice z only), ``angles`` float64 (P, V) shared by every slice. Parallel beam only:
      the rows of a fan-beam (i.e. cone-beam) detector are fan-beam slices only at the
      central row, so fan-beam volumes are refused rather than reconstructed wrongly;
    - MRI: ``kspace`` complex64 (P, Z, C, H, W), ``mask`` bool (P, H, W) shared by every
      slice or (P, Z, H, W) per slice, ``coil_maps`` complex64 (C, H, W) shared or
      (Z, C, H, W) per slice; non-Cartesian ``kspace`` (P, Z, C, S, R) with one
      ``trajectory`` (P, S, R, 2) shared by every slice;
    - ``ground_truth`` float32 (P, Z, N, N); ``noise_std`` is one number for the volume.

    Every slice of a volume is an independent 2D problem; :meth:`slice` extracts one.
    """

    modality: str
    image_shape: tuple[int, ...]
    sinogram: np.ndarray | None = None
    angles: np.ndarray | None = None
    detector_spacing: float = 1.0
    kspace: np.ndarray | None = None
    mask: np.ndarray | None = None
    trajectory: np.ndarray | None = None
    coil_maps: np.ndarray | None = None
    ground_truth: np.ndarray | None = None
    noise_std: float | None = None
    geometry: str = "parallel"
    center_offset: float = 0.0
    source_origin: float | None = None
    origin_detector: float | None = None
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.validate()

    @property
    def n_frames(self) -> int:
        return int(self.sinogram.shape[0] if self.modality == "tomography" else self.kspace.shape[0])

    @property
    def is_volume(self) -> bool:
        """True for a stack of slices (``image_shape`` (Z, N, N))."""
        return len(self.image_shape) == 3

    @property
    def n_slices(self) -> int:
        """Number of slices Z of a volume; 1 for a single slice."""
        return self.image_shape[0] if self.is_volume else 1

    @property
    def slice_shape(self) -> tuple[int, int]:
        """The 2D image grid of every slice, (N, N) or (H, W)."""
        return self.image_shape[-2:]

    def slice(self, z: int) -> "Measurements":
        """The 2D measurements of slice ``z`` (with its ground-truth slice).

        Parameters
        ----------
        z : int
            Slice index, ``0 <= z < n_slices``; a single slice accepts only 0 and returns
            itself.

        Returns
        -------
        Measurements
            A single-slice object (``image_shape`` (N, N)) holding C-contiguous copies of
            the slice's arrays; ``noise_std`` and ``extra`` are shared with the volume.
        """
        if isinstance(z, bool) or not isinstance(z, (int, np.integer)) or not 0 <= z < self.n_slices:
            raise MeasurementError(f"slice index must be an integer in [0, {self.n_slices}), got {z!r}")
        if not self.is_volume:
            return self
        z = int(z)
        contiguous = np.ascontiguousarray
        ground_truth = None if self.ground_truth is None else contiguous(self.ground_truth[:, z])
        common = dict(
            image_shape=self.slice_shape, ground_truth=ground_truth, noise_std=self.noise_std, extra=self.extra
        )
        if self.modality == "tomography":
            return Measurements(
                modality="tomography",
                sinogram=contiguous(self.sinogram[:, :, z]),
                angles=self.angles,
                detector_spacing=self.detector_spacing,
                **self.geometry_fields(),
                **common,
            )
        return Measurements(
            modality="mri",
            kspace=contiguous(self.kspace[:, z]),
            mask=None if self.mask is None else contiguous(self.mask[:, z]) if self.mask.ndim == 4 else self.mask,
            trajectory=self.trajectory,
            coil_maps=None if self.coil_maps is None or self.coil_maps.ndim == 3 else contiguous(self.coil_maps[z]),
            **common,
        )

    def select_frames(self, indices) -> "Measurements":
        """The measurements of the frames ``indices`` only, in that order.

        Every array of the file contract has time first, so this is the same for every
        modality, for a slice and for a volume; a tomography geometry is kept.

        Parameters
        ----------
        indices : sequence of int
            Frame numbers in ``[0, n_frames)``, at least one.

        Returns
        -------
        Measurements
            With ``len(indices)`` frames (and those frames of the ground truth); its
            ``operator()`` is the operator of those frames. Coil maps, ``noise_std`` and
            ``extra`` are shared.
        """
        indices = np.asarray(indices)
        if indices.ndim != 1 or indices.size == 0 or not np.issubdtype(indices.dtype, np.integer):
            raise MeasurementError(f"frame indices must be a non-empty sequence of integers, got {indices!r}")
        if indices.min() < 0 or indices.max() >= self.n_frames:
            raise MeasurementError(f"frame indices must lie in [0, {self.n_frames}), got {indices.tolist()!r}")

        def frames_of(array):
            return None if array is None else array[indices]

        return Measurements(
            modality=self.modality,
            image_shape=self.image_shape,
            sinogram=frames_of(self.sinogram),
            angles=frames_of(self.angles),
            detector_spacing=self.detector_spacing,
            kspace=frames_of(self.kspace),
            mask=frames_of(self.mask),
            trajectory=frames_of(self.trajectory),
            coil_maps=self.coil_maps,
            ground_truth=frames_of(self.ground_truth),
            noise_std=self.noise_std,
            extra=self.extra,
            **(self.geometry_fields() if self.modality == "tomography" else {}),
        )

    @property
    def has_coarser_grid(self) -> bool:
        """Whether :meth:`on_coarser_grid` applies: one tomography slice of even size."""
        return self.modality == "tomography" and not self.is_volume and self.slice_shape[0] % 2 == 0

    def on_coarser_grid(self) -> "Measurements":
        """The same acquisition, to be reconstructed on a grid of half the size.

        The pixels of the (N/2, N/2) grid are twice as wide, and lengths are counted in
        pixels, so the geometry halves: the detector spacing and the fan-beam distances;
        the detector and its bins stay (``center_offset`` counts bins), and a line integral
        counted in the wider pixels is half as large, so the sinogram and ``noise_std``
        halve too. An image on the coarse grid then has the values of the fine image
        averaged over 2 x 2 pixels: the ground truth (scoring only) is that average.

        Returns
        -------
        Measurements
            Tomography of one slice, ``image_shape`` (N/2, N/2), the same angles.

        Raises
        ------
        MeasurementError
            For MRI, a volume or an odd N (:attr:`has_coarser_grid` is False).
        """
        if not self.has_coarser_grid:
            raise MeasurementError(
                "a coarser grid is defined for one tomography slice of even size, "
                f"not {self.modality} of image shape {self.image_shape}"
            )
        n = self.slice_shape[0] // 2
        truth = None if self.ground_truth is None else block_average(self.ground_truth, 2)
        fan = self.geometry == "fan"
        return Measurements(
            modality="tomography",
            image_shape=(n, n),
            sinogram=self.sinogram * np.float32(0.5),
            angles=self.angles,
            detector_spacing=self.detector_spacing / 2,
            geometry=self.geometry,
            center_offset=self.center_offset,
            source_origin=self.source_origin / 2 if fan else self.source_origin,
            origin_detector=self.origin_detector / 2 if fan else self.origin_detector,
            ground_truth=truth,
            noise_std=None if self.noise_std is None else self.noise_std / 2,
            extra=self.extra,
        )

    def geometry_fields(self) -> dict:
        """The tomography geometry keys (``geometry``, ``center_offset``, fan distances) as a dict."""
        return {key: getattr(self, key) for key in GEOMETRY_KEYS}

    def projection_geometry(self):
        """The :class:`imaging.operators.geometry.ProjectionGeometry` of tomography measurements."""
        from .operators.geometry import ProjectionGeometry

        return ProjectionGeometry(
            int(self.sinogram.shape[-1]),
            self.detector_spacing,
            self.geometry,
            self.center_offset,
            self.source_origin,
            self.origin_detector,
        )

    @property
    def is_cartesian(self) -> bool:
        """True for Cartesian MRI (a ``mask``), False for a ``trajectory`` or tomography."""
        return self.modality == "mri" and self.trajectory is None

    @property
    def views_per_frame(self) -> float:
        """Measurements per frame counted as views: V for tomography; for MRI the k-space
        samples of one frame (one coil) over the grid's width, i.e. full phase-encode lines
        (Cartesian: the mask's lines, or their equivalent for any other mask; non-Cartesian:
        S shots of R samples count S R / W)."""
        if self.modality == "tomography":
            return float(self.sinogram.shape[1])
        width = self.slice_shape[-1]
        if self.trajectory is not None:
            shots, samples = self.trajectory.shape[-3:-1]
            return shots * samples / width
        frame_masks = self.mask.size // (self.mask.shape[-2] * width)  # P, or P Z for per-slice masks
        return float(np.count_nonzero(self.mask)) / frame_masks / width

    @property
    def n_coils(self) -> int:
        """Receive coils C of MRI k-space (1 for tomography)."""
        if self.modality != "mri":
            return 1
        return int(self.kspace.shape[-3])

    @property
    def needs_coil_maps(self) -> bool:
        """True for multi-coil MRI without ``coil_maps``: estimate them before building an operator."""
        return self.modality == "mri" and self.n_coils > 1 and self.coil_maps is None

    def estimate_coil_maps(self, method: str = "auto") -> tuple[np.ndarray, str]:
        """Coil sensitivities from the data's time-averaged k-space centre.

        Parameters
        ----------
        method : {"auto", "espirit", "lowres"}
            See :func:`imaging.operators.coils.estimate_from_calibration`.

        Returns
        -------
        maps : numpy.ndarray
            complex64 (C, H, W), or (Z, C, H, W) for a volume (one set per slice).
        used : str
            The estimator used (``"espirit"`` or ``"lowres"``; for a volume, that of
            its first slice).
        """
        from .operators.coils import (
            calibration_region,
            estimate_from_calibration,
            gridded_calibration,
            time_averaged_kspace,
        )

        if self.modality != "mri":
            raise MeasurementError("coil maps belong to MRI measurements")
        if self.is_volume:
            per_slice = [self.slice(z).estimate_coil_maps(method) for z in range(self.n_slices)]
            return np.stack([maps for maps, _ in per_slice]), per_slice[0][1]
        try:
            if self.is_cartesian:
                calibration = calibration_region(*time_averaged_kspace(self.kspace, self.mask))
            else:
                calibration = gridded_calibration(self.kspace, self.trajectory, self.image_shape)
            return estimate_from_calibration(calibration, self.image_shape, method)
        except ValueError as exc:
            raise MeasurementError(f"cannot estimate coil maps: {exc}") from None

    @property
    def data(self) -> np.ndarray:
        """The measured array: the sinogram (tomography) or the k-space (MRI)."""
        return self.sinogram if self.modality == "tomography" else self.kspace

    def validate(self) -> None:
        """Check modality, shapes, dtypes and finiteness; normalise dtypes in place."""
        if self.modality not in MODALITIES:
            raise MeasurementError(f"'modality' must be one of {MODALITIES}, got {self.modality!r}")
        shape = tuple(int(s) for s in np.asarray(self.image_shape).ravel())
        if len(shape) == 3:
            if shape[0] < 1 or min(shape[1:]) < 2:
                raise MeasurementError(
                    f"'image_shape' of a volume must be (Z, N, N) with Z >= 1 and N >= 2, got {self.image_shape!r}"
                )
        elif len(shape) != 2 or min(shape) < 2:
            raise MeasurementError(f"'image_shape' must be two integers >= 2, got {self.image_shape!r}")
        self.image_shape = shape
        if self.modality == "tomography":
            self._validate_tomography()
        else:
            self._validate_mri()
        if self.ground_truth is not None:
            gt = np.asarray(self.ground_truth)
            expected = (self.n_frames, *self.image_shape)
            if gt.shape != expected:
                raise MeasurementError(f"'ground_truth' must have shape {expected}, got {gt.shape}")
            if not np.issubdtype(gt.dtype, np.floating) and not np.issubdtype(gt.dtype, np.integer):
                raise MeasurementError(f"'ground_truth' must be real-valued, got dtype {gt.dtype}")
            self.ground_truth = _finite_as("ground_truth", gt, np.float32)
        if self.noise_std is not None:
            noise_std = float(self.noise_std)
            if not np.isfinite(noise_std) or noise_std < 0:
                raise MeasurementError(f"'noise_std' must be a finite number >= 0, got {self.noise_std!r}")
            self.noise_std = noise_std

    def _validate_tomography(self) -> None:
        for key in ("sinogram", "angles"):
            if getattr(self, key) is None:
                raise MeasurementError(f"tomography measurements need '{key}'")
        sinogram = np.asarray(self.sinogram)
        angles = np.asarray(self.angles)
        if self.is_volume:
            if sinogram.ndim != 4 or sinogram.shape[2] != self.n_slices:
                raise MeasurementError(
                    f"a volume of {self.n_slices} slices needs 'sinogram' of shape (P, V, {self.n_slices}, D), "
                    f"got {sinogram.shape}"
                )
        elif sinogram.ndim != 3:
            raise MeasurementError(f"'sinogram' must have shape (P, V, D), got {sinogram.shape}")
        if sinogram.size == 0:
            raise MeasurementError(f"'sinogram' needs at least one frame, view and detector bin, got {sinogram.shape}")
        if not np.issubdtype(sinogram.dtype, np.floating) and not np.issubdtype(sinogram.dtype, np.integer):
            raise MeasurementError(f"'sinogram' must be real-valued, got dtype {sinogram.dtype}")
        if angles.ndim == 1 and sinogram.shape[1] == 1:
            angles = angles[:, None]
        if angles.shape != sinogram.shape[:2]:
            raise MeasurementError(
                f"'angles' has shape {angles.shape} but the sinogram has {sinogram.shape[0]} frames "
                f"of {sinogram.shape[1]} views: angles must have shape {sinogram.shape[:2]}"
            )
        if not np.issubdtype(angles.dtype, np.floating) and not np.issubdtype(angles.dtype, np.integer):
            raise MeasurementError(f"'angles' must be real-valued, got dtype {angles.dtype}")
        if self.slice_shape[0] != self.slice_shape[1]:
            raise MeasurementError(f"tomography needs a square 'image_shape', got {self.image_shape}")
        self.sinogram = _finite_as("sinogram", sinogram, np.float32)
        angles = _finite_as("angles", angles, np.float64)
        if angles.size and np.abs(angles).max() > MAX_ABS_ANGLE:
            raise MeasurementError(
                f"'angles' must lie within +-{MAX_ABS_ANGLE:g} rad (radians, not degrees or encoder counts), "
                f"got {angles.flat[np.abs(angles).argmax()]:.6g}"
            )
        self.angles = angles
        spacing = float(self.detector_spacing)
        low, high = DETECTOR_SPACING_RANGE
        if not low <= spacing <= high:
            raise MeasurementError(
                f"'detector_spacing' must be between {low:g} and {high:g} (image-pixel units), "
                f"got {self.detector_spacing!r}"
            )
        self.detector_spacing = spacing
        self._validate_geometry()

    def _validate_geometry(self) -> None:
        if not isinstance(self.geometry, str) or self.geometry not in GEOMETRIES:
            raise MeasurementError(
                f"'geometry' {self.geometry!r} is not supported: the toolkit reconstructs "
                f"{' or '.join(repr(g) for g in GEOMETRIES)} beam tomography (cone beam and others are refused "
                "rather than reconstructed with the wrong physics)"
            )
        if self.center_offset is None:
            self.center_offset = 0.0
        for key in ("center_offset", "source_origin", "origin_detector"):
            value = getattr(self, key)
            if value is not None:
                setattr(self, key, _finite_number(key, value))
        half_detector = self.sinogram.shape[-1] / 2.0
        if abs(self.center_offset) > half_detector:
            raise MeasurementError(
                f"'center_offset' {self.center_offset:g} puts the rotation axis outside the detector of "
                f"{self.sinogram.shape[-1]} bins (|offset| must be at most {half_detector:g})"
            )
        if self.geometry == "fan" and self.is_volume:
            raise MeasurementError(
                "fan-beam volumes are not supported: the rows of a fan-beam (cone-beam) detector are fan-beam "
                "slices only at the central row; measure or import one row as a single slice"
            )
        try:
            self.projection_geometry().check_image_size(self.slice_shape[0])
        except ValueError as exc:
            raise MeasurementError(str(exc)) from None

    def _validate_mri(self) -> None:
        defaults = {
            "geometry": "parallel",
            "center_offset": 0.0,
            "source_origin": None,
            "origin_detector": None,
            "detector_spacing": 1.0,
        }
        given = [key for key, default in defaults.items() if getattr(self, key) != default]
        if given:
            raise MeasurementError(f"{', '.join(repr(k) for k in given)} describe(s) tomography, not mri measurements")
        if self.kspace is None:
            raise MeasurementError("mri measurements need 'kspace'")
        if (self.mask is None) == (self.trajectory is None):
            raise MeasurementError(
                "mri measurements need either 'mask' (Cartesian sampling) or 'trajectory' (non-Cartesian), "
                + ("not both" if self.mask is not None else "got neither")
            )
        kspace = np.asarray(self.kspace)
        if self.trajectory is not None:
            self._validate_trajectory(kspace)
        else:
            self._validate_mask(kspace)
        if kspace.size == 0:
            raise MeasurementError(f"'kspace' needs at least one frame and one coil, got shape {kspace.shape}")
        if not np.issubdtype(kspace.dtype, np.number) or kspace.dtype.kind not in "fc":
            raise MeasurementError(f"'kspace' must be complex, got dtype {kspace.dtype}")
        kspace = _finite_as("kspace", kspace, np.complex64)
        n_coils = kspace.shape[-3]
        if self.coil_maps is not None:
            coil_maps = np.asarray(self.coil_maps)
            expected = (n_coils, *self.slice_shape)
            if self.is_volume and coil_maps.shape not in (expected, (self.n_slices, *expected)):
                raise MeasurementError(
                    f"'coil_maps' of a volume must have shape {expected} (shared by all slices) or "
                    f"{(self.n_slices, *expected)} (per slice), got {coil_maps.shape}"
                )
            if not self.is_volume and coil_maps.shape != expected:
                raise MeasurementError(f"'coil_maps' must have shape {expected}, got {coil_maps.shape}")
            if coil_maps.dtype.kind not in "fc":
                raise MeasurementError(f"'coil_maps' must be complex, got dtype {coil_maps.dtype}")
            self.coil_maps = _finite_as("coil_maps", coil_maps, np.complex64)
        self.kspace = kspace

    def _validate_mask(self, kspace: np.ndarray) -> None:
        mask = np.asarray(self.mask)
        if self.is_volume:
            self._check_mri_volume_shapes(kspace, mask)
        else:
            if kspace.ndim != 4:
                raise MeasurementError(f"'kspace' must have shape (P, C, H, W), got {kspace.shape}")
            if kspace.shape[2:] != self.image_shape:
                raise MeasurementError(
                    f"'kspace' frames are {kspace.shape[2:]} but 'image_shape' is {self.image_shape}"
                )
            if mask.shape != (kspace.shape[0], *kspace.shape[2:]):
                raise MeasurementError(
                    f"'mask' must have shape {(kspace.shape[0], *kspace.shape[2:])}, got {mask.shape}"
                )
        if mask.dtype != bool:
            if not (np.issubdtype(mask.dtype, np.integer) and np.all(np.isin(mask, (0, 1)))):
                raise MeasurementError(f"'mask' must be boolean, got dtype {mask.dtype}")
            mask = mask.astype(bool)
        self.mask = mask

    def _check_mri_volume_shapes(self, kspace: np.ndarray, mask: np.ndarray) -> None:
        n_slices, height, width = self.image_shape
        if kspace.ndim != 5 or kspace.shape[1] != n_slices or kspace.shape[3:] != (height, width):
            raise MeasurementError(
                f"a volume of image_shape {self.image_shape} needs 'kspace' of shape "
                f"(P, {n_slices}, C, {height}, {width}), got {kspace.shape}"
            )
        shared = (kspace.shape[0], height, width)
        per_slice = (kspace.shape[0], n_slices, height, width)
        if mask.shape not in (shared, per_slice):
            raise MeasurementError(
                f"'mask' of a volume must have shape {shared} (shared by all slices) or {per_slice} "
                f"(per slice), got {mask.shape}"
            )

    def _validate_trajectory(self, kspace: np.ndarray) -> None:
        from .operators.nufft import check_trajectory

        expected_ndim = 5 if self.is_volume else 4
        layout = "(P, Z, C, S, R)" if self.is_volume else "(P, C, S, R)"
        if kspace.ndim != expected_ndim:
            raise MeasurementError(
                f"with a 'trajectory', 'kspace' must have shape {layout} (S shots of R samples), got {kspace.shape}"
            )
        if self.is_volume and kspace.shape[1] != self.n_slices:
            raise MeasurementError(f"'kspace' has {kspace.shape[1]} slices but 'image_shape' is {self.image_shape}")
        try:
            trajectory = check_trajectory(self.trajectory, kspace.shape[0])
        except ValueError as exc:
            raise MeasurementError(str(exc)) from None
        if trajectory.shape[1:3] != kspace.shape[-2:]:
            raise MeasurementError(
                f"'trajectory' has {trajectory.shape[1]} shots of {trajectory.shape[2]} samples per frame but "
                f"'kspace' has {kspace.shape[-2]} of {kspace.shape[-1]}"
            )
        self.trajectory = trajectory

    @property
    def operator_class(self) -> type:
        """The :mod:`imaging.operators` class that models this modality's physics.

        Its class-level capabilities (e.g. ``initialisations``) can be read without
        building the operator.
        """
        from .operators import DynamicMRI, DynamicTomography

        if self.modality == "tomography":
            return DynamicTomography
        if self.trajectory is not None:
            from .operators.nufft import DynamicNonCartesianMRI

            return DynamicNonCartesianMRI
        return DynamicMRI

    def operator(self, device="cpu", **options):
        """The forward operator of these (single-slice) measurements (imaging.operators).

        The one factory from a modality to its operator (``operator_class``); ``options``
        are keyword arguments of that class. A volume has one operator per slice: use
        ``self.slice(z).operator(...)``.
        """
        if self.is_volume:
            raise MeasurementError(
                f"these measurements are a volume of {self.n_slices} slices; build the operator of one "
                "slice with .slice(z).operator(), or reconstruct the volume with imaging.reconstruct"
            )
        if self.needs_coil_maps:
            raise MeasurementError(
                f"'kspace' has {self.n_coils} coils but no 'coil_maps': estimate them first "
                "(dataclasses.replace(m, coil_maps=m.estimate_coil_maps()[0]); imaging.reconstruct does this)"
            )
        return self.operator_class.from_measurements(self, device=device, **options)

    def to_dict(self) -> dict:
        """The file-contract keys present, as numpy values (for saving)."""
        out = {}
        for f in fields(self):
            if f.name == "extra" or (self.modality == "mri" and f.name in (*GEOMETRY_KEYS, "detector_spacing")):
                continue
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "image_shape":
                value = np.asarray(value, dtype=np.int64)
            out[f.name] = value
        return out
