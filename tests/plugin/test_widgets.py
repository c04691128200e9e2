"""The plugin inside a napari viewer (needs Qt and an OpenGL display: run under Xvfb).

Widgets are created the way napari creates them, from the manifest
(``add_plugin_dock_widget``), and driven through their public methods and named
children rather than simulated clicks.
"""

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from imaging import metrics
from imaging.solvers import METHODS
from imaging_napari._layers import MEASUREMENTS_KEY, RESULT_KEY, measurement_layer
from imaging_napari._logic import METRICS

pytestmark = pytest.mark.gui

PLUGIN = "imaging-redpsm"


def _dock(viewer, widget_name):
    _dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, widget_name)
    return widget


def _add(viewer, layer_data):
    data, meta, _ = layer_data
    return viewer.add_image(data, **meta)


def _results(viewer):
    return [layer for layer in viewer.layers if RESULT_KEY in layer.metadata]


def _choose_method(widget, method, preset=None, **parameters):
    widget.reset_choices()
    widget.method.value = method
    if preset is not None:
        widget.preset.value = preset
    widget.set_parameters(**parameters)


def test_samples_open_with_expected_shapes(make_napari_viewer_proxy):
    from imaging_napari import _samples

    viewer = make_napari_viewer_proxy()
    phantom = (_samples.PHANTOM_FRAMES, _samples.PHANTOM_SIZE, _samples.PHANTOM_SIZE)
    small = (_samples.MEASUREMENT_FRAMES, _samples.MEASUREMENT_SIZE, _samples.MEASUREMENT_SIZE)
    for key in ("walnut", "shepp_logan", "material", "cardiac"):
        [layer] = viewer.open_sample(PLUGIN, key)
        assert layer.data.shape == phantom and tuple(layer.contrast_limits) == (0.0, 1.0)
        assert key.replace("_", "-").split("-")[0] in layer.name.lower()
    truth, sinogram, marker = viewer.open_sample(PLUGIN, "tomography_measurement")
    assert truth.data.shape == small and sinogram.data.shape == (small[0], small[1])
    assert marker.metadata == {"kind": "frame marker", "measurement": sinogram.name}
    assert sinogram.metadata[MEASUREMENTS_KEY].sinogram.shape == (small[0], 1, small[1])
    truth, kspace = viewer.open_sample(PLUGIN, "mri_measurement")
    assert kspace.data.shape == small and kspace.metadata[MEASUREMENTS_KEY].modality == "mri"
    [volume] = viewer.open_sample(PLUGIN, "walnut_volume")
    assert volume.data.shape == (small[0], _samples.VOLUME_SLICES, small[1], small[2])
    assert viewer.dims.axis_labels == ("z", "t", "y", "x")


def _simulate_now(simulate):
    """Run the Simulate widget synchronously (the plugin's test switch) and return its layer.

    The events it posts (the sinogram's frame marker is added at the next turn of the
    event loop) are processed before it returns.
    """
    from qtpy.QtWidgets import QApplication

    previous = os.environ.get("IMAGING_NAPARI_NOTHREADS")
    os.environ["IMAGING_NAPARI_NOTHREADS"] = "1"
    try:
        simulate.simulate()
        QApplication.processEvents()
    finally:
        if previous is None:
            del os.environ["IMAGING_NAPARI_NOTHREADS"]
        else:
            os.environ["IMAGING_NAPARI_NOTHREADS"] = previous
    return simulate._viewer.layers[simulate.last_measurement]


def _simulated(viewer, views_per_frame=2):
    from imaging_napari._samples import phantom_layer

    _add(viewer, phantom_layer("walnut", frames=16, size=32))
    simulate = _dock(viewer, "Simulate acquisition")
    simulate.reset_choices()
    simulate.object.value = "walnut phantom"
    simulate.modality.value = "tomography"
    simulate.per_frame.value = views_per_frame
    layer = _simulate_now(simulate)
    assert layer.data.shape == (16, views_per_frame * 32)
    return layer


@pytest.mark.parametrize(
    "method, parameters",
    [("fbp-window", {}), ("red-psm", {"max_iter": 2}), ("psm", {"max_iter": 2})],
)
def test_simulate_then_reconstruct_beats_the_zero_image(make_napari_viewer_proxy, nothreads, method, parameters):
    if method not in METHODS:
        pytest.skip(f"method {method!r} is not in the library yet")
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    preset = "fast" if "fast" in METHODS[method].presets else None
    _choose_method(reconstruct, method, preset, **parameters)
    reconstruct.run()
    [result] = _results(viewer)
    truth = measurement.metadata[MEASUREMENTS_KEY].ground_truth
    assert result.data.shape == truth.shape == (16, 32, 32)
    assert result.name.startswith(method) and f"{method} preview" not in viewer.layers
    assert metrics.psnr(result.data, truth) > metrics.psnr(np.zeros_like(truth), truth) + 3
    assert not reconstruct.running and reconstruct.progress.value == len(result.metadata[RESULT_KEY].history)


