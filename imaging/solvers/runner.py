"""Deprecated: the runner moved to :mod:`imaging.run.runner`."""

from .._deprecation import moved_attribute

__getattr__ = moved_attribute(
    __name__,
    {
        "IterationInfo": "imaging.run.runner:IterationInfo",
        "ReconstructionResult": "imaging.results:ReconstructionResult",
        "iterate": "imaging.run.runner:iterate",
        "reconstruct": "imaging.run.runner:reconstruct",
        "get_solver": "imaging.solvers.registry:get_solver",
    },
)
