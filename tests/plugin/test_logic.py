"""The plugin's Qt-free logic: layers, simulation inputs, parameters, jobs, comparison."""

import numpy as np
import pytest

from imaging_napari import _layers, _logic, _plots
from imaging_napari._jobs import Job, threads_disabled


# -- layers -------------------------------------------------------------------------------


def test_sinogram_image_puts_each_frame_on_one_row(tomography_measurements):
    image = _layers.measurement_image(tomography_measurements)
    frames, views, bins = tomography_measurements.sinogram.shape
    assert image.shape == (frames, views * bins) and image.dtype == np.float32
    np.testing.assert_array_equal(image[3, bins:], tomography_measurements.sinogram[3, 1])


def test_kspace_image_is_log_magnitude_and_zero_where_unsampled(moving_disk):
    mask = np.zeros(moving_disk.shape, dtype=bool)
    mask[:, 10:20] = True
    from imaging.simulate import simulate_mri

    measurements = simulate_mri(moving_disk, mask, noise=0.0)
    image = _layers.measurement_image(measurements)
    assert image.shape == moving_disk.shape
    assert np.all(image[~mask] == 0) and np.all(image[mask] >= 0)
    # log(1 + |k| / (1e-3 peak)): the peak maps to log(1001).
    assert image.max() == pytest.approx(np.log(1001.0), rel=1e-5)


def test_measurement_layer_keeps_the_measurements_in_metadata(tomography_measurements):
    data, meta, layer_type = _layers.measurement_layer(tomography_measurements, "sino")
    assert layer_type == "image" and meta["name"] == "sino"
    assert meta["metadata"][_layers.MEASUREMENTS_KEY] is tomography_measurements
    assert meta["contrast_limits"] == (float(data.min()), float(data.max()))
    assert "8 frames x 2 view(s)" in meta["metadata"]["description"]


def test_result_layer_name_lists_changed_parameters_and_iterations():
    from imaging import ReconstructionResult

    history = [{"iteration": i} for i in (1, 2, 3)]
    params = {"rank": 8, "lam": 0.01, "max_iter": 50}
    result = ReconstructionResult(np.zeros((2, 4, 4)), "psm", params, history, 1.0, "stopped")
    name = _layers.result_layer_name(result, {"rank": 5, "lam": 0.01, "max_iter": 100}, "fast")
    assert name == "psm fast (rank=8) stopped at 3 it"
    result.stop_reason = "max_iter"
    assert _layers.result_layer_name(result, {"rank": 8, "lam": 0.01}) == "psm 3 it"


# -- simulation -----------------------------------------------------------------------------


def test_simulate_from_image_tomography_and_mri(moving_disk):
    tomo = _logic.simulate_from_image(moving_disk, "tomography", "golden-angle", per_frame=2, noise=0.0)
    assert tomo.sinogram.shape == (8, 2, 32)
    np.testing.assert_array_equal(tomo.ground_truth, moving_disk)
    mri = _logic.simulate_from_image(moving_disk, "mri", "equispaced", per_frame=6, noise=0.0, coils=2)
    assert mri.kspace.shape == (8, 2, 32, 32) and mri.coil_maps.shape == (2, 32, 32)
    assert np.all(mri.mask.any(axis=2).sum(axis=1) == 6)


@pytest.mark.parametrize(
    "images, options, message",
    [
        (np.zeros((32, 32)), {}, "(T, Y, X) stack"),
        (np.zeros((4, 16, 24)), {}, "square frames"),
        (np.zeros((4, 16, 16)), {"schedule": "variable-density"}, "is not one of tomography's"),
        (np.zeros((4, 16, 16)), {"modality": "mri", "schedule": "equispaced", "per_frame": 17}, "exceed the 16"),
        (np.zeros((4, 16, 16), complex), {}, "real-valued"),
    ],
)
def test_simulate_from_image_rejects_bad_input_with_one_line(images, options, message):
    with pytest.raises(_logic.InputError, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")) as info:
        _logic.simulate_from_image(images, **options)
    assert "\n" not in str(info.value)


def test_measurement_layer_name_reads_naturally():
    assert _logic.measurement_layer_name("walnut", "tomography", "bit-reversal", 1) == (
        "walnut sinogram (bit-reversal, 1 view/frame)"
    )
    assert _logic.measurement_layer_name("heart", "mri", "equispaced", 8) == "heart k-space (equispaced, 8 lines/frame)"


# -- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "default, raw, expected",
    [
        (1.0, " 2.5e-3 ", 2.5e-3),
        (3, "7", 7),
        (True, "false", False),
        ("a", " b ", " b "),
        ((1, 2), "(3, 4)", (3, 4)),
        (None, "", None),
        (4, 5, 5),
    ],
)
def test_parse_parameter_follows_the_type_of_the_default(default, raw, expected):
    assert _logic.parse_parameter("p", default, raw) == expected