def test_cancel_stops_the_worker_and_keeps_the_last_estimate(make_napari_viewer_proxy, qtbot, landweber, monkeypatch):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=1000, step_delay=0.05)
    reconstruct.preview_every.value = 2
    reconstruct.run()
    assert reconstruct.running  # the call returned at once: the run is in a worker thread
    qtbot.waitUntil(lambda: reconstruct.progress.value >= 3, timeout=20000)
    assert f"{landweber.name} preview" in viewer.layers
    reconstruct.cancel()
    iterations_done_at_cancel = landweber.latest.iteration
    qtbot.waitUntil(lambda: not reconstruct.running, timeout=20000)
    [result] = _results(viewer)
    history = result.metadata[RESULT_KEY].history
    assert "stopped at" in result.name and result.data.shape == (16, 32, 32)
    # The stop takes effect when the iteration running at the time of the cancel ends.
    assert 3 <= len(history) <= iterations_done_at_cancel + 1 < 1000
    assert f"{landweber.name} preview" not in viewer.layers
    assert float(np.abs(result.data).max()) > 0


def test_worker_error_is_a_notification_and_the_widget_recovers(
    make_napari_viewer_proxy, qtbot, landweber, notifications, monkeypatch
):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, relaxation=5.0)
    reconstruct.run()
    qtbot.waitUntil(lambda: not reconstruct.running, timeout=20000)
    assert any("relaxation must be in (0, 2), got 5.0" == text for text in notifications())
    assert not _results(viewer) and reconstruct.status.value.startswith("relaxation")
    reconstruct.preset.value = "quick"  # resets the parameters to the preset's values
    assert reconstruct.parameter_values()["relaxation"] == 1.0
    reconstruct.run()
    qtbot.waitUntil(lambda: not reconstruct.running, timeout=20000)
    [result] = _results(viewer)
    assert result.name == f"{landweber.name} quick 3 it"


def test_parameter_inputs_are_typed_bounded_and_grouped(make_napari_viewer_proxy):
    from qtpy.QtWidgets import QComboBox, QDoubleSpinBox, QSpinBox

    viewer = make_napari_viewer_proxy()
    _add(viewer, measurement_layer(_tiny_measurements(), "scan"))
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = "scan"
    _choose_method(reconstruct, "red-psm")
    fields = reconstruct.parameter_widgets
    # Choices are drop-downs (the denoiser one editable: a path is allowed too).
    for name in ("interpolation", "init"):
        assert isinstance(fields[name].native, QComboBox) and not fields[name].native.isEditable()
    assert fields["denoiser"].native.isEditable() and fields["denoiser"].value == "auto"
    with pytest.raises(ValueError, match="not a choice"):
        fields["interpolation"].value = "quadratic"
    # Integers are bounded spin boxes: no negative iterations or orders (red-psm's 0: automatic).
    assert isinstance(fields["max_iter"].native, QSpinBox) and fields["max_iter"].native.minimum() == 0
    fields["max_iter"].value = -2
    assert fields["max_iter"].value == 0 and fields["max_iter"].native.text() == "auto"
    fields["max_iter"].value = 12
    assert fields["max_iter"].native.text() == "12"
    fields["order"].value = -3
    assert fields["order"].value == 0
    # Floats keep their precision and refuse values below their bound.
    assert isinstance(fields["lam"].native, QDoubleSpinBox)
    fields["lam"].value = 1e-6
    assert fields["lam"].value == 1e-6 and fields["lam"].native.text() == "1e-06"
    fields["xi"].value = -1.0
    assert fields["xi"].value == 0.0
    # Readable labels, the paper's symbol in the tooltip; basic rows first, the rest collapsed.
    assert fields["lam"].tooltip.startswith("λ (lam): RED weight lambda")
    panel = reconstruct.parameter_panel
    basic = [name for name, field in fields.items() if field.spec["basic"]]
    assert basic == ["max_iter", "order", "lam"] and list(fields)[:3] == basic
    assert not panel.advanced.isExpanded()
    # Restore defaults undoes edits (with the chosen preset applied).
    reconstruct.preset.value = "fast"
    reconstruct.set_parameters(lam=7.0, max_iter=2)
    reconstruct.restore_defaults()
    fast_iterations = METHODS["red-psm"].presets["fast"]["max_iter"]
    assert reconstruct.parameter_values()["lam"] == 2.4 and reconstruct.parameter_values()["max_iter"] == fast_iterations
    # Rows that mean nothing for a method are not shown.
    _choose_method(reconstruct, "fbp-window")
    assert "max_iter" not in reconstruct.parameter_widgets and "seed" not in reconstruct.parameter_widgets
    assert not reconstruct.preview_every.visible
    assert list(reconstruct.parameter_values()) == ["window", "filter"]


