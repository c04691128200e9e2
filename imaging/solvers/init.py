"""Deprecated: the PSM initialisations moved to :mod:`imaging.solvers.psm.initialisation`."""

from .._deprecation import moved_attribute

__getattr__ = moved_attribute(
    __name__,
    {
        name: f"imaging.solvers.psm.initialisation:{name}"
        for name in (
            "INITIALISATIONS",
            "INITIALISATIONS_BY_MODALITY",
            "amplitude_scale",
            "fbp_window_frames",
            "filtered_backprojection",
            "initial_frames",
            "kspace_centre_frames",
            "projection_domain_frames",
        )
    },
)
