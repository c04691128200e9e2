"""Non-Cartesian (radial) dynamic MRI: the NUFFT operator, trajectories, density compensation, files, CLI."""

import dataclasses

import numpy as np
import pytest
import torch

from imaging import load_measurements, reconstruct, save_measurements
from imaging.cli import EXIT_BAD_INPUT, main
from imaging.measurements import MeasurementError
from imaging.metrics import psnr
from imaging.operators import DynamicMRI, fft2c
from imaging.operators.coils import coil_combination_error
from imaging.operators.nufft import (
    DynamicNonCartesianMRI,
    gridded_coil_images,
    radial_density_weights,
    radial_spokes,
    radial_trajectory,
)
from imaging.schedules import view_angles
from imaging.simulate import simulate, simulate_radial_mri, synthetic_coil_maps


def _golden_trajectory(frames, spokes, samples):
    return radial_trajectory(view_angles("golden-angle", frames, spokes), samples)


@pytest.mark.parametrize("complex_image", [False, True])
@pytest.mark.parametrize("shape, coils", [((16, 16), 1), ((12, 16), 3)])
def test_adjointness(shape, coils, complex_image):
    maps = synthetic_coil_maps(coils, shape) if coils > 1 else None
    operator = DynamicNonCartesianMRI(_golden_trajectory(3, 5, 24), shape, maps, complex_image=complex_image)
    assert operator.range_shape == (3, coils, 5, 24)
    assert operator.adjointness_error() < 1e-6


def test_gradients_are_the_adjoint():
    operator = DynamicNonCartesianMRI(_golden_trajectory(2, 3, 16), (8, 8), complex_image=True)
    x = operator.random_domain(torch.Generator().manual_seed(1)).requires_grad_(True)
    y = operator.random_range(torch.Generator().manual_seed(2))
    loss = torch.sum(torch.real(torch.conj(y) * operator.forward(x)))
    (gradient,) = torch.autograd.grad(loss, x)
    np.testing.assert_allclose(gradient.numpy(), operator.adjoint(y).numpy(), rtol=1e-5, atol=1e-6)


def test_a_cartesian_trajectory_is_the_centred_fft():
    size = 16
    frequencies = (np.arange(size) - size // 2) / size
    grid = np.stack(np.meshgrid(frequencies, frequencies, indexing="ij"), axis=-1)  # (H, W, 2)
    maps = synthetic_coil_maps(2, (size, size))
    operator = DynamicNonCartesianMRI(grid[None], (size, size), maps, complex_image=True, eps=1e-6, upsampling=2.0)
    cartesian = DynamicMRI(np.ones((1, size, size), bool), maps, complex_image=True)
    x = operator.random_domain(torch.Generator().manual_seed(0))
    expected = cartesian.forward(x)
    assert torch.linalg.vector_norm(operator.forward(x) - expected) < 1e-5 * torch.linalg.vector_norm(expected)


def test_radial_trajectory_and_spokes():
    angles = np.array([[0.0, np.pi / 2], [np.pi / 4, 3.0]])
    trajectory = radial_trajectory(angles, 8)
    assert trajectory.shape == (2, 2, 8, 2)
    np.testing.assert_allclose(trajectory[0, 0, :, 1], (np.arange(8) - 4) / 8)  # along kx
    np.testing.assert_allclose(trajectory[0, 1, :, 0], (np.arange(8) - 4) / 8)  # along ky
    found_angles, radii = radial_spokes(trajectory)
    np.testing.assert_allclose(found_angles, angles)
    np.testing.assert_allclose(radii, (np.arange(8) - 4) / 8)
    spiral = trajectory.copy()
    spiral[..., 0] += 0.01 * np.arange(8) ** 2 / 64
    with pytest.raises(ValueError, match="not radial"):
        radial_spokes(spiral)


def test_density_compensated_gridding_recovers_a_fully_sampled_image():
    size = 32
    yy, xx = np.mgrid[:size, :size] - size / 2
    image = np.exp(-(yy**2 + (xx - 3) ** 2) / (2 * 5.0**2)) + 0.5 * np.exp(-((yy + 6) ** 2 + xx**2) / (2 * 3.0**2))
    image = image.astype(np.complex64)
    spokes = int(np.ceil(np.pi / 2 * size)) * 2  # twice the angular Nyquist rate
    trajectory = _golden_trajectory(1, spokes, 2 * size)
    operator = DynamicNonCartesianMRI(trajectory, (size, size), complex_image=True, eps=1e-6, upsampling=2.0)
    samples = operator.forward(torch.from_numpy(image[None]))
    weights = torch.from_numpy(radial_density_weights(trajectory, (size, size))).to(torch.complex64)
    gridded = operator.adjoint(samples * weights[:, None])[0].numpy()
    assert np.linalg.norm(gridded - image) < 0.05 * np.linalg.norm(image)
    # Every spoke stands for the same area when the angles are equispaced.
    even = radial_density_weights(radial_trajectory(np.linspace(0, np.pi, 8, endpoint=False)[None], 16), (8, 8))
    np.testing.assert_allclose(even, np.broadcast_to(even[:, :1], even.shape))


@pytest.fixture(scope="module")
def radial_cardiac():
    return simulate(
        "cardiac", frames=16, size=32, trajectory="radial", spokes_per_frame=6, coils=3, noise=2e-3, phase=False
    )


def test_simulated_radial_data_follow_the_operator(radial_cardiac):
    m = radial_cardiac
    assert m.kspace.shape == (16, 3, 6, 64) and m.trajectory.shape == (16, 6, 64, 2)
    clean = simulate_radial_mri(m.ground_truth, m.trajectory, m.coil_maps, noise=0.0)
    reconstruction_model = m.operator().forward(torch.from_numpy(m.ground_truth)).numpy()
    assert np.linalg.norm(reconstruction_model - clean.kspace) < 1e-3 * np.linalg.norm(clean.kspace)
    noise = m.kspace - clean.kspace
    assert np.std(noise) == pytest.approx(m.noise_std, rel=0.1)


def test_radial_files_round_trip_and_refusals(radial_cardiac, tmp_path):
    for name in ("m.npz", "m.h5"):
        save_measurements(tmp_path / name, radial_cardiac)
        loaded = load_measurements(tmp_path / name)
        np.testing.assert_array_equal(loaded.trajectory, radial_cardiac.trajectory)
        np.testing.assert_array_equal(loaded.kspace, radial_cardiac.kspace)
        assert loaded.mask is None and not loaded.is_cartesian
    m = radial_cardiac
    with pytest.raises(MeasurementError, match="either 'mask'.*not both"):
        dataclasses.replace(m, mask=np.ones((16, 32, 32), bool))
    with pytest.raises(MeasurementError, match="got neither"):
        dataclasses.replace(m, trajectory=None)
    with pytest.raises(MeasurementError, match=r"within \[-1/2, 1/2\]"):
        dataclasses.replace(m, trajectory=m.trajectory * 2 * np.pi)
    with pytest.raises(MeasurementError, match=r"shape \(P, S, R, 2\)"):
        dataclasses.replace(m, trajectory=m.trajectory[..., :1])
    with pytest.raises(MeasurementError, match="6 shots of 64 samples per frame but 'kspace' has 6 of 32"):
        dataclasses.replace(m, kspace=m.kspace[..., :32])


def test_radial_fbp_window_beats_single_frames(radial_cardiac):
    m = radial_cardiac
    windowed = np.abs(reconstruct(m, "fbp-window").reconstruction)
    single_frame = np.abs(reconstruct(m, "fbp-window", window=1).reconstruction)
    assert psnr(windowed, m.ground_truth) > psnr(single_frame, m.ground_truth) + 3


def test_coil_maps_from_radial_data(radial_cardiac):
    gridded = gridded_coil_images(radial_cardiac.kspace, radial_cardiac.trajectory, radial_cardiac.image_shape)
    combined = np.sum(radial_cardiac.coil_maps.conj() * gridded, axis=0)
    time_average = radial_cardiac.ground_truth.mean(axis=0)
    assert np.linalg.norm(combined - time_average) < 0.15 * np.linalg.norm(time_average)
    maps, used = dataclasses.replace(radial_cardiac, coil_maps=None).estimate_coil_maps()
    inside = time_average > 0.1
    assert used == "espirit" and coil_combination_error(maps, radial_cardiac.coil_maps, inside) < 2e-2


def test_cli_simulates_radial_and_refuses_unknown_trajectories(tmp_path, capsys):
    path = tmp_path / "radial.npz"
    args = ["simulate", "--phantom", "cardiac", "--frames", "4", "--size", "16", "--trajectory", "radial"]
    assert main([*args, "--spokes-per-frame", "5", "--phase", "-o", str(path)]) == 0
    m = load_measurements(path)
    assert m.trajectory.shape == (4, 5, 32, 2) and m.kspace.shape == (4, 8, 5, 32)  # 8 coils by default
    with pytest.raises(SystemExit) as raised:
        main(["simulate", "--phantom", "cardiac", "--trajectory", "spiral", "-o", str(tmp_path / "x.npz")])
    assert raised.value.code == EXIT_BAD_INPUT
    assert "invalid choice: 'spiral'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown trajectory 'spiral'"):
        simulate("cardiac", frames=2, size=16, trajectory="spiral")


