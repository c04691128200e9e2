"""The Reconstruct dock widget: any registered method on a measurement layer, with preview and cancel.

The rows on top choose the measurement, method, preset and device; the method's
parameters follow as typed, bounded inputs (:class:`.parameters.ParameterPanel`, basic
ones first, the others in a collapsed section). Run, Cancel, Restore defaults, the
progress bar, the status line and Save result sit in a footer that stays in sight
however the rows scroll.
"""

import napari
from magicgui.widgets import ComboBox, PushButton, SpinBox
from napari.utils.notifications import show_error

from .. import _logic
from .._jobs import Job, JobStopped
from .._layers import (
    MEASUREMENTS_KEY,
    OBJECT_OFFSET_KEY,
    image_layer,
    phase_layer,
    reconstruction_layer,
    result_layer_name,
    slice_status,
)
from .._plots import factors_figure_height, new_figure, plot_factors, render
from ._common import INT32_MAX, JobDock, PlotView, compact_layer_chooser, on_destroyed, save_layer
from .parameters import ParameterPanel

_NO_PRESET = "method defaults"


class ReconstructWidget(JobDock):
    """Reconstruct a measurement layer with any registered method, with live preview and cancel.

    A volume measurement is reconstructed slice by slice by the runner
    (:func:`._logic.reconstruction_job`): the progress bar counts the iterations of all
    slices, the preview is the (T, Z, Y, X) volume so far, the z slider follows the
    slice being reconstructed (unless the user moves it elsewhere), and the result is a
    (T, Z, Y, X) layer. A cancelled volume keeps its finished slices and the
    interrupted slice's last estimate; the slices not run are zero, and the layer's
    name and its ``metadata["slice_status"]`` say which is which.

    The preview layer becomes the result layer when the run ends (renamed, its data and
    metadata replaced), so the GUI thread never builds a second layer for the result.
    For PSM methods the factors (temporal bases as curves, spatial bases as images) are
    drawn in the panel, off the GUI thread.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        _logic.preload(
            "imaging.run", "imaging.metrics", "astra", "matplotlib.figure", "matplotlib.backends.backend_agg"
        )
        self._viewer = viewer
        self._plot_job = None
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
        self._method = ComboBox(
            name="method",
            label="method",
            choices=self._method_names,
            tooltip="the reconstruction methods that handle the measurement's modality",
        )
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
        self._parameters = ParameterPanel()
        self._factors_plot = PlotView("factors_plot")
        self._run = PushButton(text="Run", tooltip="reconstruct the measurement with these settings")
        self._cancel = PushButton(text="Cancel", enabled=False, tooltip="stop after the current outer iteration")
        self._restore = PushButton(
            text="Restore defaults", tooltip="set every parameter to the method's default with the chosen preset"
        )
        self._progress.native.setFormat("iteration %v / %m")
        self._save = PushButton(
            text="Save result…",
            enabled=False,
            tooltip="save the last result as a reconstruction file (.npz: images, parameters, history, factors)",
        )
        self._inputs = [self._measurement, self._method, self._preset, self._device, self._preview_every]
        self.extend(self._inputs)
        self._append_full_width(self._parameters)
        self._append_full_width(self._factors_plot)
        self._add_job_footer([self._run, self._cancel, self._restore], "ready", self._save)
        self._measurement.changed.connect(self._on_measurement)
        self._method.changed.connect(self._on_method)
        self._preset.changed.connect(self._on_preset)
        self._run.clicked.connect(self.run)
        self._cancel.clicked.connect(self.cancel)
        self._restore.clicked.connect(self.restore_defaults)
        self._save.clicked.connect(self.save_result)
        on_destroyed(self, self._detach)
        self._on_method(self._method.value)

    # -- for scripts and tests --------------------------------------------------------------
    @property
    def factors_plot(self) -> PlotView:
        """The drawing of the last PSM run's factors."""
        return self._factors_plot

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
        self._preset.reset_choices()
        if not method:
            self._parameters.set_parameters([])
            return
        from imaging.solvers import get_solver

        specs = get_solver(method).describe_params()
        self._parameters.set_parameters(specs)
        # A method that computes its result in one step has nothing to preview.
        iterative = next((spec["applies"] for spec in specs if spec["name"] == "max_iter"), True)
        self._preview_every.visible = iterative
        self.restore_defaults()

    def _on_preset(self, _preset=None) -> None:
        self.restore_defaults()

    def restore_defaults(self) -> None:
        """Set every parameter to the method's default, with the chosen preset applied."""
        if self._method.value:
            self._parameters.set_values(_logic.baseline_params(self._method.value, self._selected_preset()))

    @property
    def parameter_widgets(self) -> dict:
        """Parameter name -> its input (``value``, ``tooltip``, ``native``), for the chosen method.

        Parameters that do not apply to the method have no input.
        """
        return self._parameters.fields

    @property
    def parameter_panel(self) -> ParameterPanel:
        """The parameter inputs: basic ones, then the collapsible advanced section."""
        return self._parameters

    def parameter_values(self) -> dict:
        """The method's parameters as set in the widget (raises ``InputError`` for bad text)."""
        return self._parameters.values()

    def set_parameters(self, **values) -> None:
        """Set parameter inputs by name (for scripts and tests)."""
        fields = self._parameters.fields
        for name, value in values.items():
            if name not in fields:
                raise KeyError(f"method {self._method.value!r} has no parameter {name!r} to set")
            fields[name].value = value

    # -- running --------------------------------------------------------------------------
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
        self._run_context = {
            "method": method,
            "preset": preset,
            "baseline": _logic.baseline_params(method, preset),
            "source": self._measurement.value,
            # Previews and the result go over the measured object (its ground truth).
            "offset": self._viewer.layers[self._measurement.value].metadata.get(OBJECT_OFFSET_KEY, (0.0, 0.0)),
            "contrast_limits": None,
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
        self._factors_plot.setVisible(False)
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

    def save_result(self) -> list[str] | None:
        """Ask where to save the last result layer, as a reconstruction file that keeps everything."""
        if self._last_result is None:
            return None
        return save_layer(self._viewer, self._last_result, self.native)

    def _detach(self) -> None:
        # The widget is being deleted (the viewer closes): stop the work, drop the callbacks.
        for job in (self._job, self._plot_job):
            if job is not None:
                job.detach()

    def _set_running(self, running: bool) -> None:
        for widget in self._inputs:
            widget.enabled = not running
        self._parameters.set_enabled(not running)
        self._restore.enabled = not running
        self._run.enabled = not running
        self._cancel.enabled = running
        self._save.enabled = not running and self._last_result in self._viewer.layers

    @property
    def _preview_name(self) -> str:
        return f"{self._run_context['method']} preview"

    def _on_progress(self, progress: _logic.Progress) -> None:
        # Slices run max_iter iterations each (fewer when one converges): the bar counts all.
        self._progress.max = max(1, progress.max_iter) * progress.n_slices
        self._progress.value = progress.slice_index * max(1, progress.max_iter) + progress.iteration
        self._run_context["contrast_limits"] = progress.contrast_limits
        if self._job is not None and self._cancel.enabled:
            self._status.value = _logic.progress_text(progress)
        if progress.preview is None:
            return
        name = self._preview_name
        layer = self._viewer.layers[name] if name in self._viewer.layers else None
        data, meta, _ = image_layer(progress.preview, name, progress.contrast_limits, offset=self._run_context["offset"])
        if layer is not None and layer.ndim != data.ndim:  # left by a run on other data
            self._viewer.layers.remove(layer)
            layer = None
        if layer is None:
            self._viewer.add_image(data, **meta)
        else:
            if tuple(layer.translate) != meta["translate"]:  # left by a run on another object
                layer.translate = meta["translate"]
            layer.data = data
        if progress.n_slices > 1:
            self._follow_slice(progress.slice_index)

    def _follow_slice(self, z: int) -> None:
        """Move the z slider to slice ``z``, unless the user moved it off the slice it followed."""
        followed = self._run_context["followed_slice"]
        # napari aligns trailing axes: the viewer's z axis of a (T, Z, Y, X) preview shown on
        # (z, t, y, x) is fourth from last.
        axis = self._viewer.dims.ndim - 4
        if z != followed and self._viewer.dims.current_step[axis] == followed:
            self._viewer.dims.set_current_step(axis, z)
        self._run_context["followed_slice"] = z

    def _on_result(self, result) -> None:
        context = self._run_context
        name = result_layer_name(result, context["baseline"], context["preset"])
        data, meta, _ = reconstruction_layer(
            result, name, context["contrast_limits"], source=context["source"], offset=context["offset"]
        )
        preview = self._viewer.layers[self._preview_name] if self._preview_name in self._viewer.layers else None
        if name in self._viewer.layers and self._viewer.layers[name] is not preview:
            self._viewer.layers.remove(name)  # an earlier run of the same name: the new one replaces it
        if preview is not None and preview.ndim == data.ndim:
            # The preview becomes the result: no new layer (and no new canvas visual) to build.
            preview.metadata = meta["metadata"]
            preview.data = data
            preview.name = name
            if meta["contrast_limits"] is not None:
                preview.contrast_limits = meta["contrast_limits"]
        else:
            if preview is not None:
                self._viewer.layers.remove(preview)
            self._viewer.add_image(data, **meta)
        phase = phase_layer(result, name, context["offset"])  # complex images (MRI): their phase, hidden
        if phase is not None:
            phase_data, phase_meta, _ = phase
            if phase_meta["name"] in self._viewer.layers:
                self._viewer.layers.remove(phase_meta["name"])
            self._viewer.add_image(phase_data, **phase_meta)
        self._last_result = name
        iterations = len(result.history)
        self._progress.value = min(iterations, self._progress.max)
        verb = "stopped after" if "stopped" in result.stop_reason.split(", ") else "finished:"
        self._status.value = f"{verb} {iterations} iteration(s) in {result.elapsed_seconds:.1f} s"
        status = slice_status(result)
        if status is not None:
            self._status.value += f", {status.count('finished')} of {len(status)} slices finished"
        factors = _logic.psm_factors(result)
        if factors is not None:
            self._draw_factors(*factors)

    def _draw_factors(self, temporal, spatial, title) -> None:
        def draw(_report):
            figure = new_figure(height=factors_figure_height(temporal.shape[1], spatial is not None))
            plot_factors(figure, temporal, spatial, title)
            return figure, render(figure)

        self._plot_job = Job.of_function(
            draw,
            on_return=lambda drawn: self._factors_plot.show_rendered(*drawn),
            on_error=lambda exc: show_error(f"Cannot draw the PSM factors: {exc}"),
            on_finish=self._on_plot_finished,
            description="drawing the PSM factors",
        )
        self._plot_job.start()

    def _on_plot_finished(self) -> None:
        self._plot_job = None

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, JobStopped):
            return
        message = _logic.describe_error(exc)
        self._status.value = message
        show_error(message)

    def _on_finish(self) -> None:
        self._job = None
        self._set_running(False)


__all__ = ["ReconstructWidget"]
