"""The Simulate acquisition dock widget: an object layer -> a measurement layer."""

import napari
from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, PushButton, SpinBox
from napari.utils.notifications import show_error

from .. import _logic
from .._layers import measurement_layer
from ._common import INT32_MAX, add_or_update, compact_layer_chooser, is_stack


class SimulateAcquisitionWidget(Container):
    """Image layer (T, Y, X) or (T, Z, Y, X) -> measurement layer with the full data in its metadata."""

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
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
            name="seed", label="seed", value=0, min=0, max=INT32_MAX, tooltip="seed of the noise and schedule"
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
        return [layer.name for layer in self._viewer.layers if is_stack(layer, volumes=True)]

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
        layer = add_or_update(self._viewer, measurement_layer(measurements, name))
        self._viewer.reset_view()  # the measurement sits beside the object: show both
        self._status.value = layer.metadata["description"]
        return layer