def test_run_cancel_and_progress_stay_in_sight_when_the_rows_scroll(make_napari_viewer_proxy, qtbot):
    viewer = make_napari_viewer_proxy(show=True)
    _add(viewer, measurement_layer(_tiny_measurements(), "scan"))
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = "scan"
    _choose_method(reconstruct, "red-psm")
    reconstruct.parameter_panel.advanced.expand(animate=False)
    body = reconstruct.native
    body.parentWidget().setFloating(True)  # undock, so the dock can be made small
    body.parentWidget().resize(body.width(), 300)  # far less than the rows need: they scroll
    qtbot.wait(100)
    scroll = body.scroll_area.verticalScrollBar()
    assert scroll.maximum() > 0
    for position in (scroll.minimum(), scroll.maximum()):
        scroll.setValue(position)
        qtbot.wait(10)
        for widget in (reconstruct.progress.native, reconstruct.status.native, reconstruct._run.native):
            assert body.footer.isAncestorOf(widget) and widget.isVisible()
        assert body.rect().contains(body.footer.geometry())


def _tiny_measurements():
    from imaging.simulate import simulate_tomography

    frames = np.zeros((4, 16, 16), np.float32)
    frames[:, 4:12, 4:12] = 1.0
    return simulate_tomography(frames, np.linspace(0, np.pi, 4, endpoint=False), noise=0.0)


def test_methods_are_filtered_by_modality(make_napari_viewer_proxy, landweber, moving_disk):
    from imaging.simulate import simulate_mri

    viewer = make_napari_viewer_proxy()
    mask = np.zeros(moving_disk.shape, bool)
    mask[:, 12:20] = True
    _add(viewer, measurement_layer(simulate_mri(moving_disk, mask), "heart k-space"))
    _add(viewer, measurement_layer(_tiny_measurements(), "scan"))
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = "heart k-space"
    assert landweber.name not in reconstruct.method.choices
    reconstruct.measurement.value = "scan"
    assert landweber.name in reconstruct.method.choices
    reconstruct.method.value = landweber.name
    tooltips = {name: widget.tooltip for name, widget in reconstruct.parameter_widgets.items()}
    assert tooltips["relaxation"].startswith("relaxation: step size times ||A||^2")


def test_save_and_open_through_the_viewer(make_napari_viewer_proxy, tmp_path, tomography_measurements):
    viewer = make_napari_viewer_proxy()
    layer = _add(viewer, measurement_layer(tomography_measurements, "scan"))
    written = layer.save(str(tmp_path / "scan.h5"), plugin=PLUGIN)
    assert written == [str(tmp_path / "scan.h5")]
    opened = viewer.open(str(tmp_path / "scan.h5"), plugin=PLUGIN)
    assert [layer.name for layer in opened] == ["scan sinogram", "scan sinogram frame", "scan ground truth"]
    np.testing.assert_array_equal(opened[0].metadata[MEASUREMENTS_KEY].sinogram, tomography_measurements.sinogram)


def test_opening_a_corrupt_file_notifies_without_raising(make_napari_viewer_proxy, tmp_path, notifications):
    viewer = make_napari_viewer_proxy()
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 truncated")
    assert viewer.open(str(path), plugin=PLUGIN) == []
    assert len(viewer.layers) == 0
    assert any("Cannot open broken.npz" in text for text in notifications())


def test_compare_fills_the_table_and_the_plots(make_napari_viewer_proxy, landweber, nothreads, moving_disk):
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=4)
    reconstruct.run()
    [result] = _results(viewer)
    blurred = viewer.add_image(0.5 * viewer.layers["walnut phantom"].data, name="half walnut")
    compare = _dock(viewer, "Compare reconstructions")
    compare.select("walnut phantom", [result.name, blurred.name])
    compare.compare()
    rows = compare.rows
    assert [row["name"] for row in rows] == [result.name, "half walnut"]
    assert compare.table.shape == (2, 5) and compare.table.row_headers == (result.name, "half walnut")
    assert compare.plot.shown and len(compare.plot.figure.axes) >= 2  # frame PSNR + convergence
    assert len(compare.plot.figure.axes[0].lines) == 2


