"""The dock widgets: Simulate acquisition, Reconstruct, Compare reconstructions.

Each widget is a :class:`magicgui.widgets.Container` that napari builds with the viewer
(npe2 injects it through the ``viewer`` annotation). The widgets gather inputs and
show outputs; the computations are those of :mod:`._logic`, and reconstructions run
through :class:`._jobs.Job` (a napari thread worker, or synchronously for tests).

Layers are referred to by name in the choosers and looked up when used, so a renamed
or removed layer never leaves a stale object behind.
"""

import napari
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    Select,
    SpinBox,
    Table,
)
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from napari.utils.notifications import show_error
from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QMainWindow,
    QScrollArea,
    QStyledItemDelegate,
    QWidget,
)

from . import _logic
from ._jobs import Job
from ._layers import (
    MEASUREMENTS_KEY,
    RESULT_KEY,
    image_layer,
    measurement_layer,
    phase_layer,
    reconstruction_layer,
    result_layer_name,
    robust_contrast_limits,
    slice_status,
    spatial_bases_layer,
)
from ._plots import new_figure, plot_comparison, plot_temporal_bases

_INT32_MAX = 2**31 - 1
_NO_PRESET = "method defaults"


def _is_stack(layer, volumes: bool = False) -> bool:
    """A (T, Y, X) image layer, or also a (T, Z, Y, X) one when ``volumes``, that is not a measurement."""
    return (
        isinstance(layer, napari.layers.Image)
        and (layer.ndim == 3 or (volumes and layer.ndim == 4))
        and not layer.rgb
        and MEASUREMENTS_KEY not in layer.metadata
    )


def _compact_layer_chooser(widget):
    """Let a layer chooser shrink below the width of long layer names (they elide)."""
    if isinstance(widget.native, QComboBox):
        widget.native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        widget.native.setMinimumContentsLength(14)
    return widget


def _add_or_update(viewer, layer_data: tuple):
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


class _ScrollingContainer(Container):
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


class _PlotWidget(Container):
    """A matplotlib figure embedded in a magicgui container (hidden until drawn)."""

    def __init__(self, name: str, height: float = 3.0):
        super().__init__(name=name, labels=False)
        self.figure = new_figure(height=height)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(int(height * 80))
        self.native.layout().addWidget(self.canvas)
        self.visible = False


