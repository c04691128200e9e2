"""Tests of the TD-DIP baseline (imaging.solvers.td_dip) on tiny problems."""

import numpy as np
import pytest
import torch

from imaging.measurements import Measurements
from imaging.operators import DynamicMRI, DynamicTomography, disk_mask
from imaging import reconstruct
from imaging.solvers import ParameterError, get_solver
from imaging.solvers.td_dip import TDDIP, TDDIPNetwork, helix_latent

FRAMES = 8


@pytest.fixture(autouse=True)
def one_thread():
    # The test machine is shared; OpenMP threads that wait on each other under load make
    # small convolutions tens of times slower than one thread.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def moving_phantom(size: int, frames: int = FRAMES) -> np.ndarray:
    """float32 (P, N, N): a disk moving on an arc plus a fixed small disk, inside the FOV."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = []
    for t in np.linspace(0, np.pi, frames):
        moving = (yy - 0.1 * size * np.sin(t)) ** 2 + (xx - 0.08 * size * np.cos(t)) ** 2 < (size / 5) ** 2
        fixed = (yy + 0.2 * size) ** 2 + (xx - 0.15 * size) ** 2 < (size / 10) ** 2
        images.append(moving + 0.5 * fixed)
    return np.asarray(images, dtype=np.float32) * disk_mask(size)


def tomography(size: int, amplitude: float = 1.0) -> tuple[Measurements, np.ndarray]:
    truth = amplitude * moving_phantom(size)
    # Four views per frame, rotated from frame to frame.
    angles = (np.arange(FRAMES)[:, None] * np.pi / (4 * FRAMES) + np.arange(4)[None] * np.pi / 4) % np.pi
    with torch.no_grad():
        sinogram = DynamicTomography(angles, (size, size))(torch.from_numpy(truth)).numpy()
    return Measurements("tomography", (size, size), sinogram=sinogram, angles=angles), truth


def mri(size: int) -> tuple[Measurements, np.ndarray]:
    truth = moving_phantom(size)
    rng = np.random.default_rng(0)
    mask = np.zeros((FRAMES, size, size), dtype=bool)
    centre = size // 2
    mask[:, centre - 2 : centre + 2] = True  # centre phase-encode lines in every frame
    for p in range(FRAMES):
        mask[p, rng.choice(size, size // 4, replace=False)] = True
    with torch.no_grad():
        kspace = DynamicMRI(mask)(torch.from_numpy(truth)).numpy()
    return Measurements("mri", (size, size), kspace=kspace, mask=mask), truth


def psnr(x: np.ndarray, reference: np.ndarray) -> float:
    peak = reference.max() - reference.min()
    return float(10 * np.log10(peak**2 / np.mean((x - reference) ** 2)))


SMALL = {"channels": 16, "batch_frames": 4, "lr": 3e-3}


def test_registered_with_paper_preset():
    assert get_solver("td-dip") is TDDIP
    paper = TDDIP.make_params("paper")
    assert (paper.steps, paper.batch_frames, paper.channels, paper.lr) == (10_000, 1, 128, 1e-3)
    assert paper.decay_interval() == 2000 and paper.max_iter == paper.steps // paper.steps_per_iteration
    default = TDDIP.make_params()
    assert default.max_iter * default.steps_per_iteration >= default.steps
    assert default.decay_interval() == default.steps // 5


@pytest.mark.parametrize(
    "overrides",
    [{"channels": 0}, {"lr": 0.0}, {"lr": -1e-3}, {"batch_frames": 0}, {"steps": 0}, {"num_cycle": -1},
     {"steps": 10, "steps_per_iteration": 5, "max_iter": 3}],
)
def test_bad_parameters_raise(overrides):
    with pytest.raises(ParameterError):
        TDDIP.make_params(**overrides)


def test_helix_latent_and_generator_shapes():
    latent = helix_latent(FRAMES, 13)
    assert latent.shape == (FRAMES, 3) and latent.dtype == torch.float32
    torch.testing.assert_close(latent[:, 0] ** 2 + latent[:, 1] ** 2, torch.ones(FRAMES))
    assert latent[0, 2] == 0 and latent[-1, 2] == 1
    # 20 x 12 is no multiple of 8 * 2^k: the generator makes 32 x 32 and keeps the centre.
    network = TDDIPNetwork((20, 12), channels=4)
    assert network.generated_size == 32
    assert network(latent).shape == (FRAMES, 20, 12)


def test_frame_output_does_not_depend_on_its_batch():
    torch.manual_seed(0)
    network = TDDIPNetwork((16, 16), channels=8)
    latent = helix_latent(FRAMES, 13)
    with torch.no_grad():
        together = network(latent)
        alone = torch.cat([network(latent[p : p + 1]) for p in range(FRAMES)])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_loss_decreases_on_tomography():
    measurements, _ = tomography(16)
    params = TDDIP.make_params(steps=60, steps_per_iteration=20, **SMALL)
    solver = TDDIP(measurements, params)
    entries = [solver.step() for _ in range(3)]
    losses = [entry["loss"] for entry in entries]
    residuals = [entry["data_residual"] for entry in entries]
    assert losses[2] < 0.5 * losses[0]
    assert residuals[2] < residuals[0] < 1.5
    assert entries[-1]["optimizer_steps"] == 60


def test_reconstruction_beats_zero_image_and_respects_fov():
    measurements, truth = tomography(32)
    result = reconstruct(measurements, "td-dip", steps=120, steps_per_iteration=40, **SMALL)
    estimate = result.reconstruction
    assert estimate.shape == truth.shape and estimate.dtype == np.float32
    assert len(result.history) == 3 and result.stop_reason == "max_iter"
    assert psnr(estimate, truth) > psnr(np.zeros_like(truth), truth) + 5.0
    assert np.all(estimate[:, ~disk_mask(32)] == 0)


def test_output_follows_the_data_amplitude():
    small, _ = tomography(16, amplitude=1.0)
    large, _ = tomography(16, amplitude=1000.0)
    run = dict(steps=5, steps_per_iteration=5, **SMALL)
    low = reconstruct(small, "td-dip", **run)
    high = reconstruct(large, "td-dip", **run)
    np.testing.assert_allclose(high.reconstruction, 1000.0 * low.reconstruction, rtol=1e-3, atol=1e-3)
    assert high.history[-1]["loss"] == pytest.approx(low.history[-1]["loss"], rel=1e-3)


def test_works_with_dynamic_mri():
    measurements, truth = mri(16)
    result = reconstruct(measurements, "td-dip", steps=90, steps_per_iteration=30, **SMALL)
    residuals = [entry["data_residual"] for entry in result.history]
    assert residuals[-1] < 0.7 * residuals[0]
    assert psnr(result.reconstruction, truth) > psnr(np.zeros_like(truth), truth) + 5.0


def test_checkpoint_resume_is_bit_for_bit(tmp_path):
    measurements, _ = tomography(16)
    # Batches of 3 of the 8 frames: the stop falls in the middle of a pass over the frames
    # and after a learning-rate halving (every 10 // 5 = 2 steps).
    run = dict(SMALL, steps=10, steps_per_iteration=2, batch_frames=3)
    uninterrupted = reconstruct(measurements, "td-dip", **run)
    checkpoint = tmp_path / "td_dip.pt"
    first = reconstruct(
        measurements, "td-dip", checkpoint=checkpoint, checkpoint_every=1,
        callback=lambda info: info.iteration < 2, **run,
    )
    assert first.stop_reason == "stopped" and len(first.history) == 2
    resumed = reconstruct(measurements, "td-dip", checkpoint=checkpoint, resume=True, **run)
    np.testing.assert_array_equal(resumed.reconstruction, uninterrupted.reconstruction)
    strip = lambda history: [{k: v for k, v in e.items() if k != "elapsed_seconds"} for e in history]  # noqa: E731
    assert strip(resumed.history) == strip(uninterrupted.history)
