"""Qt plumbing shared by the dock widgets: layer choosers, docks with a fixed footer,
plots drawn off the GUI thread, saving a layer with everything it carries.
"""

import re
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import Container, Label, ProgressBar
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QElapsedTimer, QEvent, QSize, Qt, QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from .. import _io
from .._layers import MEASUREMENTS_KEY

#: Largest value of a Qt integer spin box.
INT32_MAX = 2**31 - 1


def is_stack(layer, volumes: bool = False) -> bool:
    """A (T, Y, X) image layer, or also a (T, Z, Y, X) one when ``volumes``, that is an object.

    Measurement layers are not objects (their pictures live in another space), nor are
    helper layers the plugin marks with ``metadata["kind"]`` (e.g. PSM factors).
    """
    return (
        isinstance(layer, napari.layers.Image)
        and (layer.ndim == 3 or (volumes and layer.ndim == 4))
        and not layer.rgb
        and MEASUREMENTS_KEY not in layer.metadata
        and "kind" not in layer.metadata
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


class _DockBody(QWidget):
    """What napari docks: the scrolling rows above a footer that never scrolls away.

    The footer holds what must stay in sight when docks are stacked and the rows
    scroll: Run/Cancel, the progress bar, the status line.
    """

    def __init__(self, scroll_area: QScrollArea):
        super().__init__()
        self.scroll_area = scroll_area
        self.footer = QWidget()
        self.footer.setLayout(QVBoxLayout())
        self.footer.layout().setContentsMargins(0, 4, 0, 0)
        self.footer.setVisible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(scroll_area, 1)
        layout.addWidget(self.footer, 0)
        self._room_requested = False

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
    """A container that napari docks as rows in a :class:`_ContentSizedScrollArea` plus a fixed footer.

    napari docks a magicgui widget's ``native``, so ``native`` is the dock body; the
    rows live in the container's own widget inside the scroll area. (magicgui's
    ``scrollable=True`` does not help here: napari docks the inner widget,
    pyapp-kit/magicgui#431.)
    """

    def __init__(self):
        super().__init__()
        self._content = super().native
        self._body = _DockBody(_ContentSizedScrollArea(self._content))
        # napari finds the magicgui widget of a dock through this attribute.
        self._body._magic_widget = self

    @property
    def native(self):
        return getattr(self, "_body", None) or super().native

    def _append_full_width(self, widget) -> None:
        """Add a widget (magicgui or Qt) below the labelled rows, spanning the label column too."""
        self._content.layout().addWidget(getattr(widget, "native", widget))

    def _append_footer(self, widget) -> None:
        """Add a widget (magicgui or Qt) to the footer, below the scrolling rows."""
        self._body.footer.layout().addWidget(getattr(widget, "native", widget))
        self._body.footer.setVisible(True)


class JobDock(ScrollingContainer):
    """A dock that runs one job at a time, with the footer every such dock has.

    The footer (:meth:`_add_job_footer`) holds a row of buttons (Run, Cancel ...), the
    progress bar, the status line and a Save button, in that order. The subclass keeps
    its running job (a :class:`.._jobs.Job`) in ``_job``.
    """

    def __init__(self):
        super().__init__()
        self._job = None
        self._progress = ProgressBar(name="progress", value=0, min=0, max=1, label="progress")
        self._status = Label(name="status", value="")

    def _add_job_footer(self, buttons: list, status: str, save) -> None:
        """Put ``buttons`` side by side, then the progress bar, the status line (``status``) and ``save``."""
        self._status.value = status
        self._append_footer(Container(widgets=buttons, layout="horizontal", labels=False))
        for widget in (self._progress, self._status, save):
            self._append_footer(widget)

    @property
    def progress(self) -> ProgressBar:
        """The progress bar."""
        return self._progress

    @property
    def status(self) -> Label:
        """The status line."""
        return self._status

    @property
    def running(self) -> bool:
        """True while the dock's job runs."""
        return self._job is not None


def on_destroyed(container, callback) -> None:
    """Call ``callback()`` when the Qt widget of ``container`` is deleted (the viewer closes).

    Work still running then must not call back into the deleted widgets.
    """
    container.native.destroyed.connect(lambda *_: callback())


class PlotView(QLabel):
    """A picture of a matplotlib figure drawn elsewhere (hidden until shown).

    Figures are drawn to pixels off the GUI thread (:func:`.._plots.render`); showing
    the pixels here costs the GUI thread next to nothing. ``figure`` is the last figure
    shown, for scripts and tests.
    """

    def __init__(self, name: str):
        super().__init__()
        self.setObjectName(name)
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.figure = None
        self.setVisible(False)

    def show_rendered(self, figure, pixels: np.ndarray) -> None:
        """Show ``pixels``, uint8 (H, W, 4) RGBA, the rendering of ``figure``."""
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        image = QImage(pixels.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
        ratio = self.devicePixelRatioF() or 1.0
        pixmap = QPixmap.fromImage(image)
        pixmap.setDevicePixelRatio(ratio)
        self.figure = figure
        self.setPixmap(pixmap)
        self.setFixedHeight(int(height / ratio))
        self.setMinimumWidth(min(int(width / ratio), 260))
        self.setVisible(True)

    @property
    def shown(self) -> bool:
        """True once a figure is shown."""
        return self.figure is not None and not self.isHidden()


_UNSAFE_FILE_CHARACTERS = re.compile(r"[^\w .()=,+-]")


def save_layer(viewer, name: str, parent: QWidget | None = None) -> list[str] | None:
    """Ask where to save layer ``name``, in a format that keeps everything, and save it.

    The dialog offers only :func:`.._io.complete_formats` (measurement or
    reconstruction files), so this path never drops geometry, parameters, history or
    factors, unlike napari's own "lossless" writer, which also claims ``.npz``.

    Returns
    -------
    list of str or None
        The written path; ``None`` when the user cancelled or saving failed (a
        notification says why).
    """
    from napari.utils.history import get_save_history, update_save_history

    if name not in viewer.layers:
        show_error(f"There is no layer {name!r} to save.")
        return None
    layer = viewer.layers[name]
    formats = _io.complete_formats(layer.metadata)
    filters = [f"{description} ({' '.join('*' + suffix for suffix in suffixes)})" for description, suffixes in formats]
    suggested = Path(get_save_history()[0]) / (_UNSAFE_FILE_CHARACTERS.sub("_", name) + formats[0][1][0])
    path, chosen = QFileDialog.getSaveFileName(parent, f"Save {name}", str(suggested), ";;".join(filters))
    if not path:
        return None
    suffixes = formats[filters.index(chosen)][1] if chosen in filters else formats[0][1]
    if Path(path).suffix.lower() not in {suffix for _, known in formats for suffix in known}:
        path += suffixes[0]
    try:
        written = _io.write_layer(path, layer.data, {"name": layer.name, "metadata": layer.metadata})
    except Exception as exc:  # a full disk, a missing folder, a refused layer: one notification
        show_error(f"Cannot save {name!r}: {exc}")
        return None
    update_save_history(path)
    show_info(f"Saved {name!r} to {path}")
    return written


class EventLoopGaps:
    """The longest time between two turns of the Qt event loop, per named phase.

    A 2 ms timer fires whenever the event loop is free; the time between two firings is
    how long the GUI thread was busy, or waiting for Python's GIL held by another
    thread, in between: what a user feels as a frozen viewer. Used by the tests and by
    ``benchmarks/napari_responsiveness.py``.
    """

    def __init__(self):
        self.longest: dict[str, float] = {}
        self.over_100_ms: dict[str, int] = {}
        self.phase = ""
        self._clock = QElapsedTimer()
        self._clock.start()
        self._last: float | None = None
        self._timer = QTimer()
        self._timer.setInterval(2)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = self._clock.nsecsElapsed() / 1e6
        if self._last is not None:
            gap = now - self._last
            self.longest[self.phase] = max(self.longest.get(self.phase, 0.0), gap)
            self.over_100_ms[self.phase] = self.over_100_ms.get(self.phase, 0) + (gap > 100)
        self._last = now

    def start(self, phase: str) -> None:
        """Measure from now on under ``phase`` (gaps in milliseconds)."""
        self.phase, self._last = phase, None
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()
