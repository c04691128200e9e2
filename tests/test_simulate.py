"""Acquisition simulation (imaging.simulate): forward models, noise level, seeding."""

import math

import numpy as np
import pytest
import torch

from imaging.measurements import Measurements
from imaging.operators import DynamicMRI, DynamicTomography, disk_mask, fft2c
from imaging.operators.geometry import ProjectionGeometry
from imaging.operators.tomography import astra_projection_matrix
from imaging.schedules import kt_mask, view_angles
from imaging.simulate import (
    block_average,
    simulate,
    simulate_mri,
    simulate_tomography,
    simulate_volume_mri,
    simulate_volume_tomography,
    synthetic_coil_maps,
)


def moving_disks(frames, size, seed=0):
    """A bright disk orbiting inside a dimmer one: (P, N, N) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    images = np.zeros((frames, size, size), dtype=np.float32)
    for p in range(frames):
        phase = 2 * math.pi * p / frames + rng.uniform(0, 0.1)
        cy, cx = 0.2 * size * math.sin(phase), 0.2 * size * math.cos(phase)
        images[p][yy**2 + xx**2 < (0.4 * size) ** 2] = 0.3
        images[p][(yy - cy) ** 2 + (xx - cx) ** 2 < (0.1 * size) ** 2] = 1.0
    return images


def test_tomography_matches_the_operator_without_noise():
    images = moving_disks(6, 24)
    angles = view_angles("random", 6, 3, seed=1)
    measured = simulate_tomography(images, angles, noise=0.0, n_detectors=30, detector_spacing=0.9)
    operator = DynamicTomography(angles, (24, 24), n_detectors=30, detector_spacing=0.9)
    expected = operator.forward(torch.from_numpy(images)).numpy()
    assert measured.sinogram.shape == (6, 3, 30) and measured.sinogram.dtype == np.float32
    np.testing.assert_allclose(measured.sinogram, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    assert measured.noise_std == 0.0
    np.testing.assert_array_equal(measured.ground_truth, images)
    np.testing.assert_array_equal(measured.angles, angles)
    assert measured.detector_spacing == 0.9 and measured.image_shape == (24, 24)


@pytest.mark.parametrize(
    "geometry",
    [
        {"center_offset": -2.75},
        {"geometry": "fan", "source_origin": 48.0, "origin_detector": 24.0, "detector_spacing": 1.5},
        {"geometry": "fan", "source_origin": 40.0, "origin_detector": 30.0, "center_offset": 3.5},
    ],
    ids=["parallel-offset", "fan", "fan-offset"],
)
def test_tomography_in_other_geometries_matches_the_operator(geometry):
    images = moving_disks(5, 24)
    angles = view_angles("bit-reversal", 5, 2, arc=2 * math.pi)
    measured = simulate_tomography(images, angles, noise=0.0, **geometry)
    n_detectors = measured.sinogram.shape[-1]
    operator = DynamicTomography(angles, (24, 24), n_detectors=n_detectors, **geometry)
    expected = operator.forward(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(measured.sinogram, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    for key, value in geometry.items():
        assert getattr(measured, key) == value
    # The default detector sees the whole disk: nothing of the object falls off its ends.
    assert np.all(measured.sinogram[..., [0, -1]] < 1e-3 * measured.sinogram.max())


def test_fan_beam_simulation_defaults_to_a_full_circle_at_magnification_1_5():
    m = simulate("walnut", frames=8, size=32, geometry="fan", center_offset=1.5, noise=0.0)
    assert (m.geometry, m.source_origin, m.origin_detector, m.center_offset) == ("fan", 64.0, 32.0, 1.5)
    assert m.detector_spacing == 1.5  # one pixel at the axis
    assert m.angles.max() > math.pi and m.angles.max() < 2 * math.pi
    with pytest.raises(ValueError, match="fan-beam volumes are not supported"):
        simulate("walnut", frames=4, size=16, slices=2, geometry="fan")
    with pytest.raises(ValueError, match="geometry 'cone'|geometry must be one of"):
        simulate("walnut", frames=4, size=16, geometry="cone")


def test_tomography_noise_is_relative_to_the_full_all_angle_data():
    frames, size = 8, 32
    images = moving_disks(frames, size)
    angles = view_angles("bit-reversal", frames)
    clean = simulate_tomography(images, angles, noise=0.0)
    noisy = simulate_tomography(images, angles, noise=0.02, seed=4)
    # Reference peak: every frame projected at all P angles of the schedule.
    matrix = astra_projection_matrix(angles.ravel(), size, ProjectionGeometry(size), "line")
    full_data = matrix @ (images * disk_mask(size)).reshape(frames, -1).T
    assert noisy.noise_std == pytest.approx(0.02 * full_data.max(), rel=1e-5)
    # The peak of the measured views alone is smaller: the definition matters here.
    assert clean.sinogram.max() < full_data.max() - 1e-3
    residual = (noisy.sinogram - clean.sinogram).ravel()
    assert abs(residual.mean()) < 0.1 * noisy.noise_std
    assert residual.std() == pytest.approx(noisy.noise_std, rel=0.1)


def test_tomography_is_deterministic_by_seed():
    images = moving_disks(4, 16)
    angles = view_angles("linear", 4, 2)
    first = simulate_tomography(images, angles, seed=11)
    np.testing.assert_array_equal(first.sinogram, simulate_tomography(images, angles, seed=11).sinogram)
    assert not np.array_equal(first.sinogram, simulate_tomography(images, angles, seed=12).sinogram)


def test_tomography_projects_large_angle_sets_in_chunks(monkeypatch):
    import imaging.simulate as simulate_module

    images = moving_disks(5, 16)
    angles = view_angles("golden-angle", 5, 4)
    whole = simulate_tomography(images, angles, noise=0.01)
    # A budget of one angle per chunk must give the same data and noise level.
    monkeypatch.setattr(simulate_module, "_MATRIX_ENTRIES_PER_CHUNK", 1)
    chunked = simulate_tomography(images, angles, noise=0.01)
    np.testing.assert_allclose(chunked.sinogram, whole.sinogram, rtol=1e-6, atol=1e-6)
    assert chunked.noise_std == pytest.approx(whole.noise_std, rel=1e-6)


def test_tomography_reports_progress_per_chunk_and_stops_when_it_raises(monkeypatch):
    import imaging.simulate as simulate_module

    images = moving_disks(5, 16)
    angles = view_angles("golden-angle", 5, 4)  # 20 distinct angles
    monkeypatch.setattr(simulate_module, "_MATRIX_ENTRIES_PER_CHUNK", 2 * 16 * 16 * 6)  # 6 angles per chunk
    reports = []
    simulate_tomography(images, angles, progress=lambda done, total: reports.append((done, total)))
    assert reports == [(6, 20), (12, 20), (18, 20), (20, 20)]

    class Stop(Exception):
        pass

    def stop_after_first(done, total):
        raise Stop

    with pytest.raises(Stop):
        simulate_tomography(images, angles, progress=stop_after_first)


@pytest.mark.parametrize(
    "images, angles, kwargs, message",
    [
        (np.zeros((4, 8, 8)), np.zeros((3, 1)), {}, "P = 4 frames"),
        (np.zeros((4, 8, 6)), np.zeros((4, 1)), {}, "square"),
        (np.zeros((8, 8)), np.zeros((8, 1)), {}, r"shape \(P, N, N\)"),
        (np.full((2, 8, 8), np.nan), np.zeros((2, 1)), {}, "NaN"),
        (np.zeros((2, 8, 8)), np.zeros((2, 1)), {"noise": -1.0}, "noise"),
        (np.zeros((2, 8, 8)), np.zeros((2, 1)), {"n_detectors": 0}, "n_detectors"),
        (np.zeros((2, 8, 8)), np.array([[0.0], [np.inf]]), {}, "NaN or infinite"),
    ],
)
def test_tomography_errors(images, angles, kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_tomography(images, angles, **kwargs)


def test_mri_matches_the_operator_and_is_zero_where_unsampled():
    images = moving_disks(5, 16)
    mask = kt_mask("variable-density", 5, (16, 16), 6, seed=2)
    clean = simulate_mri(images, mask, noise=0.0)
    operator = DynamicMRI(mask)
    expected = operator.zero_filled(operator.forward(torch.from_numpy(images))).numpy()
    assert clean.kspace.shape == (5, 1, 16, 16) and clean.kspace.dtype == np.complex64
    np.testing.assert_allclose(clean.kspace, expected, atol=1e-6)
    noisy = simulate_mri(images, mask, noise=0.05, seed=1)
    unsampled = ~mask[:, None].repeat(1, axis=1)
    assert np.all(noisy.kspace[unsampled] == 0)
    assert np.all(noisy.kspace[~unsampled] != clean.kspace[~unsampled])
    np.testing.assert_array_equal(noisy.mask, mask)


def test_mri_noise_level_and_convention():
    images = moving_disks(8, 32)
    coil_maps = synthetic_coil_maps(3, (32, 32))
    mask = kt_mask("equispaced", 8, (32, 32), 16, center_lines=4)
    clean = simulate_mri(images, mask, coil_maps=coil_maps, noise=0.0)
    noisy = simulate_mri(images, mask, coil_maps=coil_maps, noise=0.01, seed=3)
    full = fft2c(torch.from_numpy(coil_maps)[None] * torch.from_numpy(images)[:, None])
    sigma = 0.01 * float(full.abs().max())
    assert noisy.noise_std == pytest.approx(sigma, rel=1e-5)
    sampled = np.broadcast_to(mask[:, None], clean.kspace.shape)
    residual = (noisy.kspace - clean.kspace)[sampled]
    # Circular complex noise: E|n|^2 = sigma^2, sigma / sqrt(2) per component.
    assert np.sqrt(np.mean(np.abs(residual) ** 2)) == pytest.approx(sigma, rel=0.05)
    assert residual.real.std() == pytest.approx(sigma / math.sqrt(2), rel=0.05)
    assert residual.imag.std() == pytest.approx(sigma / math.sqrt(2), rel=0.05)
    np.testing.assert_array_equal(
        noisy.kspace, simulate_mri(images, mask, coil_maps=coil_maps, noise=0.01, seed=3).kspace
    )


def test_mri_errors():
    images = moving_disks(3, 8)
    with pytest.raises(ValueError, match="mask must have the shape"):
        simulate_mri(images, np.ones((3, 8, 4), dtype=bool))
    with pytest.raises(ValueError, match="images must be numeric"):
        simulate_mri(images.astype(str), np.ones((3, 8, 8), dtype=bool))


@pytest.mark.parametrize("n_coils, shape", [(1, (16, 16)), (4, (16, 16)), (8, (20, 12))])
def test_coil_maps_are_smooth_and_normalised(n_coils, shape):
    maps = synthetic_coil_maps(n_coils, shape)
    assert maps.shape == (n_coils, *shape) and maps.dtype == np.complex64
    np.testing.assert_allclose(np.sum(np.abs(maps) ** 2, axis=0), 1.0, atol=1e-5)
    # Smooth: neighbouring pixels differ little compared with the map values.
    assert np.abs(np.diff(maps, axis=-1)).max() < 0.3
    if n_coils > 1:
        # Distinct coils see different parts of the field of view.
        magnitude = np.abs(maps).reshape(n_coils, -1)
        assert len({int(np.argmax(m)) for m in magnitude}) == n_coils


def test_multicoil_operator_is_well_scaled():
    maps = synthetic_coil_maps(4, (16, 16))
    operator = DynamicMRI(np.ones((2, 16, 16), dtype=bool), maps)
    images = torch.from_numpy(moving_disks(2, 16))
    # With sum_c |S_c|^2 = 1 and full sampling, A^H A is the identity.
    torch.testing.assert_close(operator.normal(images), images, atol=1e-5, rtol=1e-5)


def test_coil_map_errors():
    with pytest.raises(ValueError, match="n_coils"):
        synthetic_coil_maps(0, (8, 8))
    with pytest.raises(ValueError, match="shape"):
        synthetic_coil_maps(2, (8,))


@pytest.fixture
def fake_phantoms(monkeypatch):
    """Route imaging.phantoms.get_phantom to the test object (independent of the library's phantoms)."""
    import imaging.phantoms

    calls = []

    def get_phantom(name):
        def make(frames=64, size=128, seed=0):
            calls.append((name, frames, size, seed))
            return moving_disks(frames, size, seed)

        return make

    monkeypatch.setattr(imaging.phantoms, "get_phantom", get_phantom, raising=False)
    return calls


def test_simulate_tomography_by_name(fake_phantoms):
    measured = simulate("walnut", frames=8, size=16, views_per_frame=2, schedule="linear", noise=0.01, seed=5)
    assert isinstance(measured, Measurements) and measured.modality == "tomography"
    assert fake_phantoms == [("walnut", 8, 16, 5)]
    assert measured.sinogram.shape == (8, 2, 16)
    np.testing.assert_allclose(measured.angles, view_angles("linear", 8, 2))
    np.testing.assert_array_equal(measured.ground_truth, moving_disks(8, 16, 5))
    assert measured.noise_std > 0


def test_simulate_cardiac_defaults_to_mri(fake_phantoms):
    measured = simulate("cardiac", frames=6, size=16, lines_per_frame=5, center_lines=3, coils=4, seed=1)
    assert measured.modality == "mri"
    assert measured.kspace.shape == (6, 4, 16, 16)
    np.testing.assert_array_equal(measured.mask, kt_mask("variable-density", 6, (16, 16), 5, 3, seed=1))
    np.testing.assert_allclose(measured.coil_maps, synthetic_coil_maps(4, (16, 16)))
    single = simulate("cardiac", frames=6, size=16, coils=1)
    assert single.coil_maps is None and single.kspace.shape == (6, 1, 16, 16)


def test_simulate_modality_override_and_errors(fake_phantoms):
    assert simulate("walnut", frames=4, size=16, modality="mri").modality == "mri"
    with pytest.raises(ValueError, match="modality"):
        simulate("walnut", frames=4, size=16, modality="ultrasound")
    with pytest.raises(ValueError, match="coils"):
        simulate("cardiac", frames=4, size=16, coils=0)
    with pytest.raises(ValueError, match="unknown schedule"):
        simulate("walnut", frames=4, size=16, schedule="spiral")


# -- the fine-grid (honest) protocol --------------------------------------------------------
def psnr(a, b, peak=1.0):
    return 10 * math.log10(peak**2 / float(np.mean((np.asarray(a, np.float64) - b) ** 2)))


@pytest.mark.parametrize("name", ["walnut", "material", "cardiac", "shepp_logan"])
def test_phantoms_render_the_same_object_at_any_size(name):
    """Block averages of renderings at 2N and 4N agree, so a 2N rendering is the N object, finer."""
    from imaging.phantoms import get_phantom

    phantom = get_phantom(name)
    at_2n = block_average(phantom(frames=2, size=64, seed=3), 2)
    at_4n = block_average(phantom(frames=2, size=128, seed=3), 4)
    assert psnr(at_2n, at_4n) > 35.0
    # Another seed is another object: the agreement is not trivial.
    assert psnr(at_2n, block_average(phantom(frames=2, size=128, seed=4), 4)) < 25.0


def test_fine_grid_tomography_is_not_made_by_the_reconstruction_operator():
    frames, size = 6, 24
    fine = moving_disks(frames, 2 * size, seed=2)
    angles = view_angles("bit-reversal", frames)
    measured = simulate_tomography(fine, angles, noise=0.0, grid_factor=2, projector="strip")
    assert measured.sinogram.shape == (frames, 1, size) and measured.image_shape == (size, size)
    truth = fine.reshape(frames, size, 2, size, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(measured.ground_truth, truth, atol=1e-6)
    predicted = DynamicTomography(angles, (size, size)).forward(torch.from_numpy(measured.ground_truth)).numpy()
    relative_difference = np.linalg.norm(measured.sinogram - predicted) / np.linalg.norm(predicted)
    # The same object in the same units (line integrals in reconstruction pixels), another discretisation.
    assert 2e-3 < relative_difference < 0.05


def test_fine_grid_tomography_noise_is_relative_to_its_own_full_data():
    frames, size = 8, 16
    fine = moving_disks(frames, 2 * size)
    angles = view_angles("bit-reversal", frames)
    clean = simulate_tomography(fine, angles, noise=0.0, grid_factor=2, projector="strip")
    noisy = simulate_tomography(fine, angles, noise=0.02, seed=4, grid_factor=2, projector="strip")
    # Reference peak: every fine frame at all P angles, strip projector, bins two fine pixels wide.
    matrix = astra_projection_matrix(angles.ravel(), 2 * size, ProjectionGeometry(size, 2.0), "strip")
    full_data = 0.5 * (matrix @ (fine * disk_mask(2 * size)).reshape(frames, -1).T)
    assert noisy.noise_std == pytest.approx(0.02 * full_data.max(), rel=1e-5)
    residual = (noisy.sinogram - clean.sinogram).ravel()
    assert residual.std() == pytest.approx(noisy.noise_std, rel=0.1)
    # A relative level means about the same absolute noise under either protocol.
    crime = simulate_tomography(clean.ground_truth, angles, noise=0.02)
    assert noisy.noise_std == pytest.approx(crime.noise_std, rel=0.05)


def test_fine_grid_mri_is_the_band_limited_kspace():
    frames, size = 4, 16
    fine = moving_disks(frames, 2 * size, seed=1)
    mask = kt_mask("variable-density", frames, (size, size), 6, seed=2)
    fine_maps = synthetic_coil_maps(2, (2 * size, 2 * size))
    clean = simulate_mri(fine, mask, coil_maps=fine_maps, noise=0.0, grid_factor=2)
    assert clean.kspace.shape == (frames, 2, size, size) and clean.ground_truth.shape == (frames, size, size)
    assert clean.coil_maps.shape == (2, size, size)
    assert np.all(clean.kspace[~np.broadcast_to(mask[:, None], clean.kspace.shape)] == 0)
    operator = DynamicMRI(mask, clean.coil_maps)
    predicted = operator.zero_filled(operator.forward(torch.from_numpy(clean.ground_truth))).numpy()
    relative_difference = np.linalg.norm(clean.kspace - predicted) / np.linalg.norm(predicted)
    assert 2e-3 < relative_difference < 0.1
    # At the lowest frequencies (where block averaging does not attenuate) the two agree closely:
    # the scale and the half-pixel phase of the cropped fine k-space are right.
    centre = (slice(None), slice(None), slice(size // 2 - 2, size // 2 + 2), slice(size // 2 - 2, size // 2 + 2))
    full = simulate_mri(fine, np.ones_like(mask), coil_maps=fine_maps, noise=0.0, grid_factor=2).kspace
    full_predicted = DynamicMRI(np.ones_like(mask), clean.coil_maps).forward(torch.from_numpy(clean.ground_truth))
    low_difference = np.linalg.norm(full[centre] - full_predicted.numpy()[centre]) / np.linalg.norm(full[centre])
    assert low_difference < 0.02


def test_fine_grid_mri_noise_level():
    frames, size = 6, 16
    fine = moving_disks(frames, 2 * size)
    mask = kt_mask("equispaced", frames, (size, size), 8, center_lines=4)
    clean = simulate_mri(fine, mask, noise=0.0, grid_factor=2)
    noisy = simulate_mri(fine, mask, noise=0.01, seed=3, grid_factor=2)
    full = simulate_mri(fine, np.ones_like(mask), noise=0.0, grid_factor=2).kspace
    assert noisy.noise_std == pytest.approx(0.01 * np.abs(full).max(), rel=1e-5)
    residual = (noisy.kspace - clean.kspace)[np.broadcast_to(mask[:, None], clean.kspace.shape)]
    assert np.sqrt(np.mean(np.abs(residual) ** 2)) == pytest.approx(noisy.noise_std, rel=0.1)


def test_simulate_fine_grid_protocol_renders_at_twice_the_size(fake_phantoms):
    measured = simulate("walnut", frames=4, size=16, noise=0.0, seed=2, protocol="fine-grid")
    assert fake_phantoms == [("walnut", 4, 32, 2)]
    assert measured.sinogram.shape == (4, 1, 16) and measured.ground_truth.shape == (4, 16, 16)
    np.testing.assert_allclose(measured.ground_truth, block_average(moving_disks(4, 32, 2), 2), atol=1e-6)
    mri = simulate("cardiac", frames=4, size=16, coils=3, protocol="fine-grid")
    assert mri.kspace.shape == (4, 3, 16, 16) and mri.coil_maps.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="protocol"):
        simulate("walnut", frames=4, size=16, protocol="exact")


def test_fine_grid_volumes_keep_the_reconstruction_grid():
    volume = np.stack([moving_disks(3, 16, seed=s) for s in range(2)], axis=1)  # (P, Z, 2N, 2N)
    tomography = simulate_volume_tomography(volume, view_angles("linear", 3), grid_factor=2, projector="strip")
    assert tomography.sinogram.shape == (3, 1, 2, 8) and tomography.ground_truth.shape == (3, 2, 8, 8)
    mri = simulate_volume_mri(volume, np.ones((3, 8, 8), dtype=bool), grid_factor=2)
    assert mri.kspace.shape == (3, 2, 1, 8, 8) and mri.image_shape == (2, 8, 8)
    with pytest.raises(ValueError, match="grid_factor 3 must divide"):
        simulate_tomography(moving_disks(2, 16), np.zeros((2, 1)), grid_factor=3)
