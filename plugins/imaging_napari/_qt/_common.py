"""Qt plumbing shared by the dock widgets: layer choosers, scrolling docks, embedded plots."""

import napari
from magicgui.widgets import Container
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QComboBox, QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

from .._layers import MEASUREMENTS_KEY
from .._plots import new_figure

#: Largest value of a Qt integer spin box.
INT32_MAX = 2**31 - 1


def is_stack(layer, volumes: bool = False) -> bool:
    """A (T, Y, X) image layer, or also a (T, Z, Y, X) one when ``volumes``, that is not a measurement."""
    return (
        isinstance(layer, napari.layers.Image)
        and (layer.ndim == 3 or (volumes and layer.ndim == 4))
        and not layer.rgb
        and MEASUREMENTS_KEY not in layer.metadata
    )


def compact_layer_chooser(widget):
    """Let a layer chooser shrink below the width of long layer names (they elide)."""
    if isinstance(widget.native, QComboBox):
        widget.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        widget.native.setMinimumContentsLength(14)
    return widget


def add_or_update(viewer, layer_data: tuple):
    """Add a layer, or update the layer of that name in place (data, metadata, contrast)."""
    data, meta, _ = layer_data
    name = meta["name"]
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data = data
        layer.metadata = meta["metadata"]
        layer.contrast_limits = meta["contrast_limits"]
        return layer
    return viewer.add_image(data, **meta)


class _ContentSizedScrollArea(QScrollArea):
    """A vertical scroll area that asks for its content's size.

    Its preferred size is the content's, so a dock opens tall enough to show the whole
    widget when there is room; its minimum width is the content's, so it never clips a
    row (it does not scroll horizontally); its minimum height is small, so a crowded dock
    area can shrink it and scroll instead of pushing the window off the screen.
    """

    def __init__(self, content: QWidget):
        super().__init__()
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidget(content)
        content.installEventFilter(self)
        self._room_requested = False

    def _scroll_bar_width(self) -> int:
        return self.verticalScrollBar().sizeHint().width()

    def sizeHint(self) -> QSize:
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self._scroll_bar_width(), hint.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(self.widget().minimumSizeHint().width() + self._scroll_bar_width(), 120)

    def eventFilter(self, watched, event) -> bool:
        # The content's size changes when rows are added and when napari's style sheet
        # applies; tell the dock to ask again.
        if event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return False

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if self._room_requested:
            return
        # A dock added below another one starts at its minimum height; once, when first
        # shown, ask the main window for the height the content prefers.
        self._room_requested = True
        dock = self.parent()
        window = dock.parent() if isinstance(dock, QDockWidget) else None
        if isinstance(window, QMainWindow):
            window.resizeDocks([dock], [self.sizeHint().height()], Qt.Orientation.Vertical)


class ScrollingContainer(Container):
    """A container that napari docks inside a :class:`_ContentSizedScrollArea`.

    napari docks a magicgui widget's ``native``, so ``native`` is the scroll area; the
    rows live in the container's own widget inside it. (magicgui's ``scrollable=True``
    does not help here: napari docks the inner widget, pyapp-kit/magicgui#431.)
    """

    def __init__(self):
        super().__init__()
        self._content = super().native
        self._scroll_area = _ContentSizedScrollArea(self._content)
        # napari finds the magicgui widget of a dock through this attribute.
        self._scroll_area._magic_widget = self

    @property
    def native(self):
        return getattr(self, "_scroll_area", None) or super().native

    def _append_full_width(self, widget) -> None:
        """Add a widget below the labelled rows, spanning the label column too."""
        self._content.layout().addWidget(widget.native)


class PlotWidget(Container):
    """A matplotlib figure embedded in a magicgui container (hidden until drawn)."""

    def __init__(self, name: str, height: float = 3.0):
        super().__init__(name=name, labels=False)
        self.figure = new_figure(height=height)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(height * 80))
        self.native.layout().addWidget(self.canvas)
        self.visible = False

