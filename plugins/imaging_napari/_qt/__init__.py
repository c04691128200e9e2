"""The dock widgets, one per module: :mod:`.simulate` (Simulate acquisition),
:mod:`.reconstruct` (Reconstruct), :mod:`.compare` (Compare reconstructions).

Each widget is a :class:`magicgui.widgets.Container` that napari builds with the viewer
(npe2 injects it through the ``viewer`` annotation). The widgets gather inputs and show
outputs; the computations are those of :mod:`.._logic`, and every long one runs through
:class:`.._jobs.Job` (a napari thread worker, or synchronously for tests). Layers are
referred to by name in the choosers and looked up when used, so a renamed or removed
layer never leaves a stale object behind. :mod:`._common` holds the Qt plumbing they
share and :mod:`.parameters` the typed parameter inputs.

This package imports none of its modules: napari imports the one widget it opens
(the manifest names each module), so opening one dock does not pay for the others.
"""
