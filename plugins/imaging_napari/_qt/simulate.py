"""The Simulate acquisition dock widget: an object layer -> a measurement layer.

The simulation runs in a worker with a progress bar and Cancel, like a
reconstruction; the inputs are bounded by what is worth simulating (views per frame up
to a fully sampled frame, lines up to the k-space rows) and by the memory the machine
has free.
"""

import napari
from magicgui.widgets import ComboBox, FloatSpinBox, PushButton, SpinBox
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer

from .. import _logic
from .._jobs import Job, JobStopped
from .._layers import MEASUREMENTS_KEY, frame_marker_layer, free_x, measurement_layer
from ._common import (
    INT32_MAX,
    JobDock,
    add_or_update,
    compact_layer_chooser,
    is_stack,
    on_destroyed,
    save_layer,
)

_READY = "ready: press Simulate"


class SimulateAcquisitionWidget(JobDock):
    """Image layer (T, Y, X) or (T, Z, Y, X) -> measurement layer with the full data in its metadata.

    The measurement layer is placed to the right of everything already in the viewer, so
    that it never covers an object or another measurement.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        # pandas: napari's vectors layer (the sinogram's frame marker) imports it when the
        # first one is made, 0.7 s of the GUI thread otherwise.
        _logic.preload("imaging.simulate", "imaging.schedules", "astra", "pandas", "napari.layers.vectors")
        self._viewer = viewer
        self._last_measurement: str | None = None
        self._image = compact_layer_chooser(
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
        self._per_frame = SpinBox(name="per_frame", label="views per frame", value=1, min=1, max=1)
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
            name="seed", label="seed", value=0, min=0, max=INT32_MAX, tooltip="seed of the noise and schedule"
        )
        self._run = PushButton(text="Simulate")
        self._cancel = PushButton(text="Cancel", enabled=False, tooltip="stop the simulation")
        self._save = PushButton(
            text="Save measurement…",
            enabled=False,
            tooltip="save the last measurement as a measurement file (.npz or .h5: geometry and ground truth kept)",
        )
        self._inputs = [self._image, self._modality, self._schedule, self._per_frame, self._noise, self._coils]
        self._inputs.append(self._seed)
        self.extend(self._inputs)
        self._add_job_footer([self._run, self._cancel], _READY, self._save)
        self._modality.changed.connect(self._on_modality)
        self._image.changed.connect(self._update_bounds)
        for widget in self._inputs:
            widget.changed.connect(self._on_input_changed)
        self._run.clicked.connect(self.simulate)
        self._cancel.clicked.connect(self.cancel)
        self._save.clicked.connect(self.save_measurement)
        on_destroyed(self, self._detach)
        self._on_modality("tomography")

    # -- for scripts and tests ----------------------------------------------------------------
    @property
    def last_measurement(self) -> str | None:
        """Name of the measurement layer the last simulation added (``None`` before any)."""
        return self._last_measurement

    # -- inputs ---------------------------------------------------------------------------------
    def _stack_names(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if is_stack(layer, volumes=True)]

    def _on_modality(self, modality: str) -> None:
        self._schedule.reset_choices()
        tomography = modality == "tomography"
        self._per_frame.label = "views per frame" if tomography else "lines per frame"
        self._per_frame.tooltip = (
            "projection angles measured in each frame (paper: 1); at most a fully sampled frame"
            if tomography
            else "phase-encode lines (k-space rows) measured in each frame; at most the k-space rows"
        )
        self._update_bounds()
        self._per_frame.value = 1 if tomography else min(8, self._per_frame.max)
        self._coils.visible = not tomography

    def _update_bounds(self, _value=None) -> None:
        name = self._image.value
        if name and name in self._viewer.layers:
            self._per_frame.max = _logic.max_per_frame(self._modality.value, self._viewer.layers[name].data.shape)
        else:
            self._per_frame.max = 4096

    def _on_input_changed(self, _value=None) -> None:
        # The status described the last simulation: with other settings it would mislead.
        if not self.running:
            self._status.value = _READY

    # -- running ---------------------------------------------------------------------------------
    def simulate(self) -> None:
        """Start simulating the acquisition in a worker; the measurement layer is added when done."""
        if self.running:
            return
        if not self._image.value:
            show_error(
                "Simulate acquisition needs a (T, Y, X) or (T, Z, Y, X) image layer: "
                "open one (File > Open Sample) first."
            )
            return
        source = self._viewer.layers[self._image.value]
        settings = dict(
            modality=self._modality.value,
            schedule=self._schedule.value,
            per_frame=self._per_frame.value,
            noise=self._noise.value,
            seed=self._seed.value,
            coils=self._coils.value,
        )
        name = _logic.measurement_layer_name(
            source.name, settings["modality"], settings["schedule"], settings["per_frame"]
        )
        images = source.data
        object_offset = (float(source.translate[-2]), float(source.translate[-1]))

        def work(report):
            report((0, 1))
            measurements = _logic.simulate_from_image(
                images, **settings, progress=lambda done, total: report((done, total))
            )
            # Its picture is computed here, off the GUI thread.
            return measurement_layer(measurements, name, object_offset)

        self._progress.max, self._progress.value = 0, 0  # busy until the first report
        self._status.value = "simulating..."
        self._set_running(True)
        self._job = Job.of_function(
            work,
            on_yield=self._on_progress,
            on_return=self._on_simulated,
            on_error=self._on_error,
            on_finish=self._on_finish,
            description=f"simulating {name}",
        )
        self._job.start()

    def cancel(self) -> None:
        """Stop the simulation at its next progress report; nothing is added."""
        if self._job is not None:
            self._job.request_stop()
            self._cancel.enabled = False
            self._status.value = "stopping..."

    def save_measurement(self) -> list[str] | None:
        """Ask where to save the last measurement, as a measurement file that keeps everything."""
        if self._last_measurement is None:
            return None
        return save_layer(self._viewer, self._last_measurement, self.native)

    def _on_progress(self, done_total: tuple[int, int]) -> None:
        done, total = done_total
        self._progress.max, self._progress.value = max(1, total), min(done, max(1, total))

    def _on_simulated(self, layer_data) -> None:
        data, meta, _ = layer_data
        name = meta["name"]
        if name in self._viewer.layers:
            layer = add_or_update(self._viewer, (data, meta, "image"))
        else:
            # To the right of everything in the viewer: the measurement lives in another space.
            meta["translate"] = (*meta["translate"][:-1], free_x(self._viewer, data.shape[-1]))
            layer = add_or_update(self._viewer, (data, meta, "image"))
            marker = frame_marker_layer(meta["metadata"][MEASUREMENTS_KEY], name, meta["translate"])
            if marker is not None:
                # At the next turn of the event loop: each new napari layer costs the GUI
                # thread 100-200 ms, and two in one turn would stall it for their sum.
                QTimer.singleShot(0, lambda: self._add_marker(marker, layer))
        self._last_measurement = name
        self._viewer.reset_view()  # show the object and its measurement
        self._progress.value = self._progress.max
        self._status.value = layer.metadata["description"]

    def _add_marker(self, marker: tuple, picture) -> None:
        """Add the frame marker of the measurement layer ``picture`` (if still shown), keeping it selected."""
        if picture not in self._viewer.layers:
            return
        data, meta, _ = marker
        self._viewer.add_vectors(data, **meta)
        self._viewer.layers.selection.active = picture

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, JobStopped):
            self._status.value = "cancelled"
            return
        message = str(exc) if isinstance(exc, ValueError) else _logic.describe_error(exc, "Simulation")
        self._status.value = "failed"
        show_error(f"Cannot simulate: {message}")

    def _on_finish(self) -> None:
        self._job = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        for widget in self._inputs:
            widget.enabled = not running
        self._run.enabled = not running
        self._cancel.enabled = running
        self._save.enabled = not running and self._last_measurement in self._viewer.layers

    def _detach(self) -> None:
        if self._job is not None:
            self._job.detach()


__all__ = ["SimulateAcquisitionWidget"]
