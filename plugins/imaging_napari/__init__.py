"""napari plugin of the ``imaging`` toolkit: simulate, reconstruct, compare, read and write.

The manifest (``napari.yaml``) points napari at the widgets in :mod:`._qt` (one module per widget), the
sample data in :mod:`._samples` and the reader/writer in :mod:`._io`. The computations
behind the widgets live in Qt-free modules (:mod:`._layers`, :mod:`._logic`) so that
they are testable without a display.
"""

__all__: list[str] = []