class SimulateAcquisitionWidget(Container):
    """Image layer (T, Y, X) or (T, Z, Y, X) -> measurement layer with the full data in its metadata."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self._image = _compact_layer_chooser(
            ComboBox(
                name="object",
                label="object",
                choices=self._stack_names,
                tooltip=(
                    "the dynamic object, a (T, Y, X) image layer, e.g. File > Open Sample > Walnut phantom, "
                    "or a (T, Z, Y, X) volume, measured slice by slice"
                ),
            )
        )
        self._modality = ComboBox(name="modality", label="modality", choices=_logic.MODALITIES, value="tomography")
        self._schedule = ComboBox(
            name="schedule",
            label="schedule",
            choices=lambda _widget: _logic.acquisition_schedules(self._modality.value),
            tooltip="order of the view angles over time (tomography) or k-t sampling pattern (MRI)",
        )
        self._per_frame = SpinBox(name="per_frame", label="views per frame", value=1, min=1, max=4096)
        self._noise = FloatSpinBox(
            name="noise",
            label="noise level",
            value=5e-3,
            min=0.0,
            max=1.0,
            step=5e-4,
            tooltip="noise std relative to the peak of the fully sampled data (paper: 0.005)",
        )
        self._coils = SpinBox(
            name="coils", label="coils", value=1, min=1, max=32, tooltip="MRI: number of receive coils"
        )
        self._seed = SpinBox(
            name="seed", label="seed", value=0, min=0, max=_INT32_MAX, tooltip="seed of the noise and schedule"
        )
        self._run = PushButton(text="Simulate")
        self._status = Label(name="status", label="simulated", value="")
        self.extend(
            [self._image, self._modality, self._schedule, self._per_frame, self._noise, self._coils, self._seed]
        )
        self.extend([self._run, self._status])
        self._modality.changed.connect(self._on_modality)
        self._run.clicked.connect(self.simulate)
        self._on_modality("tomography")

    def _stack_names(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if _is_stack(layer, volumes=True)]

    def _on_modality(self, modality: str) -> None:
        self._schedule.reset_choices()
        tomography = modality == "tomography"
        self._per_frame.label = "views per frame" if tomography else "lines per frame"
        self._per_frame.tooltip = (
            "projection angles measured in each frame (paper: 1)"
            if tomography
            else "phase-encode lines (k-space rows) measured in each frame"
        )
        self._per_frame.value = 1 if tomography else 8
        self._coils.visible = not tomography

    def simulate(self):
        """Simulate the acquisition; returns the measurement layer (``None`` after an error)."""
        if not self._image.value:
            show_error(
                "Simulate acquisition needs a (T, Y, X) or (T, Z, Y, X) image layer: "
                "open one (File > Open Sample) first."
            )
            return None
        source = self._viewer.layers[self._image.value]
        try:
            measurements = _logic.simulate_from_image(
                source.data,
                modality=self._modality.value,
                schedule=self._schedule.value,
                per_frame=self._per_frame.value,
                noise=self._noise.value,
                seed=self._seed.value,
                coils=self._coils.value,
            )
        except ValueError as exc:  # InputError and the library's argument checks
            show_error(f"Cannot simulate: {exc}")
            return None
        name = _logic.measurement_layer_name(
            source.name, self._modality.value, self._schedule.value, self._per_frame.value
        )
        layer = _add_or_update(self._viewer, measurement_layer(measurements, name))
        self._viewer.reset_view()  # the measurement sits beside the object: show both
        self._status.value = layer.metadata["description"]
        return layer


class ReconstructWidget(_ScrollingContainer):
    """Reconstruct a measurement layer with any registered method, with live preview and cancel.

    A volume measurement is reconstructed slice by slice (:func:`._logic.reconstruction_job`):
    the progress bar counts the iterations of all slices, the preview is the (T, Z, Y, X)
    volume so far, the z slider follows the slice being reconstructed (unless the user
    moves it elsewhere), and the result is a (T, Z, Y, X) layer. A cancelled volume keeps
    its finished slices and the interrupted slice's last estimate; the slices not run are
    zero, and the layer's name and its ``metadata["slice_status"]`` say which is which.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self._job = None
        self._run_context: dict = {}
        self._last_result: str | None = None
        self._measurement = _compact_layer_chooser(
            ComboBox(
                name="measurement",
                label="measurement",
                choices=self._measurement_names,
                tooltip="a measurement layer (from Simulate acquisition, a sample or a measurement file)",
            )
        )
        self._method = ComboBox(name="method", label="method", choices=self._method_names)
        self._preset = ComboBox(
            name="preset",
            label="preset",
            choices=self._preset_names,
            tooltip="named parameter sets of the method; choosing one fills in the parameters below",
        )
        self._device = ComboBox(name="device", label="device", choices=_logic.available_devices())
        self._preview_every = SpinBox(
            name="preview_every",
            label="preview every",
            value=5,
            min=1,
            max=_INT32_MAX,
            tooltip="update the preview layer every this many outer iterations",
        )
        self._show_factors = CheckBox(
            name="show_factors",
            text="show PSM factors",
            value=True,
            tooltip="for PSM-type methods: add the spatial bases as a layer and plot the temporal bases",
        )
        self._run = PushButton(text="Run")
        self._cancel = PushButton(text="Cancel", enabled=False, tooltip="stop after the current outer iteration")
        self._progress = ProgressBar(name="progress", value=0, min=0, max=1, label="progress")
        self._progress.native.setFormat("iteration %v / %m")
        self._status = Label(name="status", value="ready")
        self._bases_plot = _PlotWidget("temporal_bases_plot", height=2.2)
        self._parameter_widgets: dict = {}
        self._inputs = [
            self._measurement,
            self._method,
            self._preset,
            self._device,
            self._preview_every,
            self._show_factors,
        ]
        self.extend(self._inputs)
        self.extend(
            [
                Container(widgets=[self._run, self._cancel], layout="horizontal", labels=False),
                self._progress,
                self._status,
            ]
        )
        self._append_full_width(self._bases_plot)
        self._measurement.changed.connect(self._on_measurement)
        self._method.changed.connect(self._on_method)
        self._preset.changed.connect(self._on_preset)
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)
        self._on_method(self._method.value)

    # -- choices --------------------------------------------------------------------------
    def _measurement_names(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if MEASUREMENTS_KEY in layer.metadata]

    def _measurements(self):
        name = self._measurement.value
        if not name or name not in self._viewer.layers:
            return None
        return self._viewer.layers[name].metadata[MEASUREMENTS_KEY]

    def _method_names(self, _widget=None) -> list[str]:
        measurements = self._measurements()
        return _logic.available_methods(measurements.modality if measurements is not None else None)

    def _preset_names(self, _widget=None) -> list[str]:
        if not self._method.value:
            return [_NO_PRESET]
        return [_NO_PRESET, *_logic.method_presets(self._method.value)]

    def _selected_preset(self) -> str | None:
        return None if self._preset.value in (None, _NO_PRESET) else self._preset.value

    # -- reacting to choices --------------------------------------------------------------
    def _on_measurement(self, _name=None) -> None:
        self._method.reset_choices()

    def _on_method(self, method) -> None:
        for widget in self._parameter_widgets.values():
            self.remove(widget)
        self._parameter_widgets = {}
        self._preset.reset_choices()
        if not method:
            return
        from imaging.solvers import get_solver

        # The parameter rows go right after the preset, in the widget's own form, so that
        # they line up with the other inputs.
        position = self.index(self._preset) + 1
        for offset, spec in enumerate(get_solver(method).describe_params()):
            widget = _parameter_widget(spec)
            self.insert(position + offset, widget)
            self._parameter_widgets[spec["name"]] = widget
        self._on_preset(self._preset.value)

    def _on_preset(self, _preset=None) -> None:
        if not self._method.value:
            return
        for name, value in _logic.baseline_params(self._method.value, self._selected_preset()).items():
            widget = self._parameter_widgets.get(name)
            if widget is not None:
                widget.value = _widget_value(value, widget)

    @property
    def parameter_widgets(self) -> dict:
        """Parameter name -> its input widget, for the chosen method."""
        return dict(self._parameter_widgets)

    def parameter_values(self) -> dict:
        """The method's parameters as typed in the widget (raises ``InputError`` for bad text)."""
        from imaging.solvers import get_solver

        return {
            spec["name"]: _logic.parse_parameter(
                spec["name"], spec["default"], self._parameter_widgets[spec["name"]].value
            )
            for spec in get_solver(self._method.value).describe_params()
        }

    def set_parameters(self, **values) -> None:
        """Set parameter widgets by name (for scripts and tests)."""
        for name, value in values.items():
            widget = self._parameter_widgets.get(name)
            if widget is None:
                raise KeyError(f"method {self._method.value!r} has no parameter {name!r}")
            widget.value = _widget_value(value, widget)

    # -- running --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a reconstruction runs."""
        return self._job is not None

    @property
    def last_result(self) -> str | None:
        """Name of the layer the last finished or stopped run added (``None`` before any)."""
        return self._last_result

    def run(self) -> None:
        """Start reconstructing the chosen measurement layer with the chosen method."""
        if self.running:
            return
        measurements = self._measurements()
        if measurements is None:
            show_error("Reconstruct needs a measurement layer: use Simulate acquisition or open a measurement file.")
            return
        method = self._method.value
        if not method:
            show_error(f"No reconstruction method handles {measurements.modality} data.")
            return
        try:
            params = self.parameter_values()
        except _logic.InputError as exc:
            show_error(str(exc))
            return
        preset = self._selected_preset()
        truth = measurements.ground_truth
        self._run_context = {
            "method": method,
            "preset": preset,
            "baseline": _logic.baseline_params(method, preset),
            "source": self._measurement.value,
            "contrast_limits": robust_contrast_limits(truth) if truth is not None else None,
            "show_factors": self._show_factors.value,
            "followed_slice": 0,
        }
        max_iter = int(params.get("max_iter", 1))
        n_slices = measurements.n_slices
        self._progress.max = max(1, max_iter) * n_slices
        self._progress.value = 0
        self._progress.native.setFormat(
            f"%v / %m iterations of {n_slices} slices" if measurements.is_volume else "iteration %v / %m"
        )
        self._status.value = f"starting {method}..."
        self._bases_plot.visible = False
        self._set_running(True)
        generator = _logic.reconstruction_job(
            measurements,
            method,
            device=self._device.value,
            preset=preset,
            params=params,
            preview_every=self._preview_every.value,
        )
        self._job = Job(
            generator,
            on_yield=self._on_progress,
            on_return=self._on_result,
            on_error=self._on_error,
            on_finish=self._on_finish,
            progress_total=max_iter * n_slices,
            description=f"{method} on {self._measurement.value}",
        )
        self._job.start()

    def cancel(self) -> None:
        """Stop the run after its current outer iteration; its last estimate becomes a layer."""
        if self._job is None:
            return
        self._job.request_stop()
        self._cancel.enabled = False
        self._status.value = "stopping after the current iteration..."

    def _set_running(self, running: bool) -> None:
        for widget in [*self._inputs, *self._parameter_widgets.values()]:
            widget.enabled = not running
        self._run.enabled = not running
        self._cancel.enabled = running

    @property
    def _preview_name(self) -> str:
        return f"{self._run_context['method']} preview"

    def _on_progress(self, progress: _logic.Progress) -> None:
        # Slices run max_iter iterations each (fewer when one converges): the bar counts all.
        self._progress.max = max(1, progress.max_iter) * progress.n_slices
        self._progress.value = progress.slice_index * max(1, progress.max_iter) + progress.iteration
        if self._job is not None and self._cancel.enabled:
            self._status.value = _logic.progress_text(progress)
        if progress.preview is None:
            return
        name = self._preview_name
        layer = self._viewer.layers[name] if name in self._viewer.layers else None
        if layer is not None and layer.ndim != progress.preview.ndim:  # left by a run on other data
            self._viewer.layers.remove(layer)
            layer = None
        if layer is not None:
            layer.data = progress.preview
        else:
            data, meta, _ = image_layer(progress.preview, name, self._run_context["contrast_limits"])
            self._viewer.add_image(data, **meta)
        if progress.n_slices > 1:
            self._follow_slice(progress.slice_index)

    def _follow_slice(self, z: int) -> None:
        """Move the z slider to slice ``z``, unless the user moved it off the slice it followed."""
        followed = self._run_context["followed_slice"]
        # napari aligns trailing axes: the z axis of the (T, Z, Y, X) preview is third from last.
        axis = self._viewer.dims.ndim - 3
        if z != followed and self._viewer.dims.current_step[axis] == followed:
            self._viewer.dims.set_current_step(axis, z)
        self._run_context["followed_slice"] = z

    def _on_result(self, result) -> None:
        context = self._run_context
        if self._preview_name in self._viewer.layers:
            self._viewer.layers.remove(self._preview_name)
        name = result_layer_name(result, context["baseline"], context["preset"])
        _add_or_update(
            self._viewer, reconstruction_layer(result, name, context["contrast_limits"], source=context["source"])
        )
        phase = phase_layer(result, name)
        if phase is not None:
            _add_or_update(self._viewer, phase)
        self._last_result = name
        iterations = len(result.history)
        self._progress.value = min(iterations, self._progress.max)
        verb = "stopped after" if "stopped" in result.stop_reason.split(", ") else "finished:"
        self._status.value = f"{verb} {iterations} iteration(s) in {result.elapsed_seconds:.1f} s"
        status = slice_status(result)
        if status is not None:
            self._status.value += f", {status.count('finished')} of {len(status)} slices finished"
        extras = result.extras or {}
        if context["show_factors"] and "spatial_bases" in extras:
            _add_or_update(self._viewer, spatial_bases_layer(extras["spatial_bases"], f"{name} spatial bases"))
        if context["show_factors"] and "temporal_bases" in extras:
            temporal_bases, title = extras["temporal_bases"], f"temporal bases of {name}"
            if result.reconstruction.ndim == 4:  # one basis per slice, (Z, P, K+1): show the first slice's
                temporal_bases, title = temporal_bases[0], f"{title}, z=0"
            plot_temporal_bases(self._bases_plot.figure, temporal_bases, title)
            self._bases_plot.visible = True

    def _on_error(self, exc: BaseException) -> None:
        message = _logic.describe_error(exc)
        self._status.value = message
        show_error(message)

    def _on_finish(self) -> None:
        self._job = None
        self._set_running(False)


