"""The plugin inside a napari viewer (needs Qt and an OpenGL display: run under Xvfb).

Widgets are created the way napari creates them, from the manifest
(``add_plugin_dock_widget``), and driven through their public methods and named
children rather than simulated clicks.
"""

import os
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
    truth, sinogram = viewer.open_sample(PLUGIN, "tomography_measurement")
    assert truth.data.shape == small and sinogram.data.shape == (small[0], small[1])
    assert sinogram.metadata[MEASUREMENTS_KEY].sinogram.shape == (small[0], 1, small[1])
    truth, kspace = viewer.open_sample(PLUGIN, "mri_measurement")
    assert kspace.data.shape == small and kspace.metadata[MEASUREMENTS_KEY].modality == "mri"
    [volume] = viewer.open_sample(PLUGIN, "walnut_volume")
    assert volume.data.shape == (small[0], _samples.VOLUME_SLICES, small[1], small[2])
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")


def _simulated(viewer, views_per_frame=2):
    from imaging_napari._samples import phantom_layer

    _add(viewer, phantom_layer("walnut", frames=16, size=32))
    simulate = _dock(viewer, "Simulate acquisition")
    simulate.reset_choices()
    simulate.object.value = "walnut phantom"
    simulate.modality.value = "tomography"
    simulate.per_frame.value = views_per_frame
    layer = simulate.simulate()
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


def test_bad_parameter_text_is_refused_before_running(make_napari_viewer_proxy, landweber, notifications):
    viewer = make_napari_viewer_proxy()
    _add(viewer, measurement_layer(_tiny_measurements(), "scan"))
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = "scan"
    _choose_method(reconstruct, landweber.name, relaxation="one")
    reconstruct.run()
    assert not reconstruct.running and not _results(viewer)
    assert "parameter relaxation must be a float, got 'one'" in notifications()


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
    assert tooltips["relaxation"].startswith("step size times ||A||^2")


def test_save_and_open_through_the_viewer(make_napari_viewer_proxy, tmp_path, tomography_measurements):
    viewer = make_napari_viewer_proxy()
    layer = _add(viewer, measurement_layer(tomography_measurements, "scan"))
    written = layer.save(str(tmp_path / "scan.h5"), plugin=PLUGIN)
    assert written == [str(tmp_path / "scan.h5")]
    opened = viewer.open(str(tmp_path / "scan.h5"), plugin=PLUGIN)
    assert [layer.name for layer in opened] == ["scan sinogram", "scan ground truth"]
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
    rows = compare.compare()
    assert [row["name"] for row in rows] == [result.name, "half walnut"]
    assert compare.table.shape == (2, 5) and compare.table.row_headers == (result.name, "half walnut")
    assert not compare.plot.native.isHidden() and len(compare.plot.figure.axes) >= 2  # frame PSNR + convergence
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
    layer = simulate.simulate()
    assert layer.metadata[MEASUREMENTS_KEY].sinogram.shape == (frames, 2, slices, size)
    assert layer.data.shape == (slices, frames, 2 * size)
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
    assert result.data.shape == (16, 2, 16, 16) and result.axis_labels == ("t", "z", "y", "x")
    assert result.name.endswith("2 slices") and result.metadata["slice_status"] == ("finished", "finished")
    for z in range(2):
        single = reconstruct(measurements.slice(z), method, **parameters)
        np.testing.assert_array_equal(result.data[:, z], single.reconstruction)
    assert f"{method} preview" not in viewer.layers and not reconstruct_widget.running
    assert reconstruct_widget.progress.value == len(result.metadata[RESULT_KEY].history)
    assert "2 of 2 slices finished" in reconstruct_widget.status.value
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")


def test_cancelling_a_volume_keeps_the_finished_slices(make_napari_viewer_proxy, qtbot, landweber, monkeypatch):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    viewer = make_napari_viewer_proxy()
    measurement = _simulated_volume(viewer, slices=3)
    reconstruct = _dock(viewer, "Reconstruct")
    reconstruct.measurement.value = measurement.name
    _choose_method(reconstruct, landweber.name, max_iter=20, step_delay=0.05)
    reconstruct.preview_every.value = 2
    z_axis = viewer.dims.ndim - 3
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
    [row] = compare.compare()
    expected = evaluate_volume(result.data, truth)
    assert row == pytest.approx({"name": result.name, **{key: expected[key] for key in METRICS}})
    assert compare.table.shape == (1, 5)
    frames_axis, residual_axis = compare.plot.figure.axes[:2]
    assert len(frames_axis.lines[0].get_ydata()) == 8  # one PSNR per time frame, over both slices
    assert residual_axis.lines[0].get_label() == f"{result.name} (z = 0) residual"
    compare.select("walnut volume", [result.name, "slice 0"])
    assert compare.compare() is None
    assert notifications()[-1] == "Cannot compare: 'slice 0' has shape (8, 8, 8) but the reference has (8, 2, 8, 8)"


def test_volume_files_open_as_4d_layers_in_the_viewer(make_napari_viewer_proxy, tmp_path, tomography_volume):
    from imaging import save_measurements

    viewer = make_napari_viewer_proxy()
    save_measurements(tmp_path / "volume.npz", tomography_volume)
    sinogram, truth = viewer.open(str(tmp_path / "volume.npz"), plugin=PLUGIN)
    assert truth.data.shape == (16, 2, 16, 16) and sinogram.data.shape == (2, 16, 32)
    assert viewer.dims.axis_labels == ("t", "z", "y", "x")
    viewer.dims.set_current_step(1, 1)  # the z slider moves both layers to slice 1
    assert truth.world_to_data(viewer.dims.point)[1] == 1 and sinogram.world_to_data(viewer.dims.point)[0] == 1