def test_screenshot_with_the_reconstruct_widget_is_not_blank(
    make_napari_viewer_proxy, qtbot, tmp_path, nothreads, landweber
):
    from PIL import Image

    viewer = make_napari_viewer_proxy(show=True)
    viewer.window.resize(1400, 900)
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=5)
    reconstruct.run()
    qtbot.wait(300)  # let the dock and the canvas lay out and paint
    assert reconstruct.native.isVisible() and reconstruct.progress.native.isVisible()
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    artifacts = Path(os.environ.get("IMAGING_TEST_ARTIFACTS", tmp_path))
    artifacts.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(artifacts / "napari-reconstruct-widget.png")
    assert pixels.shape[:2] == (900, 1400)
    assert pixels[..., :3].std() > 20


# -- volumes ---------------------------------------------------------------------------------


def _simulated_volume(viewer, frames=16, size=16, slices=2):
    from imaging.phantoms import volume

    from imaging_napari._layers import image_layer

    _add(viewer, image_layer(volume("walnut", frames=frames, size=size, slices=slices), "walnut volume"))
    simulate = _dock(viewer, "Simulate acquisition")
    simulate.reset_choices()
    simulate.object.value = "walnut volume"
    simulate.modality.value = "tomography"
    simulate.per_frame.value = 2
    layer = _simulate_now(simulate)
    assert layer.metadata[MEASUREMENTS_KEY].sinogram.shape == (frames, 2, slices, size)
    assert layer.data.shape == (slices, 1, frames, 2 * size)
    return layer


@pytest.mark.parametrize("method, parameters", [("fbp-window", {}), ("psm", {"max_iter": 2})])
def test_volume_reconstructs_slice_by_slice_into_a_4d_layer(make_napari_viewer_proxy, nothreads, method, parameters):
    from imaging import reconstruct

    viewer = make_napari_viewer_proxy()
    measurement = _simulated_volume(viewer)
    measurements = measurement.metadata[MEASUREMENTS_KEY]
    reconstruct_widget = _dock(viewer, "Reconstruct")
    reconstruct_widget.measurement.value = measurement.name
    _choose_method(reconstruct_widget, method, **parameters)
    reconstruct_widget.preview_every.value = 1
    reconstruct_widget.run()
    [result] = _results(viewer)
    assert result.data.shape == (16, 2, 16, 16) and result.axis_labels == ("z", "t", "y", "x")
    assert result.name.endswith("2 slices") and result.metadata["slice_status"] == ("finished", "finished")
    for z in range(2):
        single = reconstruct(measurements.slice(z), method, **parameters)
        np.testing.assert_array_equal(result.data[:, z], single.reconstruction)
    assert f"{method} preview" not in viewer.layers and not reconstruct_widget.running
    assert reconstruct_widget.progress.value == len(result.metadata[RESULT_KEY].history)
    assert "2 of 2 slices finished" in reconstruct_widget.status.value
    assert viewer.dims.axis_labels == ("z", "t", "y", "x")


def test_cancelling_a_volume_keeps_the_finished_slices(make_napari_viewer_proxy, qtbot, landweber, monkeypatch):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer_proxy()
    measurement = _simulated_volume(viewer, slices=3)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=20, step_delay=0.05)
    reconstruct.preview_every.value = 2
    z_axis = viewer.dims.axis_labels.index("z")
    reconstruct.run()
    assert reconstruct.progress.max == 3 * 20
    qtbot.waitUntil(lambda: reconstruct.progress.value >= 20 + 3, timeout=30000)  # in slice 1
    preview = viewer.layers[f"{landweber.name} preview"]
    assert preview.data.shape == (16, 3, 16, 16) and viewer.dims.current_step[z_axis] == 1  # the z slider followed
    reconstruct.cancel()
    qtbot.waitUntil(lambda: not reconstruct.running, timeout=30000)
    [result] = _results(viewer)
    assert "stopped at z=1" in result.name and result.name.endswith("3 slices")
    assert result.metadata["slice_status"] == ("finished", "stopped", "not run")
    history = result.metadata[RESULT_KEY].history
    assert len([entry for entry in history if entry["slice"] == 0]) == 20
    assert float(np.abs(result.data[:, 1]).max()) > 0 and not result.data[:, 2].any()
    assert "1 of 3 slices finished" in reconstruct.status.value


