"""Deprecated: the PSM initialisations moved to :mod:`imaging.solvers.psm.initialisation`.

``INITIALISATIONS_BY_MODALITY`` is gone: each operator class lists its own
(``imaging.operators.DynamicTomography.initialisations``, ``measurements.operator_class``);
the old name still answers, built from those lists.
"""

import warnings

from .._deprecation import moved_attribute

_moved = moved_attribute(
    __name__,
    {
        name: f"imaging.solvers.psm.initialisation:{name}"
        for name in (
            "INITIALISATIONS",
            "amplitude_scale",
            "fbp_window_frames",
            "filtered_backprojection",
            "initial_frames",
            "kspace_centre_frames",
            "projection_domain_frames",
        )
    },
)


def __getattr__(name: str):
    if name != "INITIALISATIONS_BY_MODALITY":
        return _moved(name)
    warnings.warn(
        f"{__name__}.{name} is deprecated; ask the operator class: measurements.operator_class.initialisations",
        DeprecationWarning,
        stacklevel=2,
    )
    from ..operators import DynamicMRI, DynamicTomography

    return {"tomography": DynamicTomography.initialisations, "mri": DynamicMRI.initialisations}