def test_parse_parameter_error_names_the_parameter_and_type():
    with pytest.raises(_logic.InputError, match="parameter lam must be a float, got 'abc'"):
        _logic.parse_parameter("lam", 0.1, "abc")


def test_methods_presets_and_baseline(landweber):
    from imaging.solvers import METHODS

    assert landweber.name in _logic.available_methods("tomography")
    assert landweber.name not in _logic.available_methods("mri")
    assert _logic.available_methods() == list(METHODS)
    assert _logic.method_presets(landweber.name) == ["quick"]
    assert _logic.baseline_params(landweber.name) == {"max_iter": 200, "seed": 0, "relaxation": 1.0, "step_delay": 0.0}
    assert _logic.baseline_params(landweber.name, "quick")["max_iter"] == 3
    assert _logic.available_devices()[0] == "cpu"


# -- the reconstruction job ------------------------------------------------------------------


def test_reconstruction_job_previews_and_stops_on_request(landweber, tomography_measurements):
    job = _logic.reconstruction_job(tomography_measurements, landweber.name, params={"max_iter": 50}, preview_every=2)
    first = next(job)
    second = job.send(None)
    assert (first.iteration, first.max_iter, first.preview) == (1, 50, None)
    assert second.preview.shape == (8, 32, 32) and second.entry["data_residual"] < first.entry["data_residual"]
    job.send(None)
    with pytest.raises(StopIteration) as finished:
        job.send(True)
    result = finished.value.value
    assert result.stop_reason == "stopped" and len(result.history) == 3
    assert result.reconstruction.shape == (8, 32, 32)


def test_describe_error_is_plain():
    from imaging import ParameterError

    assert _logic.describe_error(ParameterError("max_iter must be >= 1, got 0")) == "max_iter must be >= 1, got 0"
    assert "ran out of memory" in _logic.describe_error(MemoryError())
    assert _logic.describe_error(RuntimeError("boom")) == "Reconstruction failed: boom"


def test_progress_text():
    progress = _logic.Progress(3, 10, {"data_residual": 0.0312, "psnr": 27.41}, None)
    assert _logic.progress_text(progress) == "iteration 3 / 10 - residual 3.12e-02 - PSNR 27.41 dB"
    coarse = _logic.Progress(3, 80, {"grid_size": 128.0, "data_residual": 0.0312}, None)
    assert _logic.progress_text(coarse) == "iteration 3 / 80 - grid 128 px - residual 3.12e-02"
    timed = _logic.Progress(3, 10, {"data_residual": 0.0312}, None, seconds_left=65.2)
    assert _logic.progress_text(timed) == "iteration 3 / 10 - at most 1 min 05 s left - residual 3.12e-02"


# -- the synchronous job switch --------------------------------------------------------------


def _counting(n):
    for i in range(n):
        stop = yield i
        if stop:
            return ("stopped", i)
    return ("done", n)


def test_switch_is_read_at_call_time(monkeypatch):
    monkeypatch.delenv("IMAGING_NAPARI_NOTHREADS", raising=False)
    assert not threads_disabled()
    monkeypatch.setenv("IMAGING_NAPARI_NOTHREADS", "1")
    assert threads_disabled()


def test_synchronous_job_runs_callbacks_in_order_and_stops(nothreads):
    events = []
    job = Job(_counting(10), on_return=lambda value: events.append(value), on_finish=lambda: events.append("finish"))
    job._on_yield = lambda value: (events.append(value), value == 2 and job.request_stop())
    job.start()
    assert events == [0, 1, 2, ("stopped", 2), "finish"] and not job.running


def test_synchronous_job_reports_errors(nothreads):
    def failing():
        yield 1
        raise ValueError("bad input")

    errors, finished = [], []
    Job(failing(), on_error=errors.append, on_finish=lambda: finished.append(True)).start()
    assert [str(e) for e in errors] == ["bad input"] and finished == [True]


# -- comparison ------------------------------------------------------------------------------


