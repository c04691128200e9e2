"""Volume measurements (stacks of slices): shapes, slicing, files, simulation, reconstruction."""

import numpy as np
import pytest

from imaging import load_measurements, reconstruct, save_measurements
from imaging.measurements import MeasurementError, Measurements
from imaging.run import IterationInfo, assemble_volume, iterate, slice_checkpoint
from imaging.simulate import simulate_mri, simulate_tomography, simulate_volume_mri, simulate_volume_tomography

FRAMES, SLICES, SIZE = 6, 3, 24


def moving_disks(frames=FRAMES, slices=SLICES, size=SIZE):
    """(P, Z, N, N) float32: per slice a disk of its own radius drifting to the right."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    volume = np.zeros((frames, slices, size, size), dtype=np.float32)
    for p in range(frames):
        for z in range(slices):
            radius = size * (0.15 + 0.05 * z)
            volume[p, z] = ((xx - 0.5 * p) ** 2 + (yy + z) ** 2 <= radius**2) * (0.5 + 0.2 * z)
    return volume


@pytest.fixture(scope="module")
def angles():
    return np.linspace(0, np.pi, FRAMES * 2, endpoint=False).reshape(FRAMES, 2)


@pytest.fixture(scope="module")
def tomo_volume(angles):
    return simulate_volume_tomography(moving_disks(), angles, noise=1e-2, seed=4)


def test_tomography_volume_layout_and_slices(tomo_volume, angles):
    m = tomo_volume
    assert m.is_volume and m.n_slices == SLICES and m.n_frames == FRAMES
    assert m.sinogram.shape == (FRAMES, 2, SLICES, SIZE) and m.sinogram.dtype == np.float32
    assert m.image_shape == (SLICES, SIZE, SIZE)
    assert m.ground_truth.shape == (FRAMES, SLICES, SIZE, SIZE)
    clean = simulate_volume_tomography(moving_disks(), angles, noise=0.0)
    for z in range(SLICES):
        one = clean.slice(z)
        assert not one.is_volume and one.n_slices == 1 and one.image_shape == (SIZE, SIZE)
        # Parallel beam: detector row z of the volume data is exactly slice z projected alone.
        alone = simulate_tomography(moving_disks()[:, z], angles, noise=0.0)
        np.testing.assert_allclose(one.sinogram, alone.sinogram, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(one.ground_truth, moving_disks()[:, z])
        np.testing.assert_array_equal(one.angles, angles)


def test_volume_noise_is_relative_to_the_whole_volume(tomo_volume, angles):
    per_slice_std = [simulate_tomography(moving_disks()[:, z], angles, noise=1e-2).noise_std for z in range(SLICES)]
    # The brightest slice sets the level, and every slice carries that same absolute noise.
    assert tomo_volume.noise_std == pytest.approx(max(per_slice_std), rel=1e-6)
    assert min(per_slice_std) < 0.9 * max(per_slice_std)
    clean = simulate_volume_tomography(moving_disks(), angles, noise=0.0)
    residual = tomo_volume.sinogram - clean.sinogram
    assert residual.std() == pytest.approx(tomo_volume.noise_std, rel=0.15)


def test_single_slice_is_its_own_slice(tomo_volume):
    one = tomo_volume.slice(1)
    assert one.slice(0) is one
    with pytest.raises(MeasurementError, match=r"slice index must be an integer in \[0, 1\)"):
        one.slice(1)
    with pytest.raises(MeasurementError, match=r"in \[0, 3\)"):
        tomo_volume.slice(3)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_volume_file_round_trip(tomo_volume, tmp_path, suffix):
    path = save_measurements(tmp_path / f"volume{suffix}", tomo_volume)
    loaded = load_measurements(path)
    assert loaded.is_volume and loaded.n_slices == SLICES
    for key, value in tomo_volume.to_dict().items():
        np.testing.assert_array_equal(np.asarray(getattr(loaded, key)), np.asarray(value))


def test_mri_volume_file_round_trip(tmp_path):
    mask = np.random.default_rng(1).random((FRAMES, 2, 16, 16)) < 0.4
    coil_maps = np.ones((2, 16, 16), dtype=np.complex64) * np.array([1, 1j], dtype=np.complex64)[:, None, None]
    m = simulate_volume_mri(moving_disks(slices=2, size=16), mask, coil_maps=coil_maps, noise=1e-2)
    loaded = load_measurements(save_measurements(tmp_path / "mri-volume.h5", m))
    assert loaded.is_volume and loaded.kspace.shape == (FRAMES, 2, 2, 16, 16)
    np.testing.assert_array_equal(loaded.kspace, m.kspace)
    np.testing.assert_array_equal(loaded.mask, mask)


def test_evaluate_volume_scores_the_whole_volume():
    from imaging import metrics
    from imaging.metrics import evaluate_volume

    reference = moving_disks()
    estimate = reference + np.random.default_rng(2).normal(0, 0.05, reference.shape).astype(np.float32)
    scores = evaluate_volume(estimate, reference)
    mse = np.mean((estimate - reference) ** 2)
    assert scores["psnr"] == pytest.approx(10 * np.log10(np.ptp(reference) ** 2 / mse), rel=1e-5)
    per_slice_ssim = [metrics.ssim(estimate[:, z], reference[:, z]) for z in range(SLICES)]
    assert scores["ssim"] == pytest.approx(np.mean(per_slice_ssim))
    assert set(scores) == set(metrics.evaluate(estimate[:, 0], reference[:, 0]))


def test_mri_volume_shared_and_per_slice_masks():
    rng = np.random.default_rng(0)
    volume = moving_disks(slices=2, size=16)
    shared = rng.random((FRAMES, 16, 16)) < 0.3
    m = simulate_volume_mri(volume, shared, noise=0.0)
    assert m.kspace.shape == (FRAMES, 2, 1, 16, 16) and m.mask.shape == (FRAMES, 16, 16)
    for z in range(2):
        alone = simulate_mri(volume[:, z], shared, noise=0.0)
        np.testing.assert_allclose(m.slice(z).kspace, alone.kspace, atol=1e-6)
    per_slice = rng.random((FRAMES, 2, 16, 16)) < 0.3
    m = simulate_volume_mri(volume, per_slice, noise=0.0)
    assert m.mask.shape == (FRAMES, 2, 16, 16)
    np.testing.assert_array_equal(m.slice(1).mask, per_slice[:, 1])
    assert np.all(m.slice(1).kspace[:, 0][~per_slice[:, 1]] == 0)


def test_mri_volume_per_slice_coil_maps():
    coil_maps = (np.ones((3, 2, 8, 8)) * np.arange(1, 4)[:, None, None, None]).astype(np.complex64)
    m = Measurements(
        modality="mri",
        image_shape=(3, 8, 8),
        kspace=np.zeros((4, 3, 2, 8, 8), dtype=np.complex64),
        mask=np.ones((4, 8, 8), dtype=bool),
        coil_maps=coil_maps,
    )
    np.testing.assert_array_equal(m.slice(2).coil_maps, coil_maps[2])
    assert m.slice(2).mask.shape == (4, 8, 8)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (dict(sinogram=np.zeros((4, 1, 2, 8)), angles=np.zeros((4, 1)), image_shape=(3, 8, 8)),
         r"needs 'sinogram' of shape \(P, V, 3, D\)"),
        (dict(sinogram=np.zeros((4, 1, 3, 8)), angles=np.zeros((4, 1)), image_shape=(0, 8, 8)),
         r"must be \(Z, N, N\) with Z >= 1"),
        (dict(sinogram=np.zeros((4, 1, 3, 8)), angles=np.zeros((4, 1)), image_shape=(3, 8, 8),
              ground_truth=np.zeros((4, 8, 8))), r"'ground_truth' must have shape \(4, 3, 8, 8\)"),
    ],
)
def test_bad_tomography_volume_shapes(fields, message):
    with pytest.raises(MeasurementError, match=message):
        Measurements(modality="tomography", **fields)


def test_bad_mri_volume_shapes():
    kspace = np.zeros((4, 3, 1, 8, 8), dtype=np.complex64)
    with pytest.raises(MeasurementError, match=r"'mask' of a volume must have shape \(4, 8, 8\)"):
        Measurements(modality="mri", image_shape=(3, 8, 8), kspace=kspace, mask=np.ones((4, 2, 8, 8), bool))
    with pytest.raises(MeasurementError, match=r"needs 'kspace' of shape \(P, 3, C, 8, 8\)"):
        Measurements(modality="mri", image_shape=(3, 8, 8), kspace=kspace[:, 0], mask=np.ones((4, 8, 8), bool))
    with pytest.raises(MeasurementError, match=r"'coil_maps' of a volume must have shape \(1, 8, 8\)"):
        Measurements(modality="mri", image_shape=(3, 8, 8), kspace=kspace, mask=np.ones((4, 8, 8), bool),
                     coil_maps=np.ones((2, 1, 8, 8), np.complex64))


def test_two_dimensional_errors_are_unchanged():
    with pytest.raises(MeasurementError, match=r"^'sinogram' must have shape \(P, V, D\), got \(4, 1, 2, 8\)$"):
        Measurements(
            modality="tomography", sinogram=np.zeros((4, 1, 2, 8)), angles=np.zeros((4, 1)), image_shape=(8, 8)
        )
    with pytest.raises(MeasurementError, match=r"^'image_shape' must be two integers >= 2, got \(8,\)$"):
        Measurements(modality="tomography", sinogram=np.zeros((4, 1, 8)), angles=np.zeros((4, 1)), image_shape=(8,))


def test_volume_has_no_single_operator(tomo_volume):
    with pytest.raises(MeasurementError, match=r"\.slice\(z\)\.operator\(\)"):
        tomo_volume.operator()
    assert tomo_volume.slice(0).operator().range_shape == (FRAMES, 2, SIZE)


def test_reconstruct_takes_a_volume_and_equals_slice_by_slice(tomo_volume):
    seen = []
    result = reconstruct(tomo_volume, "fbp-window", callback=seen.append)
    assert result.reconstruction.shape == (FRAMES, SLICES, SIZE, SIZE)
    assert result.reconstruction.dtype == np.float32
    for z in range(SLICES):
        alone = reconstruct(tomo_volume.slice(z), "fbp-window")
        np.testing.assert_array_equal(result.reconstruction[:, z], alone.reconstruction)
    assert sorted({entry["slice"] for entry in result.history}) == list(range(SLICES))
    assert all(isinstance(info, IterationInfo) and info.n_slices == SLICES for info in seen)
    assert [info.slice_index for info in seen] == sorted(info.slice_index for info in seen)
    assert seen[-1].estimate().shape == (FRAMES, SIZE, SIZE)
    last_elapsed = {entry["slice"]: entry["elapsed_seconds"] for entry in result.history}
    assert result.elapsed_seconds >= sum(last_elapsed.values()) > 0


def test_reconstruct_volume_stops_on_request(tomo_volume):
    result = reconstruct(tomo_volume, "fbp-window", callback=lambda info: info.slice_index < 1)
    assert "stopped" in result.stop_reason
    assert {entry["slice"] for entry in result.history} == {0, 1}
    assert np.any(result.reconstruction[:, 1]) and not np.any(result.reconstruction[:, 2])


def test_iterate_runs_chosen_slices_of_a_volume(tomo_volume):
    run = iterate(tomo_volume, "fbp-window", slices=[2])
    infos = []
    try:
        while True:
            infos.append(next(run))
    except StopIteration as finished:
        result = finished.value
    assert [info.slice_index for info in infos] == [2]
    assert result.reconstruction.shape == (FRAMES, 1, SIZE, SIZE)
    alone = reconstruct(tomo_volume.slice(2), "fbp-window")
    np.testing.assert_array_equal(result.reconstruction[:, 0], alone.reconstruction)


def test_slices_are_checked(tomo_volume):
    with pytest.raises(MeasurementError, match="slices must be indices"):
        reconstruct(tomo_volume, "fbp-window", slices=[SLICES])
    with pytest.raises(MeasurementError, match="single slice"):
        reconstruct(tomo_volume.slice(0), "fbp-window", slices=[1])


def test_moved_volume_names_still_work_with_a_warning(tomo_volume):
    import imaging.volumes

    with pytest.warns(DeprecationWarning, match="imaging.run.runner.reconstruct"):
        old = imaging.volumes.reconstruct_volume
    np.testing.assert_array_equal(
        old(tomo_volume, "fbp-window").reconstruction, reconstruct(tomo_volume, "fbp-window").reconstruction
    )


def test_slice_checkpoints_are_written_per_slice(tomo_volume, tmp_path):
    base = tmp_path / "out.npz.ckpt"
    reconstruct(tomo_volume, "fbp-window", checkpoint=base)
    assert all(slice_checkpoint(base, z).is_file() for z in range(SLICES))
    assert slice_checkpoint(base, 2).name == "out.npz.ckpt.z0002"


def test_assemble_volume_rejects_mixed_settings(tomo_volume):
    first = reconstruct(tomo_volume.slice(0), "fbp-window")
    other = reconstruct(tomo_volume.slice(1), "fbp-window", seed=5)
    with pytest.raises(ValueError, match="other settings"):
        assemble_volume([first, other], SLICES)


def test_simulate_volume_of_built_in_phantoms():
    from imaging.phantoms import volume
    from imaging.simulate import simulate_volume

    m = simulate_volume("walnut", frames=4, size=16, slices=2, seed=1)
    assert m.modality == "tomography" and m.sinogram.shape == (4, 1, 2, 16)
    np.testing.assert_array_equal(m.ground_truth, volume("walnut", 4, 16, 2, seed=1))
    m = simulate_volume("cardiac", frames=4, size=16, slices=2, lines_per_frame=4, coils=2)
    assert m.modality == "mri" and m.kspace.shape == (4, 2, 2, 16, 16)
    assert m.mask.shape == (4, 16, 16) and m.coil_maps.shape == (2, 16, 16)