def test_compare_scores_volumes_and_refuses_a_stack_against_a_volume(
    make_napari_viewer_proxy, nothreads, landweber, notifications
):
    from imaging.metrics import evaluate_volume

    viewer = make_napari_viewer_proxy()
    measurement = _simulated_volume(viewer, frames=8, size=8)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=3)
    reconstruct.run()
    [result] = _results(viewer)
    truth = viewer.layers["walnut volume"].data
    viewer.add_image(truth[:, 0], name="slice 0")
    compare = _dock(viewer, "Compare reconstructions")
    compare.select("walnut volume", [result.name])
    compare.compare()
    [row] = compare.rows
    expected = evaluate_volume(result.data, truth)
    assert row == pytest.approx({"name": result.name, **{key: expected[key] for key in METRICS}})
    assert compare.table.shape == (1, 5)
    frames_axis, residual_axis = compare.plot.figure.axes[:2]
    assert len(frames_axis.lines[0].get_ydata()) == 8  # one PSNR per time frame, over both slices
    assert residual_axis.lines[0].get_label() == f"{result.name} (z = 0) residual"
    # A layer of another shape is not offered at all.
    assert "slice 0" not in compare.reconstructions.choices


def test_volume_files_open_as_4d_layers_in_the_viewer(make_napari_viewer_proxy, tmp_path, tomography_volume):
    from imaging import save_measurements

    viewer = make_napari_viewer_proxy()
    save_measurements(tmp_path / "volume.npz", tomography_volume)
    sinogram, _marker, truth = viewer.open(str(tmp_path / "volume.npz"), plugin=PLUGIN)
    assert truth.data.shape == (16, 2, 16, 16) and sinogram.data.shape == (2, 1, 16, 32)
    assert viewer.dims.axis_labels == ("z", "t", "y", "x")
    viewer.dims.set_current_step(0, 1)  # the z slider moves both layers to slice 1
    viewer.dims.set_current_step(1, 9)  # the t slider moves the ground truth, not the sinogram picture
    assert np.round(truth.world_to_data(viewer.dims.point)[:2]).tolist() == [9, 1]
    assert np.round(sinogram.world_to_data(viewer.dims.point)[:2]).tolist() == [1, 0]


# -- simulation in a worker ------------------------------------------------------------------


def test_simulate_runs_in_a_worker_and_cancel_stops_it(make_napari_viewer_proxy, qtbot, monkeypatch):
    import imaging.simulate
    from imaging_napari._samples import phantom_layer

    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    # Four view angles per chunk of projections: many progress reports, each a chance to stop.
    monkeypatch.setattr(imaging.simulate, "_MATRIX_ENTRIES_PER_CHUNK", 2 * 32 * 32 * 4)
    # On a fast machine the whole simulation can end before the GUI thread sees a report:
    # from the third chunk on, the worker waits until Cancel has been pressed.
    cancel_pressed = threading.Event()
    build_matrix = imaging.simulate.astra_projection_matrix
    chunks_built = []

    def build_matrix_after_cancel(*args, **kwargs):
        chunks_built.append(1)
        if len(chunks_built) > 2:
            cancel_pressed.wait(timeout=20)
        return build_matrix(*args, **kwargs)

    monkeypatch.setattr(imaging.simulate, "astra_projection_matrix", build_matrix_after_cancel)
    viewer = make_napari_viewer_proxy()
    _add(viewer, phantom_layer("walnut", frames=16, size=32))
    simulate = _dock(viewer, "Simulate acquisition")
    simulate.reset_choices()
    simulate.object.value = "walnut phantom"
    assert simulate.per_frame.max == 51  # ceil(pi * 32 / 2) views sample a 32x32 frame fully
    simulate.per_frame.value = 51
    simulate.simulate()
    assert simulate.running  # the call returned at once: the simulation is in a worker thread
    qtbot.waitUntil(lambda: simulate.progress.value >= 8, timeout=20000)
    simulate.cancel()
    cancel_pressed.set()
    qtbot.waitUntil(lambda: not simulate.running, timeout=20000)
    assert simulate.status.value == "cancelled" and simulate.last_measurement is None
    assert simulate.progress.value < simulate.progress.max == 16 * 51
    assert [layer.name for layer in viewer.layers] == ["walnut phantom"]
    # The same settings run to the end when not cancelled.
    simulate.simulate()
    qtbot.waitUntil(lambda: not simulate.running, timeout=60000)
    layer = viewer.layers[simulate.last_measurement]
    assert layer.metadata[MEASUREMENTS_KEY].sinogram.shape == (16, 51, 32)
    assert simulate.status.value.startswith("tomography: 16 frames x 51 view(s)")