def test_compare_ranks_the_closer_reconstruction_higher(moving_disk):
    rng = np.random.default_rng(0)
    close = moving_disk + 0.01 * rng.standard_normal(moving_disk.shape)
    far = moving_disk + 0.1 * rng.standard_normal(moving_disk.shape)
    rows, frame_psnr = _logic.compare(moving_disk, {"close": close, "far": far})
    assert [row["name"] for row in rows] == ["close", "far"]
    assert set(rows[0]) == {"name", *_logic.METRICS}
    assert rows[0]["psnr"] > rows[1]["psnr"] + 15 and rows[0]["mae"] < rows[1]["mae"]
    assert frame_psnr["close"].shape == (8,) and np.all(frame_psnr["close"] > frame_psnr["far"])


def test_compare_rejects_a_shape_mismatch(moving_disk):
    with pytest.raises(_logic.InputError, match=r"'small' has shape \(8, 16, 16\)"):
        _logic.compare(moving_disk, {"small": np.zeros((8, 16, 16))})


def test_convergence_curves_skip_missing_keys():
    history = [{"iteration": 1, "data_residual": 0.5}, {"iteration": 2, "data_residual": 0.25, "psnr": 20.0}]
    curves = _logic.convergence_curves(history)
    np.testing.assert_array_equal(curves["data_residual"][1], [0.5, 0.25])
    np.testing.assert_array_equal(curves["psnr"][0], [2.0])