def _parameter_widget(spec: dict):
    """A widget for one solver parameter: check box, integer box or text (floats, others)."""
    name, default, help_text = spec["name"], spec["default"], spec.get("help", "")
    tooltip = f"{help_text} (default {default!r})" if help_text else f"default {default!r}"
    # Prefixed names keep parameter rows apart from the widget's own children.
    options = {"name": f"parameter_{name}", "label": name, "tooltip": tooltip}
    if isinstance(default, bool):
        return CheckBox(value=default, **options)
    if isinstance(default, int):
        return SpinBox(value=default, min=-_INT32_MAX, max=_INT32_MAX, **options)
    return LineEdit(value=_text(default), **options)


def _text(value) -> str:
    return value if isinstance(value, str) else repr(value)


def _widget_value(value, widget):
    """``value`` in the form ``widget`` holds (text for line edits)."""
    return _text(value) if isinstance(widget, LineEdit) else value


class CompareWidget(_ScrollingContainer):
    """Score (T, Y, X) or (T, Z, Y, X) layers against a reference: table, frame PSNR, convergence."""

    #: Metric key -> (column header, number format, header tooltip).
    _COLUMNS = {
        "psnr": ("PSNR", "{:.2f}", "volume PSNR in dB, data range max(ref) - min(ref)"),
        "psnr_frame_mean": (
            "PSNR/frame",
            "{:.2f}",
            "mean over frames of the per-frame PSNR, dB (a volume's frame: all its slices at one time)",
        ),
        "ssim": ("SSIM", "{:.3f}", "structural similarity, mean over frames (a volume: also over slices)"),
        "mae": ("MAE", "{:.3g}", "mean absolute error"),
        "hfen": (
            "HFEN",
            "{:.3g}",
            "high-frequency error norm (LoG-filtered relative error; a volume: mean over slices)",
        ),
    }

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self._reference = _compact_layer_chooser(
            ComboBox(
                name="reference",
                label="reference",
                choices=self._stack_names,
                tooltip="the ground truth, e.g. the phantom the measurement was simulated from",
            )
        )
        self._candidates = Select(
            name="reconstructions",
            label="to compare",
            choices=self._candidate_names,
            tooltip="one or more layers of the reference's shape, (T, Y, X) or (T, Z, Y, X), to score; "
            "Ctrl/Shift-click to pick several",
        )
        self._candidates.native.setMaximumHeight(110)
        self._run = PushButton(text="Compare")
        self._table = Table(name="table", value={"data": [], "index": [], "columns": []})
        self._table.native.setEditTriggers(self._table.native.EditTrigger.NoEditTriggers)
        self._table.native.verticalHeader().setMaximumWidth(170)
        # Cells hold text formatted per metric; magicgui's delegate would reformat it.
        self._table.native.setItemDelegate(QStyledItemDelegate(self._table.native))
        self._table.visible = False
        self._plot = _PlotWidget("plot", height=4.4)
        self.extend([self._reference, self._candidates, self._run])
        self._append_full_width(self._table)
        self._append_full_width(self._plot)
        self._reference.changed.connect(self._candidates.reset_choices)
        self._run.clicked.connect(self.compare)

    @property
    def table(self) -> Table:
        """The scores of the last comparison (rows: layers, columns: metrics)."""
        return self._table

    @property
    def plot(self) -> "_PlotWidget":
        """Per-frame PSNR and convergence curves of the last comparison."""
        return self._plot

    def _stack_names(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if _is_stack(layer, volumes=True)]

    def _candidate_names(self, _widget=None) -> list[str]:
        return [name for name in self._stack_names() if name != self._reference.value]

    def select(self, reference: str, reconstructions: list[str]) -> None:
        """Choose the reference and the reconstructions by layer name (for scripts and tests)."""
        self.reset_choices()
        self._reference.value = reference
        self._candidates.value = list(reconstructions)

    def compare(self) -> list[dict] | None:
        """Fill the table and plots; returns the table rows (``None`` after an error)."""
        reference, chosen = self._reference.value, list(self._candidates.value or [])
        if not reference or not chosen:
            show_error("Compare needs a reference layer and at least one reconstruction layer.")
            return None
        layers = {name: self._viewer.layers[name] for name in chosen}
        try:
            rows, frame_psnr = _logic.compare(
                self._viewer.layers[reference].data, {name: layer.data for name, layer in layers.items()}
            )
        except _logic.InputError as exc:
            show_error(f"Cannot compare: {exc}")
            return None
        self._show_table(rows)
        histories = {
            name: layer.metadata[RESULT_KEY].history for name, layer in layers.items() if RESULT_KEY in layer.metadata
        }
        plot_comparison(self._plot.figure, frame_psnr, histories)
        self._plot.visible = True
        return rows

    def _show_table(self, rows: list[dict]) -> None:
        keys = list(_logic.METRICS)
        self._table.value = {
            "data": [[self._COLUMNS[key][1].format(row[key]) for key in keys] for row in rows],
            "index": [row["name"] for row in rows],
            "columns": [self._COLUMNS[key][0] for key in keys],
        }
        table = self._table.native
        for column, key in enumerate(keys):
            table.horizontalHeaderItem(column).setToolTip(self._COLUMNS[key][2])
        for row, values in enumerate(rows):
            table.verticalHeaderItem(row).setToolTip(values["name"])
        table.resizeColumnsToContents()
        # Wide and tall enough for every cell: the dock grows rather than the table scrolls.
        header = table.verticalHeader()
        table.setMinimumWidth(
            min(header.sizeHint().width(), header.maximumWidth())
            + sum(table.columnWidth(column) for column in range(len(keys)))
            + 2 * table.frameWidth()
        )
        table.setFixedHeight(
            table.horizontalHeader().sizeHint().height()
            + sum(table.rowHeight(row) for row in range(len(rows)))
            + 2 * table.frameWidth()
        )
        self._table.visible = True


__all__ = ["SimulateAcquisitionWidget", "ReconstructWidget", "CompareWidget"]