def test_simulate_status_and_bounds_follow_the_inputs(make_napari_viewer_proxy, nothreads, notifications):
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    simulate = _dock(viewer, "Simulate acquisition")  # the same dock again
    assert simulate.status.value == measurement.metadata["description"]
    simulate.modality.value = "mri"
    assert simulate.status.value == "ready: press Simulate"  # no longer describes these settings
    assert simulate.per_frame.max == 32 and simulate.per_frame.label == "lines per frame"
    simulate.modality.value = "tomography"
    simulate.per_frame.value = 51
    from imaging_napari import _logic

    with pytest.raises(_logic.InputError, match="exceed the 51 that sample a 32x32 frame fully"):
        _logic.simulate_from_image(viewer.layers["walnut phantom"].data, per_frame=52)


def test_measurement_layers_never_cover_each_other(make_napari_viewer_proxy, nothreads):
    viewer = make_napari_viewer_proxy()
    sinogram = _simulated(viewer)
    simulate = _dock(viewer, "Simulate acquisition")  # the same dock again
    simulate.modality.value = "mri"
    kspace = _simulate_now(simulate)
    boxes = [layer.extent.world[:, -1] for layer in (viewer.layers["walnut phantom"], sinogram, kspace)]
    for (left, right), (next_left, _) in zip(boxes, boxes[1:]):
        assert next_left > right  # each new measurement starts right of everything before it


# -- saving ----------------------------------------------------------------------------------


def _fake_save_dialog(monkeypatch, path):
    from qtpy.QtWidgets import QFileDialog

    offered = []

    def dialog(_parent, _caption, suggested, filters):
        offered.append((suggested, filters))
        return str(path), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(dialog))
    return offered


def test_save_buttons_keep_everything_through_a_reopen(make_napari_viewer_proxy, nothreads, tmp_path, monkeypatch):
    from imaging import load_measurements, load_reconstruction

    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    simulate = _dock(viewer, "Simulate acquisition")  # the same dock again
    offered = _fake_save_dialog(monkeypatch, tmp_path / "scan")  # no suffix typed: the format's is added
    assert simulate.save_measurement() == [str(tmp_path / "scan.npz")]
    assert offered[0][1] == "Measurement file (*.npz);;Measurement file, HDF5 (*.h5 *.hdf5)"
    original, saved = measurement.metadata[MEASUREMENTS_KEY], load_measurements(tmp_path / "scan.npz")
    for key in ("sinogram", "angles", "ground_truth"):
        np.testing.assert_array_equal(getattr(saved, key), getattr(original, key))
    assert (saved.detector_spacing, saved.noise_std) == (original.detector_spacing, original.noise_std)

    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, "psm", max_iter=1, order=2, knots=4)
    reconstruct.run()
    [result_layer] = _results(viewer)
    offered = _fake_save_dialog(monkeypatch, tmp_path / "psm.npz")
    assert reconstruct.save_result() == [str(tmp_path / "psm.npz")]
    assert offered[0][1] == "Reconstruction file (*.npz)"
    result = result_layer.metadata[RESULT_KEY]
    [reopened] = viewer.open(str(tmp_path / "psm.npz"), plugin=PLUGIN)
    loaded = reopened.metadata[RESULT_KEY]
    np.testing.assert_array_equal(reopened.data, result_layer.data)
    assert (loaded.method, loaded.params, loaded.stop_reason) == (result.method, result.params, result.stop_reason)
    assert loaded.history == result.history and set(loaded.extras) == {"spatial_bases", "temporal_bases"}
    for key, value in result.extras.items():
        np.testing.assert_array_equal(loaded.extras[key], value)
    assert load_reconstruction(tmp_path / "psm.npz").params == result.params


# -- factors, jobs, closing --------------------------------------------------------------------


def test_psm_factors_are_drawn_in_the_panel_not_layered_on_the_time_slider(make_napari_viewer_proxy, nothreads):
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, "psm", max_iter=1, order=2, knots=4)
    reconstruct.run()
    [result] = _results(viewer)
    assert [layer.name for layer in viewer.layers] == [
        "walnut phantom", measurement.name, f"{measurement.name} frame", result.name
    ]
    assert reconstruct.factors_plot.shown
    curves, *images = reconstruct.factors_plot.figure.axes
    assert len(curves.lines) == 3 and len(images) == 3  # K + 1 temporal curves and spatial images
    assert viewer.dims.axis_labels[-3:] == ("t", "y", "x")


def test_running_jobs_have_readable_names(make_napari_viewer_proxy, qtbot, landweber, monkeypatch):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer_proxy()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=1000, step_delay=0.02)
    reconstruct.run()
    qtbot.waitUntil(lambda: reconstruct.progress.value >= 1, timeout=20000)
    # What napari's close dialog lists for running workers.
    statuses = viewer.window._task_status_manager.get_status()
    assert f"napari-worker: Executing {landweber.name} on {measurement.name}" in statuses
    # No napari progress bar of our own: building it stalled the GUI thread, and its
    # activity animation costs cores on software OpenGL. The panel shows the progress.
    from napari.utils import progress

    assert len(progress._all_instances) == 0
    reconstruct.cancel()
    qtbot.waitUntil(lambda: not reconstruct.running, timeout=20000)


