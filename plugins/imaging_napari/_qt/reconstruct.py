"""The Reconstruct dock widget: any registered method on a measurement layer, with preview and cancel."""

import napari
from magicgui.widgets import CheckBox, ComboBox, Container, Label, LineEdit, ProgressBar, PushButton, SpinBox
from napari.utils.notifications import show_error

from .. import _logic
from .._jobs import Job
from .._layers import (
    MEASUREMENTS_KEY,
    image_layer,
    reconstruction_layer,
    result_layer_name,
    robust_contrast_limits,
    slice_status,
    spatial_bases_layer,
)
from .._plots import plot_temporal_bases
from ._common import INT32_MAX, PlotWidget, ScrollingContainer, add_or_update, compact_layer_chooser

_NO_PRESET = "method defaults"


class ReconstructWidget(ScrollingContainer):
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
        self._measurement = compact_layer_chooser(
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
            max=INT32_MAX,
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
        self._bases_plot = PlotWidget("temporal_bases_plot", height=2.2)
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
        add_or_update(
            self._viewer, reconstruction_layer(result, name, context["contrast_limits"], source=context["source"])
        )
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
            add_or_update(self._viewer, spatial_bases_layer(extras["spatial_bases"], f"{name} spatial bases"))
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
        return SpinBox(value=default, min=-INT32_MAX, max=INT32_MAX, **options)
    return LineEdit(value=_text(default), **options)


def _text(value) -> str:
    return value if isinstance(value, str) else repr(value)


def _widget_value(value, widget):
    """``value`` in the form ``widget`` holds (text for line edits)."""
    return _text(value) if isinstance(widget, LineEdit) else value

