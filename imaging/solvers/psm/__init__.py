"""The partially separable model (PSM) solvers: method ``psm`` and what ``red-psm`` builds on.

- :mod:`.subproblem`: :class:`PSMSubproblem`, the exact/CG minimiser of the PSM data fit
  (with the optional coupling of RED-PSM), and :func:`data_weight`;
- :mod:`.initialisation`: the initial frame sequences (projection-domain fit, fbp-window
  + SVD, k-space centre) and the amplitude normalisation :func:`amplitude_scale`;
- :mod:`.solver`: :class:`PSMParams`, the shared set-up :class:`PSMFamilySolver` and the
  registered ``psm`` method :class:`PSMSolver`.
"""

from .initialisation import (
    INITIALISATIONS,
    amplitude_scale,
    fbp_window_frames,
    filtered_backprojection,
    initial_frames,
    kspace_centre_frames,
    projection_domain_frames,
)
from .solver import AUTO_KNOTS, AUTO_ORDER, PSMFamilySolver, PSMParams, PSMSolver, model_size, penalty_param, relative_norm
from .subproblem import GRAM_FROM_PROJECTIONS_ENTRIES, SYMBOL_FLOOR, PSMSubproblem, data_weight

__all__ = [
    "AUTO_KNOTS",
    "AUTO_ORDER",
    "GRAM_FROM_PROJECTIONS_ENTRIES",
    "INITIALISATIONS",
    "PSMFamilySolver",
    "PSMParams",
    "PSMSolver",
    "PSMSubproblem",
    "SYMBOL_FLOOR",
    "amplitude_scale",
    "data_weight",
    "fbp_window_frames",
    "filtered_backprojection",
    "initial_frames",
    "kspace_centre_frames",
    "model_size",
    "penalty_param",
    "projection_domain_frames",
    "relative_norm",
]
