"""Projection geometry of 2D tomography: parallel or fan beam, with a rotation-axis offset.

Conventions are ASTRA's (docs/design.md, "Measurement file"): image coordinates ``x`` to
the right and ``y`` up with the rotation axis at the grid centre; a view at angle
``theta`` has its detector along ``(cos theta, sin theta)``.

- ``"parallel"``: ``astra.create_proj_geom('parallel', detector_spacing, D, angles)``;
  rays travel along ``(sin theta, -cos theta)``.
- ``"fan"``: ``astra.create_proj_geom('fanflat', detector_spacing, D, angles,
  source_origin, origin_detector)``: a point source at distance ``source_origin`` from
  the axis, a flat detector at distance ``origin_detector`` on the other side, and
  ``detector_spacing`` the bin width *at the detector*. The magnification is
  ``(source_origin + origin_detector) / source_origin``, so one bin covers
  ``detector_spacing / magnification`` pixels at the axis.
- ``center_offset`` (detector bins, signed, sub-pixel): the rotation axis projects
  ``center_offset`` bins from the detector centre, i.e. onto bin
  ``(D - 1) / 2 + center_offset``. The detector is moved sideways (the source stays), as
  ASTRA's vector geometries ``parallel_vec`` / ``fanflat_vec`` express. Without an
  offset the plain geometries are used.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

GEOMETRIES = ("parallel", "fan")

#: The ASTRA CPU projector behind each projector name, per geometry. ``None``: ASTRA has
#: no CPU projector of that kind for the geometry.
_ASTRA_PROJECTORS = {
    "parallel": {"line": "line", "linear": "linear", "strip": "strip"},
    "fan": {"line": "line_fanflat", "linear": None, "strip": "strip_fanflat"},
}

#: Projectors that accept the vector geometries (needed for a non-zero offset).
_VECTOR_PROJECTORS = ("line", "linear", "strip", "line_fanflat")


@dataclasses.dataclass(frozen=True)
class ProjectionGeometry:
    """Detector and source of a 2D tomography acquisition (see the module docstring).

    Parameters
    ----------
    n_detectors : int
        Detector bins ``D``.
    detector_spacing : float
        Bin width in image-pixel units, at the detector.
    kind : {"parallel", "fan"}
    center_offset : float
        Where the rotation axis projects, in bins from the detector centre.
    source_origin, origin_detector : float, optional
        Fan beam only (and required there): source-to-axis and axis-to-detector distances
        in image-pixel units.
    """

    n_detectors: int
    detector_spacing: float = 1.0
    kind: str = "parallel"
    center_offset: float = 0.0
    source_origin: float | None = None
    origin_detector: float | None = None

    def __post_init__(self):
        if self.kind not in GEOMETRIES:
            raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {self.kind!r}")
        if isinstance(self.n_detectors, bool) or int(self.n_detectors) != self.n_detectors or self.n_detectors < 1:
            raise ValueError(f"n_detectors must be positive, got {self.n_detectors}")
        for name in ("detector_spacing", "center_offset"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.detector_spacing <= 0:
            raise ValueError(f"detector_spacing must be a positive number, got {self.detector_spacing}")
        fan_distances = (self.source_origin, self.origin_detector)
        if self.kind == "parallel":
            if any(d is not None for d in fan_distances):
                raise ValueError("source_origin and origin_detector describe a fan beam; the geometry is 'parallel'")
        else:
            if any(d is None for d in fan_distances):
                raise ValueError("a fan-beam geometry needs source_origin and origin_detector")
            if not (math.isfinite(self.source_origin) and self.source_origin > 0):
                raise ValueError(f"source_origin must be a positive finite distance, got {self.source_origin!r}")
            if not (math.isfinite(self.origin_detector) and self.origin_detector >= 0):
                raise ValueError(f"origin_detector must be a finite distance >= 0, got {self.origin_detector!r}")

    @property
    def magnification(self) -> float:
        """``(source_origin + origin_detector) / source_origin``; 1 for parallel beam."""
        if self.kind == "parallel":
            return 1.0
        return (self.source_origin + self.origin_detector) / self.source_origin

    @property
    def axis_spacing(self) -> float:
        """Bin width projected onto the rotation axis (pixels): the ray spacing there."""
        return self.detector_spacing / self.magnification

    @property
    def angular_period(self) -> float:
        """Rotation after which the views repeat the same rays: pi (parallel) or 2 pi (fan)."""
        return math.pi if self.kind == "parallel" else 2.0 * math.pi

    def ray_positions(self) -> np.ndarray:
        """Bin centres at the axis, relative to the axis' projection (pixels), float64 (D,).

        For a fan beam these are the positions on the virtual detector through the axis.
        """
        bins = np.arange(self.n_detectors, dtype=np.float64) - (self.n_detectors - 1) / 2.0
        return (bins - self.center_offset) * self.axis_spacing

    def check_image_size(self, image_size: int) -> None:
        """Refuse a fan-beam source inside the ``image_size`` grid (ValueError)."""
        if self.kind == "fan" and self.source_origin <= image_size / math.sqrt(2.0):
            raise ValueError(
                f"source_origin {self.source_origin:g} puts the fan-beam source inside the {image_size} x {image_size} "
                f"reconstruction grid; it must exceed {image_size / math.sqrt(2.0):.1f} pixels"
            )

    def astra_projector(self, projector: str) -> str:
        """The ASTRA CPU projector type for ``projector`` ("line", "linear" or "strip")."""
        astra_type = _ASTRA_PROJECTORS[self.kind].get(projector)
        if astra_type is None:
            raise ValueError(f"ASTRA has no CPU '{projector}' projector for {self.kind}-beam geometry; use 'line'")
        if self.center_offset != 0 and astra_type not in _VECTOR_PROJECTORS:
            raise ValueError(
                f"ASTRA's '{astra_type}' projector does not take a rotation-axis offset (vector geometry); use 'line'"
            )
        return astra_type

    def astra_geometry(self, angles) -> dict:
        """ASTRA's projection geometry of views at ``angles`` (radians, flat).

        Plain ``parallel`` / ``fanflat`` without an offset; ``parallel_vec`` /
        ``fanflat_vec`` with the detector moved by ``-center_offset`` bins otherwise.
        """
        import astra

        angles = np.asarray(angles, dtype=np.float64).ravel()
        spacing, count = float(self.detector_spacing), int(self.n_detectors)
        if self.center_offset == 0:
            if self.kind == "parallel":
                return astra.create_proj_geom("parallel", spacing, count, angles)
            return astra.create_proj_geom(
                "fanflat", spacing, count, angles, float(self.source_origin), float(self.origin_detector)
            )
        # As astra.geom_2vec: the source side is along (sin, -cos), the detector along (cos, sin).
        source_side = np.stack([np.sin(angles), -np.cos(angles)], axis=1)
        pixel = spacing * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # from bin k to bin k + 1
        shift = -float(self.center_offset) * pixel
        if self.kind == "parallel":
            return astra.create_proj_geom("parallel_vec", count, np.hstack([source_side, shift, pixel]))
        source = float(self.source_origin) * source_side
        detector_centre = -float(self.origin_detector) * source_side + shift
        return astra.create_proj_geom("fanflat_vec", count, np.hstack([source, detector_centre, pixel]))

    def fbp_detector_weights(self) -> np.ndarray:
        """Pre-weights of the bins before ramp filtering, float64 (D,).

        Parallel beam: ones. Fan beam: ``source_origin / sqrt(source_origin^2 + s^2)``
        with ``s`` the :meth:`ray_positions` (the cosine of the ray's fan angle).
        """
        if self.kind == "parallel":
            return np.ones(self.n_detectors)
        s = self.ray_positions()
        return self.source_origin / np.sqrt(self.source_origin**2 + s**2)

    def fbp_pixel_weights(self, angles, image_size: int) -> np.ndarray | None:
        """Per-view pixel weights that turn matched back-projection into FBP's.

        The matched back-projection (the operator's adjoint) of a view sums, at a pixel,
        ``1 / (ray spacing there)``: ``1 / axis_spacing`` for parallel beam, but
        ``1 / (axis_spacing * U * cos gamma)`` for a fan beam, with ``U`` the pixel's
        depth along the central ray relative to ``source_origin`` and ``gamma`` its fan
        angle. Fan-beam FBP weights the filtered view by ``1 / U^2`` (with the
        ``s``-spacing at the axis), so each back-projection is multiplied by
        ``cos gamma / U = source_origin / |x - source|``.

        Parameters
        ----------
        angles : array_like
            (M,) view angles in radians.
        image_size : int
            N of the (N, N) grid.

        Returns
        -------
        numpy.ndarray or None
            float32 (M, N, N) for a fan beam; None for parallel beam (all ones).
        """
        if self.kind == "parallel":
            return None
        angles = np.asarray(angles, dtype=np.float64).ravel()
        centre = (image_size - 1) / 2.0
        x = np.arange(image_size) - centre  # columns, to the right
        y = centre - np.arange(image_size)  # rows, upwards
        source_x = self.source_origin * np.sin(angles)
        source_y = -self.source_origin * np.cos(angles)
        distance = np.hypot(
            x[None, None, :] - source_x[:, None, None], y[None, :, None] - source_y[:, None, None]
        )
        return (self.source_origin / distance).astype(np.float32)

    @staticmethod
    def covering_detectors(image_size: int, detector_spacing: float = 1.0, center_offset: float = 0.0,
                           source_origin: float | None = None, origin_detector: float | None = None) -> int:
        """Fewest bins that see the whole inscribed disk of an ``image_size`` grid from every angle.

        The disk (radius ``image_size / 2``) spans ``2 R`` at the axis for parallel beam and
        ``2 R source_origin / sqrt(source_origin^2 - R^2)`` on the virtual detector for a fan
        beam; an offset moves the axis' projection ``|center_offset|`` bins from the centre,
        so both sides get that margin.
        """
        radius = image_size / 2.0
        if source_origin is None:
            half_width = radius
            magnification = 1.0
        else:
            if source_origin <= radius:
                raise ValueError(f"source_origin {source_origin:g} must exceed the object radius {radius:g}")
            half_width = radius * source_origin / math.sqrt(source_origin**2 - radius**2)
            magnification = (source_origin + origin_detector) / source_origin
        half_bins = half_width * magnification / detector_spacing + abs(center_offset)
        return int(math.ceil(2 * half_bins - 1e-9))


def shift_bins(views: np.ndarray, shift: float) -> np.ndarray:
    """Views moved by ``shift`` bins along the detector (last axis), sub-pixel.

    Bin ``k`` of the result holds the value the input had at position ``k - shift``
    (band-limited interpolation by a Fourier phase ramp on a zero-padded length, so
    nothing wraps around from the other end); positions off the detector read zero.

    Parameters
    ----------
    views : numpy.ndarray
        (..., D) real.
    shift : float
        Bins; positive moves the content towards higher bins.

    Returns
    -------
    numpy.ndarray
        float32 (..., D).
    """
    views = np.asarray(views, dtype=np.float64)
    n_bins = views.shape[-1]
    length = 1 << math.ceil(math.log2(2 * n_bins + 2 * math.ceil(abs(shift))))
    spectrum = np.fft.rfft(views, n=length, axis=-1)
    spectrum *= np.exp(-2j * np.pi * np.fft.rfftfreq(length) * shift)
    return np.fft.irfft(spectrum, n=length, axis=-1)[..., :n_bins].astype(np.float32)
