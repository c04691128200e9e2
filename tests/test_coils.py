"""Coil sensitivities estimated from the data: ESPIRiT, the low-resolution fallback, the runner and the CLI."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from imaging import load_reconstruction, reconstruct, save_measurements
from imaging.cli import EXIT_BAD_INPUT, main
from imaging.measurements import MeasurementError
from imaging.operators import fft2c
from imaging.operators.coils import (
    calibration_region,
    coil_combination_error,
    espirit_maps,
    estimate_from_calibration,
    lowres_maps,
    time_averaged_kspace,
)
from imaging.schedules import kt_mask
from imaging.simulate import simulate_mri, synthetic_coil_maps

SIZE = 48


def _object(size=SIZE):
    """A smooth-edged ellipse with a smooth phase: the object the coils see."""
    yy, xx = (np.mgrid[:size, :size] - size / 2) / (size / 2)
    magnitude = np.clip(8.0 * (1.0 - (yy / 0.8) ** 2 - (xx / 0.65) ** 2), 0.0, 1.0) * (1.0 + 0.3 * xx)
    return magnitude * np.exp(1j * (1.5 * xx + 0.7 * yy))


def _coil_kspace(maps, image, noise=1e-3, seed=0):
    kspace = fft2c(torch.from_numpy((maps * image).astype(np.complex64))).numpy()
    rng = np.random.default_rng(seed)
    noise_std = noise * np.abs(kspace).max()
    return kspace + (noise_std * (rng.standard_normal(kspace.shape) + 1j * rng.standard_normal(kspace.shape))).astype(
        np.complex64
    )


@pytest.fixture(scope="module")
def coil_set():
    maps = synthetic_coil_maps(6, (SIZE, SIZE))
    image = _object()
    kspace = _coil_kspace(maps, image)
    centre = slice(SIZE // 2 - 10, SIZE // 2 + 10)
    return maps, image, kspace[:, centre, centre]


@pytest.mark.parametrize("estimator", [espirit_maps, lowres_maps])
def test_estimated_maps_are_normalised_and_match_the_truth_up_to_a_common_phase(coil_set, estimator):
    truth, image, calibration = coil_set
    maps = estimator(calibration, (SIZE, SIZE))
    assert maps.shape == truth.shape and maps.dtype == np.complex64
    inside = np.abs(image) > 0.1
    kept = np.linalg.norm(maps, axis=0) > 0
    assert np.all(kept[inside]), "the object must keep its maps"
    np.testing.assert_allclose(np.linalg.norm(maps, axis=0)[kept], 1.0, atol=1e-5)
    # Coil vectors parallel to the truth at every object pixel: equal up to one phase per pixel...
    assert coil_combination_error(maps, truth, inside) < 5e-3
    # ...and that phase is smooth, so the image it moves into stays smooth.
    common_phase = np.sum(maps * truth.conj(), axis=0)
    rows, cols = np.nonzero(inside[:-1] & inside[1:])
    step = np.abs(np.angle(common_phase[rows + 1, cols] * common_phase[rows, cols].conj()))
    assert step.max() < 0.3


def test_espirit_drops_the_maps_where_there_is_no_signal(coil_set):
    truth, image, calibration = coil_set
    maps = espirit_maps(calibration, (SIZE, SIZE))
    # Air more than a kernel width (6 pixels) away from the object.
    far_outside = distance_transform_edt(np.abs(image) == 0) > 6
    assert np.all(np.linalg.norm(maps, axis=0)[far_outside] == 0)


def test_time_averaged_kspace_and_calibration_region():
    frames, coils = 12, 2
    rng = np.random.default_rng(1)
    kspace = (rng.standard_normal((frames, coils, 16, 16)) + 1j * rng.standard_normal((frames, coils, 16, 16)))
    mask = kt_mask("variable-density", frames, (16, 16), 6, center_lines=2, seed=0)
    kspace = (kspace * mask[:, None]).astype(np.complex64)
    average, covered = time_averaged_kspace(kspace, mask)
    counts = mask.sum(axis=0)
    expected = kspace.sum(axis=0) / np.maximum(counts, 1)
    np.testing.assert_allclose(average, expected, rtol=1e-5)
    np.testing.assert_array_equal(covered, counts > 0)
    block = calibration_region(average, covered, size=8)
    rows = np.nonzero(covered[:, 0])[0]
    assert block.shape[0] >= 2 and block.shape[2] == 8
    # The block is the centred, fully covered rows and columns around DC.
    top = 8 - block.shape[1] // 2
    assert set(range(top, top + block.shape[1])) <= set(rows.tolist())
    np.testing.assert_array_equal(block, average[:, top : top + block.shape[1], 4:12])


def test_estimator_choice_and_refusals(coil_set):
    _, _, calibration = coil_set
    assert estimate_from_calibration(calibration, (SIZE, SIZE))[1] == "espirit"
    assert estimate_from_calibration(calibration[:, 8:12], (SIZE, SIZE))[1] == "lowres"  # 4 rows: too few
    with pytest.raises(ValueError, match="only 4 x 20"):
        espirit_maps(calibration[:, 8:12], (SIZE, SIZE))
    with pytest.raises(ValueError, match="unknown coil-map estimator"):
        estimate_from_calibration(calibration, (SIZE, SIZE), "sense")


def _multicoil_measurements(frames=16, size=32, coils=4):
    images = np.abs(_object(size))[None].repeat(frames, axis=0) * np.linspace(0.8, 1.0, frames)[:, None, None]
    mask = kt_mask("variable-density", frames, (size, size), 10, center_lines=4, seed=0)
    m = simulate_mri(images, mask, coil_maps=synthetic_coil_maps(coils, (size, size)), noise=1e-3)
    return dataclasses.replace(m, coil_maps=None), m.coil_maps


def test_multicoil_file_without_maps_is_reconstructed_with_estimated_maps(tmp_path):
    m, truth = _multicoil_measurements()
    with pytest.raises(MeasurementError, match="4 coils but no 'coil_maps'"):
        m.operator()
    result = reconstruct(m, "fbp-window")
    maps = result.extras["coil_maps"]
    assert maps.shape == truth.shape and str(result.extras["coil_maps_estimator"]) == "espirit"
    inside = np.abs(_object(32)) > 0.1
    assert coil_combination_error(maps, truth, inside) < 1e-2
    # Reused through the CLI: the same reconstruction as with the maps in the file.
    measurements_path, first, second = tmp_path / "m.npz", tmp_path / "first.npz", tmp_path / "second.npz"
    save_measurements(measurements_path, m)
    assert main(["reconstruct", str(measurements_path), "--method", "fbp-window", "-o", str(first)]) == 0
    args = ["reconstruct", str(measurements_path), "--method", "fbp-window", "--coil-maps", str(first), "-o", str(second)]
    assert main(args) == 0
    first_result, second_result = load_reconstruction(first), load_reconstruction(second)
    np.testing.assert_array_equal(first_result.extras["coil_maps"], maps)
    assert "coil_maps" not in second_result.extras  # given, not estimated
    np.testing.assert_allclose(second_result.reconstruction, first_result.reconstruction, atol=1e-6)


def test_cli_refuses_unusable_coil_maps(tmp_path, capsys):
    m, _ = _multicoil_measurements(frames=4, size=16, coils=2)
    path, wrong = tmp_path / "m.npz", tmp_path / "wrong.npz"
    save_measurements(path, m)
    np.savez(wrong, coil_maps=np.ones((3, 16, 16), np.complex64))
    status = main(["reconstruct", str(path), "--method", "fbp-window", "--coil-maps", str(wrong), "-o",
                   str(tmp_path / "out.npz")])
    assert status == EXIT_BAD_INPUT
    assert "'coil_maps' must have shape (2, 16, 16)" in capsys.readouterr().err
    assert not (tmp_path / "out.npz").exists()


def test_pixels_no_coil_sees_are_kept_zero_by_the_solvers(coil_set):
    from imaging.operators import DynamicMRI
    from imaging.operators.mri import coil_support

    truth, image, calibration = coil_set
    maps = espirit_maps(calibration, (SIZE, SIZE))
    support = coil_support(torch.from_numpy(maps))
    seen = np.linalg.norm(maps, axis=0) > 0
    np.testing.assert_array_equal(support.numpy(), seen.astype(np.float32))
    assert coil_support(torch.from_numpy(truth.astype(np.complex64))) is None  # sensitive everywhere
    mask = kt_mask("variable-density", 16, (SIZE, SIZE), 8, center_lines=4, seed=0)
    assert DynamicMRI(mask, maps, complex_image=True).support_mask() is not None
    # A reconstruction with such maps: zero where no coil sees, close to the object inside.
    images = np.repeat(image[None], 16, axis=0)
    m = simulate_mri(images, mask, coil_maps=maps, noise=1e-3)
    for method in ("psm", "red-psm"):
        result = reconstruct(m, method, max_iter=3)
        assert np.all(result.reconstruction[:, ~seen] == 0), method
        error = np.abs(np.abs(result.reconstruction) - np.abs(images))[:, seen].mean()
        assert error < 0.5 * np.abs(images)[:, seen].mean(), method