def test_compare_scores_a_volume_like_evaluate_volume():
    from imaging import metrics
    from imaging.metrics import evaluate_volume

    rng = np.random.default_rng(0)
    reference = rng.random((4, 2, 8, 8), dtype=np.float32)
    estimate = reference + 0.05 * rng.standard_normal(reference.shape).astype(np.float32)
    [row], frame_psnr = _logic.compare(reference, {"estimate": estimate})
    expected = evaluate_volume(estimate, reference)
    assert row == pytest.approx({"name": "estimate", **{key: expected[key] for key in _logic.METRICS}})
    # Frame t's PSNR is over the whole (Z, Y, X) volume at t, with the 4D reference's data range.
    data_range = reference.max() - reference.min()
    mse = np.mean((estimate - reference) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(frame_psnr["estimate"], 10 * np.log10(data_range**2 / mse), rtol=1e-5)
    assert np.mean(frame_psnr["estimate"]) == pytest.approx(expected["psnr_frame_mean"])
    assert not np.allclose(frame_psnr["estimate"], metrics.psnr_frames(estimate[:, 0], reference[:, 0]))


@pytest.mark.parametrize(
    "reference, candidate",
    [((4, 2, 8, 8), (4, 3, 8, 8)), ((4, 2, 8, 8), (4, 8, 8)), ((4, 8, 8), (4, 2, 8, 8))],
    ids=["slices", "stack-vs-volume", "volume-vs-stack"],
)
def test_compare_rejects_volumes_of_another_shape(reference, candidate):
    with pytest.raises(_logic.InputError, match=rf"'other' has shape \({candidate[0]}, .* but the reference has"):
        _logic.compare(np.ones(reference), {"other": np.ones(candidate)})


def test_convergence_curves_of_a_volume_are_slice_0s():
    history = [{"slice": z, "iteration": i, "data_residual": 0.5**i + z} for z in range(2) for i in (1, 2, 3)]
    curves = _logic.convergence_curves(history)
    np.testing.assert_array_equal(curves["data_residual"][0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(curves["data_residual"][1], [0.5, 0.25, 0.125])
    figure = _plots.new_figure()
    _plots.plot_comparison(figure, {"volume": np.ones(4)}, {"volume": history})
    assert [line.get_label() for line in figure.axes[1].lines] == ["volume (z = 0) residual"]


def test_plots_draw_one_line_per_curve():
    figure = _plots.new_figure()
    histories = {"a": [{"iteration": 1, "data_residual": 0.5}, {"iteration": 2, "data_residual": 0.2}]}
    _plots.plot_comparison(figure, {"a": np.ones(4), "b": np.zeros(4)}, histories)
    frames_axis, residual_axis = figure.axes
    assert len(frames_axis.lines) == 2 and len(residual_axis.lines) == 1
    _plots.plot_factors(figure, np.ones((6, 3)))
    assert len(figure.axes) == 1 and len(figure.axes[0].lines) == 3


def test_factors_plot_shows_each_spatial_basis_scaled_to_unit_peak():
    figure = _plots.new_figure()
    spatial = np.stack([np.full((4, 4), 10.0), -0.5 * np.eye(4)])
    _plots.plot_factors(figure, np.ones((6, 2)), spatial)
    curves, *images = figure.axes
    assert len(curves.lines) == 2 and len(images) == 2
    for axis, basis in zip(images, spatial):
        shown = axis.images[0].get_array()
        np.testing.assert_allclose(shown, basis / np.abs(basis).max())
        assert axis.images[0].get_clim() == (-1.0, 1.0)
    pixels = _plots.render(figure)
    assert pixels.dtype == np.uint8 and pixels.shape[2] == 4 and pixels[..., :3].std() > 0
    with pytest.raises(ValueError, match="K\\+1 = 2"):
        _plots.plot_factors(figure, np.ones((6, 2)), spatial[:1])


def test_psm_factors_of_a_volume_are_slice_0s():
    from imaging import ReconstructionResult

    extras = {"temporal_bases": np.arange(2 * 6 * 3).reshape(2, 6, 3), "spatial_bases": np.ones((2, 3, 4, 4))}
    result = ReconstructionResult(np.zeros((6, 2, 4, 4)), "psm", {}, [], 1.0, "max_iter", extras)
    temporal, spatial, title = _logic.psm_factors(result)
    np.testing.assert_array_equal(temporal, extras["temporal_bases"][0])
    assert spatial.shape == (3, 4, 4) and title.endswith("slice z = 0")
    assert _logic.psm_factors(ReconstructionResult(np.zeros((6, 4, 4)), "x", {}, [], 1.0, "max_iter")) is None


# -- volumes ---------------------------------------------------------------------------------


def test_image_layers_name_their_sliders():
    assert _layers.image_layer(np.zeros((4, 8, 8)), "stack")[1]["axis_labels"] == ("t", "y", "x")
    _, meta, _ = _layers.image_layer(np.zeros((4, 2, 8, 8)), "volume")
    # The library's (T, Z, Y, X) data, shown on the viewer's (z, t, y, x) axes: time is third
    # from last in every layer, where napari's trailing-axes alignment puts a stack's time.
    assert meta["axis_labels"] == ("z", "t", "y", "x")
    np.testing.assert_array_equal(meta["affine"] @ [1, 2, 3, 4, 1], [2, 1, 3, 4, 1])
    with pytest.raises(ValueError, match="got 5"):
        _layers.stack_axis_labels(5)


def test_volume_sinogram_picture_has_one_sinogram_image_per_slice(tomography_volume):
    image, meta, _ = _layers.measurement_layer(tomography_volume, "sino")
    frames, views, n_slices, bins = tomography_volume.sinogram.shape
    assert image.shape == (n_slices, 1, frames, views * bins)
    np.testing.assert_array_equal(image[1, 0, 5, bins:], tomography_volume.sinogram[5, 1, 1])
    # The slice axis is fourth from last, where the volume ground truth's z is shown; the one
    # time step spans the frames (pixel centres 0 .. P-1), so the picture shows at every time.
    assert meta["axis_labels"] == ("z", "t", "y", "x") and meta["translate"] == (0.0, 7.5, 0.0, 17.6)
    assert meta["scale"] == (1.0, 16.0, 1.0, 1.0)
    assert meta["metadata"]["description"] == "tomography: 16 frames x 2 view(s) x 16 bins, 2 slices"


def test_volume_kspace_picture_is_per_frame_and_slice(mri_volume):
    image, meta, _ = _layers.measurement_layer(mri_volume, "k")
    assert image.shape == (8, 2, 16, 16) and meta["axis_labels"] == ("z", "t", "y", "x") and "affine" in meta
    assert np.all(image[:, :, ~mri_volume.mask[0]][0] == 0)  # frame 0, unsampled rows
    assert np.all(image.max(axis=(2, 3)) > 0)  # every frame and slice has data
    assert meta["metadata"]["description"].endswith("~6 lines/frame, 2 slices")


def _volume_result(stop_reason, slices_run, n_slices=3):
    from imaging import ReconstructionResult

    history = [{"slice": z, "iteration": i} for z in range(slices_run) for i in (1, 2)]
    return ReconstructionResult(np.zeros((4, n_slices, 8, 8)), "psm", {"rank": 8}, history, 1.0, stop_reason)


def test_volume_result_name_and_slice_status():
    finished = _volume_result("max_iter", 3)
    assert _layers.result_layer_name(finished, {"rank": 8}) == "psm 2 it, 3 slices"
    assert _layers.slice_status(finished) == ("finished",) * 3
    stopped = _volume_result("max_iter, stopped", 2)
    assert _layers.result_layer_name(stopped, {"rank": 5}) == "psm (rank=8) stopped at z=1 (2 it), 3 slices"
    assert _layers.slice_status(stopped) == ("finished", "stopped", "not run")
    _, meta, _ = _layers.reconstruction_layer(stopped, "r")
    assert meta["metadata"]["slice_status"] == ("finished", "stopped", "not run")
    assert meta["axis_labels"] == ("z", "t", "y", "x")
    # Without slice entries (e.g. a layer saved from napari) nothing is claimed.
    assert _layers.slice_status(_volume_result("", 0)) is None


def test_simulate_from_a_volume_measures_every_slice_alike(moving_disk):
    volume = np.stack([moving_disk, 0.5 * moving_disk], axis=1)  # (8, 2, 32, 32)
    tomo = _logic.simulate_from_image(volume, "tomography", "golden-angle", per_frame=2, noise=0.0)
    assert tomo.is_volume and tomo.sinogram.shape == (8, 2, 2, 32)
    np.testing.assert_allclose(tomo.sinogram[:, :, 1], 0.5 * tomo.sinogram[:, :, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(tomo.ground_truth, volume)
    mri = _logic.simulate_from_image(volume, "mri", "equispaced", per_frame=6, noise=0.0, coils=2)
    assert mri.kspace.shape == (8, 2, 2, 32, 32) and mri.mask.shape == (8, 32, 32)


def _run_job(job, stop_after=None):
    """Drive a job to its end, sending a stop after ``stop_after`` progress reports."""
    reports = [next(job)]
    try:
        while True:
            reports.append(job.send(stop_after is not None and len(reports) >= stop_after))
    except StopIteration as finished:
        return reports, finished.value


@pytest.mark.parametrize("method, params", [("fbp-window", {}), ("psm", {"max_iter": 2})])
def test_volume_job_equals_single_slice_runs(tomography_volume, method, params):
    from imaging.run import reconstruct

    # One thread each: the default budget follows the cores idle when a run starts, and
    # another thread count rounds the sums differently (the runs then differ by ~1e-6).
    params = {**params, "threads": 1}
    reports, result = _run_job(_logic.reconstruction_job(tomography_volume, method, params=params))
    assert result.reconstruction.shape == (16, 2, 16, 16)
    for z in range(2):
        single = reconstruct(tomography_volume.slice(z), method, **params)
        np.testing.assert_array_equal(result.reconstruction[:, z], single.reconstruction)
    assert [r.slice_index for r in reports] == [entry["slice"] for entry in result.history]
    assert {r.n_slices for r in reports} == {2}
    # The same result as the library's own volume reconstruction (the CLI's).
    library = reconstruct(tomography_volume, method, **params)
    assert result.stop_reason == library.stop_reason and len(result.history) == len(library.history)
    assert set(result.extras) == set(library.extras)


def test_volume_job_previews_the_volume_so_far_and_stops_keeping_finished_slices(landweber, tomography_volume):
    job = _logic.reconstruction_job(tomography_volume, landweber.name, params={"max_iter": 4}, preview_every=2)
    reports, result = _run_job(job, stop_after=6)  # slice 0: 4 iterations; slice 1: stopped after its 2nd
    assert [(r.slice_index, r.iteration) for r in reports] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 1), (1, 2)]
    previews = {(r.slice_index, r.iteration): r.preview for r in reports if r.preview is not None}
    # Every 2 iterations, and at the first iteration of slice 1 to show slice 0 finished.
    assert sorted(previews) == [(0, 2), (0, 4), (1, 1), (1, 2)]
    assert previews[(0, 2)].shape == (16, 2, 16, 16) and not previews[(0, 2)][:, 1].any()
    np.testing.assert_array_equal(previews[(1, 1)][:, 0], result.reconstruction[:, 0])
    assert "stopped" in result.stop_reason and _layers.slice_status(result) == ("finished", "stopped")
    assert len(result.history) == 6 and np.abs(result.reconstruction[:, 1]).max() > 0


def test_progress_text_names_the_slice_of_a_volume():
    progress = _logic.Progress(3, 10, {"data_residual": 0.0312}, None, slice_index=1, n_slices=4)
    assert _logic.progress_text(progress) == "slice 2 / 4 - iteration 3 / 10 - residual 3.12e-02"
