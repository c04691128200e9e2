"""Image models: the partially separable (low-rank) model of a dynamic image."""

from .psm import (
    INTERPOLATIONS,
    PSMFactors,
    check_interpolation,
    fit_knots,
    interpolation_matrix,
    project_frames,
    synthesize,
    psm_from_frames,
)

__all__ = [
    "INTERPOLATIONS",
    "PSMFactors",
    "check_interpolation",
    "fit_knots",
    "interpolation_matrix",
    "project_frames",
    "synthesize",
    "psm_from_frames",
]