def test_closing_the_viewer_mid_run_stops_the_worker_quietly(make_napari_viewer, qtbot, landweber, monkeypatch):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer()
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=1000, step_delay=0.02)
    reconstruct.run()
    qtbot.waitUntil(lambda: reconstruct.progress.value >= 2, timeout=20000)
    job = reconstruct._job
    viewer.close()
    # The worker stops at its next iteration; its late results go nowhere. A callback into a
    # deleted widget ("wrapped C/C++ object ... has been deleted") would fail this test
    # through pytest-qt's capture of exceptions in Qt callbacks.
    qtbot.waitUntil(lambda: not job.running, timeout=20000)
    qtbot.wait(100)
    assert landweber.latest.iteration < 100


# -- compare -------------------------------------------------------------------------------------


def test_compare_offers_only_layers_of_the_references_shape(make_napari_viewer_proxy, nothreads, landweber):
    from imaging.phantoms import volume

    from imaging_napari._layers import image_layer

    viewer = make_napari_viewer_proxy()
    _add(viewer, image_layer(volume("walnut", frames=8, size=8, slices=2), "a volume"))
    measurement = _simulated(viewer)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=2)
    reconstruct.run()
    [result] = _results(viewer)
    compare = _dock(viewer, "Compare reconstructions")
    compare.reset_choices()
    # The default reference is one that has something to compare with.
    assert compare.reference.value == "walnut phantom"
    assert compare.reconstructions.choices == (result.name,)
    assert measurement.name not in compare.reference.choices
    compare.reconstructions.value = [result.name]
    compare.compare()
    assert [row["name"] for row in compare.rows] == [result.name]
    tooltips = [compare.table.native.horizontalHeaderItem(i).toolTip() for i in range(5)]
    assert "3D SSIM with a 7x7x7 window over time and space" in tooltips[2]
    assert "not normalised" in tooltips[4] and "relative" not in tooltips[4]


# -- responsiveness --------------------------------------------------------------------------


def test_the_gui_thread_never_waits_long_during_simulate_reconstruct_and_compare(
    make_napari_viewer_proxy, qtbot, monkeypatch, record_property
):
    from imaging_napari._qt._common import EventLoopGaps
    from imaging_napari._samples import phantom_layer

    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer_proxy(show=True)
    _add(viewer, phantom_layer("walnut", frames=32, size=64))
    simulate = _dock(viewer, "Simulate acquisition")
    reconstruct = _dock(viewer, "Reconstruct")
    compare = _dock(viewer, "Compare reconstructions")
    simulate.reset_choices()
    simulate.object.value = "walnut phantom"
    simulate.per_frame.value = 64
    qtbot.wait(2000)  # what the docks preload in the background has arrived, as for a user
    gaps = EventLoopGaps()
    gaps.start("simulate")
    simulate.simulate()
    qtbot.waitUntil(lambda: not simulate.running, timeout=120000)
    qtbot.wait(200)
    reconstruct.reset_choices()
    reconstruct.measurement.value = simulate.last_measurement
    _choose_method(reconstruct, "psm", max_iter=3)
    reconstruct.preview_every.value = 1
    gaps.start("reconstruct and preview")
    reconstruct.run()
    qtbot.waitUntil(lambda: not reconstruct.running, timeout=120000)
    qtbot.wait(500)  # the factors plot, drawn in a worker
    compare.reset_choices()
    compare.select("walnut phantom", [reconstruct.last_result])
    gaps.start("compare")
    compare.compare()
    qtbot.waitUntil(lambda: not compare.running, timeout=120000)
    qtbot.wait(200)
    gaps.stop()
    assert compare.rows is not None and reconstruct.factors_plot.shown
    for phase, longest in gaps.longest.items():
        record_property(f"longest GUI gap, {phase} (ms)", round(longest))
    print({phase: f"{longest:.0f} ms" for phase, longest in gaps.longest.items()})
    # Computing on the GUI thread would show as a gap as long as the computation (seconds
    # here). What remains are napari's own costs of a new layer (its controls, its first
    # draw on software OpenGL: 150-250 ms on a busy 2-core machine) and native calls that
    # hold the GIL in the worker; the README workflow's figures come from
    # benchmarks/napari_responsiveness.py on a quiet machine.
    assert max(gaps.longest.values()) < 1000


# -- placement: samples, measurements and axes -----------------------------------------------------