def test_phase_makes_complex_images_with_a_magnitude_ground_truth():
    real = simulate("cardiac", frames=4, size=16, noise=0.0, coils=1, phase=False)
    complex_ = simulate("cardiac", frames=4, size=16, noise=0.0, coils=1)  # phase by default
    np.testing.assert_allclose(complex_.ground_truth, real.ground_truth, atol=1e-6)
    operator = DynamicMRI(complex_.mask, complex_image=True)
    phased = operator.adjoint(operator.measured(complex_.kspace))
    assert not np.allclose(complex_.kspace, real.kspace, atol=1e-3)
    assert torch.all(torch.isfinite(phased))
    full = fft2c(torch.from_numpy(real.ground_truth.astype(np.complex64)))
    assert full.shape == (4, 16, 16)


def test_fine_grid_radial_data_are_the_band_limited_samples():
    from imaging.simulate import block_average

    frames, size = 3, 16
    yy, xx = np.mgrid[: 2 * size, : 2 * size] / (2 * size) - 0.5
    fine = np.stack([np.exp(-((yy - 0.05 * p) ** 2 + xx**2) / 0.05) for p in range(frames)]).astype(np.float32)
    trajectory = _golden_trajectory(frames, 4, 2 * size)
    measured = simulate_radial_mri(fine, trajectory, noise=0.0, grid_factor=2)
    np.testing.assert_allclose(measured.ground_truth, block_average(fine, 2), rtol=1e-5)
    coarse = DynamicNonCartesianMRI(trajectory, (size, size), complex_image=True, eps=1e-6, upsampling=2.0)
    predicted = coarse.forward(torch.from_numpy(measured.ground_truth)).numpy()
    # Where block averaging barely attenuates (|k| below 1/8 cycle per pixel) the two agree closely.
    low = np.linalg.norm(trajectory, axis=-1)[:, None] < 0.125
    low_difference = np.linalg.norm((measured.kspace - predicted)[np.broadcast_to(low, predicted.shape)])
    assert low_difference < 0.02 * np.linalg.norm(predicted[np.broadcast_to(low, predicted.shape)])
