"""Running reconstructions (SigPy's ``App``): the runner and the batch front end.

:func:`iterate` / :func:`reconstruct` drive any registered solver on one slice or a
volume, with callbacks, checkpoints and metrics against a ground truth; every front end
(CLI, napari, batch, demo, examples) calls them. :mod:`imaging.run.batch` spreads many
files and slices over Dask workers.
"""

from .progress import RemainingTime
from .runner import IterationInfo, iterate, reconstruct
from .volumes import assemble_volume, slice_checkpoint

__all__ = ["IterationInfo", "RemainingTime", "iterate", "reconstruct", "assemble_volume", "slice_checkpoint"]
