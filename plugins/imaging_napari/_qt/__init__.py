"""The dock widgets, one per module: Simulate acquisition, Reconstruct, Compare reconstructions.

Each widget is a :class:`magicgui.widgets.Container` that napari builds with the viewer
(npe2 injects it through the ``viewer`` annotation). The widgets gather inputs and show
outputs; the computations are those of :mod:`.._logic`, and reconstructions run through
:class:`.._jobs.Job` (a napari thread worker, or synchronously for tests). Layers are
referred to by name in the choosers and looked up when used, so a renamed or removed
layer never leaves a stale object behind. :mod:`._common` holds the Qt plumbing they share.
"""

from .compare import CompareWidget
from .reconstruct import ReconstructWidget
from .simulate import SimulateAcquisitionWidget

__all__ = ["SimulateAcquisitionWidget", "ReconstructWidget", "CompareWidget"]
