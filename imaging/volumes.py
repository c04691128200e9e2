"""Deprecated: volumes are part of the runner now.

``imaging.reconstruct`` / ``imaging.iterate`` take a volume measurement directly and
return (P, Z, N, N); simulation moved to :mod:`imaging.simulate`, scoring to
:mod:`imaging.metrics`, the per-slice helpers to :mod:`imaging.run.volumes`.
"""

from ._deprecation import moved_attribute

__getattr__ = moved_attribute(
    __name__,
    {
        "reconstruct_volume": "imaging.run.runner:reconstruct",
        "SliceIterationInfo": "imaging.run.runner:IterationInfo",
        "assemble_volume": "imaging.run.volumes:assemble_volume",
        "slice_checkpoint": "imaging.run.volumes:slice_checkpoint",
        "evaluate_volume": "imaging.metrics:evaluate_volume",
        "simulate_volume": "imaging.simulate:simulate_volume",
        "simulate_volume_tomography": "imaging.simulate:simulate_volume_tomography",
        "simulate_volume_mri": "imaging.simulate:simulate_volume_mri",
    },
)