def _x_span(layer):
    return tuple(layer.extent.world[:, -1])


def test_a_volume_sample_next_to_stacks_shares_their_time_slider_and_shows_at_every_slice(
    make_napari_viewer_proxy,
):
    viewer = make_napari_viewer_proxy()
    [walnut] = viewer.open_sample(PLUGIN, "walnut")
    [volume] = viewer.open_sample(PLUGIN, "walnut_volume")
    # The time slider keeps its name; the volume's slices get their own slider in front.
    assert viewer.dims.axis_labels == ("z", "t", "y", "x")
    z_axis, t_axis = 0, 1
    for z, t in [(0, 0), (2, 10), (3, 31)]:
        viewer.dims.set_current_step(z_axis, z)
        viewer.dims.set_current_step(t_axis, t)
        assert np.round(walnut.world_to_data(viewer.dims.point)[0]) == t  # the stack follows t at every z
        assert np.round(volume.world_to_data(viewer.dims.point)[:2]).tolist() == [t, z]
        for layer in (walnut, volume):  # a slice in range: drawn, not a black canvas
            assert not layer._slice.empty and float(layer._slice.image.view.max()) > 0


def test_samples_of_different_sizes_and_their_measurements_sit_side_by_side(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "walnut")  # 128 x 128
    viewer.open_sample(PLUGIN, "tomography_measurement")  # 64 x 64 ground truth, sinogram, frame marker
    viewer.open_sample(PLUGIN, "mri_measurement")  # 64 x 64 ground truth, k-space
    images = [layer for layer in viewer.layers if layer.__class__.__name__ == "Image"]
    assert len(images) == 5
    spans = sorted(_x_span(layer) for layer in images)
    for (_, right), (next_left, _) in zip(spans, spans[1:]):
        assert next_left > right  # no image covers another, whatever its size
    # A measurement's picture sits right of its ground truth, at the same height.
    truth, sinogram = viewer.layers["walnut phantom ground truth"], viewer.layers[images[2].name]
    assert sinogram.metadata["object_offset"] == tuple(truth.translate[-2:])
    assert _x_span(sinogram)[0] > _x_span(truth)[1] and sinogram.translate[-2] == truth.translate[-2]


def test_the_sinogram_marks_the_current_frame(make_napari_viewer_proxy):
    viewer = make_napari_viewer_proxy()
    _truth, sinogram, marker = viewer.open_sample(PLUGIN, "tomography_measurement")
    frames, width = sinogram.data.shape
    t_axis = viewer.dims.axis_labels.index("t")
    left, right = sinogram.translate[-1] - 0.5, sinogram.translate[-1] + width - 0.5  # the picture's edges
    for t in (0, 5, frames - 1):
        viewer.dims.set_current_step(t_axis, t)
        shown = marker.data[marker._view_indices]
        assert len(shown) == 2  # two ticks, the current frame's only
        starts, ends = shown[:, 0, -1], shown[:, 0, -1] + shown[:, 1, -1]
        # Both point along row t of the picture, one ending at its left edge, one starting at its right.
        for row in shown[:, 0, -2]:
            np.testing.assert_allclose(sinogram.world_to_data([0, row, 0])[-2], t)
        np.testing.assert_allclose(sorted(ends)[0], left, rtol=1e-6)
        np.testing.assert_allclose(sorted(starts)[1], right, rtol=1e-6)
        assert np.all(shown[:, 1, :-1] == 0)  # horizontal, within the frame


def test_measurement_files_open_beside_what_is_shown(make_napari_viewer_proxy, tmp_path, tomography_measurements):
    from imaging import save_measurements

    viewer = make_napari_viewer_proxy()
    [walnut] = viewer.open_sample(PLUGIN, "walnut")
    save_measurements(tmp_path / "scan.npz", tomography_measurements)
    sinogram, _marker, truth = viewer.open(str(tmp_path / "scan.npz"), plugin=PLUGIN)
    assert _x_span(truth)[0] > _x_span(walnut)[1] and _x_span(sinogram)[0] > _x_span(truth)[1]


def test_reconstructions_land_over_their_object(make_napari_viewer_proxy, nothreads):
    viewer = make_napari_viewer_proxy()
    viewer.open_sample(PLUGIN, "walnut")
    truth, sinogram, _marker = viewer.open_sample(PLUGIN, "tomography_measurement")
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = sinogram.name
    _choose_method(reconstruct, "fbp-window")
    reconstruct.run()
    [result] = _results(viewer)
    assert tuple(result.translate) == tuple(truth.translate) != (0.0, 0.0, 0.0)
    np.testing.assert_array_equal(result.extent.world, truth.extent.world)
