"""Every method on every geometry: rotation-axis offsets and fan beam, end to end."""

import numpy as np
import pytest

from imaging import load_measurements, metrics, reconstruct
from imaging.cli import main
from imaging.simulate import simulate
from imaging.solvers.psm.initialisation import initial_frames

GEOMETRIES = {
    "parallel": {},
    "offset": {"center_offset": 2.5},
    "fan-offset": {"geometry": "fan", "center_offset": -1.5},
}

#: Short runs of each method: enough to see that it fits the data of the geometry.
RUNS = {
    "fbp-window": {},
    "psm": {"max_iter": 3},
    "red-psm": {"max_iter": 3, "preset": "fast"},
    "td-dip": {"preset": "light", "max_iter": 1, "steps_per_iteration": 256, "channels": 8},
}


@pytest.fixture(scope="module")
def acquisitions():
    return {name: simulate("walnut", frames=32, size=32, seed=1, **geometry) for name, geometry in GEOMETRIES.items()}


@pytest.mark.parametrize("method", list(RUNS))
@pytest.mark.parametrize("geometry", ["offset", "fan-offset"])
def test_every_method_reconstructs_every_geometry(acquisitions, method, geometry):
    """Each method does about as well on an offset or fan-beam acquisition of the object as
    on the centred parallel-beam one (same object, schedule kind and noise level)."""
    m = acquisitions[geometry]
    result = reconstruct(m, method, **RUNS[method])
    reference = reconstruct(acquisitions["parallel"], method, **RUNS[method])
    score = metrics.psnr(result.reconstruction, m.ground_truth)
    zero_score = metrics.psnr(np.zeros_like(m.ground_truth), m.ground_truth)
    assert score > zero_score + 5
    assert score > metrics.psnr(reference.reconstruction, m.ground_truth) - 1.5
    assert result.history[-1]["data_residual"] < 0.5


def test_projection_initialisation_uses_the_symmetry_about_the_axis(acquisitions):
    centred = initial_frames(acquisitions["parallel"], "projection").numpy()
    moved = initial_frames(acquisitions["offset"], "projection").numpy()
    truth = acquisitions["parallel"].ground_truth
    assert metrics.psnr(moved, truth) == pytest.approx(metrics.psnr(centred, truth), abs=0.5)
    with pytest.raises(ValueError, match="parallel-beam symmetry.*fan-beam measurements: use init=fbp-svd"):
        initial_frames(acquisitions["fan-offset"], "projection")


def test_parallel_beam_volume_keeps_its_offset_in_every_slice():
    volume = simulate("material", frames=4, size=16, slices=2, center_offset=1.5, noise=0.0)
    assert volume.slice(1).center_offset == 1.5 and volume.sinogram.shape[-1] == 19
    result = reconstruct(volume, "fbp-window").reconstruction
    np.testing.assert_allclose(result[:, 1], reconstruct(volume.slice(1), "fbp-window").reconstruction, atol=1e-6)


def test_simulate_command_writes_a_fan_beam_file_that_reconstructs(tmp_path):
    path = tmp_path / "fan.npz"
    args = ["simulate", "--phantom", "walnut", "--frames", "8", "--size", "32", "--geometry", "fan"]
    assert main([*args, "--center-offset", "1.25", "--source-origin", "80", "-o", str(path)]) == 0
    m = load_measurements(path)
    assert (m.geometry, m.center_offset, m.source_origin, m.origin_detector) == ("fan", 1.25, 80.0, 32.0)
    assert main(["reconstruct", str(path), "--method", "fbp-window", "-o", str(tmp_path / "out.npz")]) == 0


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_the_coarser_grid_sees_the_averaged_image_as_the_fine_grid_sees_the_image(geometry):
    """On the grid of half the size (pixels twice as wide) the projections of the 2 x 2
    averaged image are the fine projections halved (lengths count wider pixels), with an
    offset axis and a fan beam too: the physics of :meth:`Measurements.on_coarser_grid`."""
    import torch
    from scipy import ndimage

    fine = simulate("walnut", frames=8, size=64, seed=1, noise=0.0, **GEOMETRIES[geometry])
    coarse = fine.on_coarser_grid()
    assert coarse.image_shape == (32, 32) and coarse.sinogram.shape == fine.sinogram.shape
    np.testing.assert_allclose(
        coarse.ground_truth, fine.ground_truth.reshape(8, 32, 2, 32, 2).mean(axis=(2, 4)), rtol=1e-6, atol=1e-7
    )
    # A smooth image: the walnut's sharp edges differ by the discretisation (5 % unsmoothed).
    truth = ndimage.gaussian_filter(fine.ground_truth, (0, 2, 2)).astype(np.float32)
    averaged = truth.reshape(8, 32, 2, 32, 2).mean(axis=(2, 4))
    projected = coarse.operator().forward(torch.from_numpy(averaged)).numpy()
    fine_projected = fine.operator().forward(torch.from_numpy(truth)).numpy()
    np.testing.assert_allclose(coarse.sinogram, fine.sinogram / 2, rtol=1e-6)
    error = np.linalg.norm(projected - fine_projected / 2) / np.linalg.norm(fine_projected / 2)
    assert error < 0.025


def test_a_coarser_grid_is_refused_where_it_is_not_defined():
    with pytest.raises(ValueError, match="coarser grid is defined for one tomography slice of even size"):
        simulate("cardiac", frames=4, size=16).on_coarser_grid()
    with pytest.raises(ValueError, match="coarser grid"):
        simulate("walnut", frames=4, size=15).on_coarser_grid()
    with pytest.raises(ValueError, match="coarser grid"):
        simulate("material", frames=4, size=16, slices=2).on_coarser_grid()


def test_coarse_to_fine_start_on_an_offset_fan_beam_does_as_on_a_parallel_beam():
    """red-psm's coarse-to-fine start carries the geometry to the coarser grid: on the offset
    fan beam it ends as close to the object as on the centred parallel beam."""
    scores = {}
    for name in ("parallel", "fan-offset"):
        m = simulate("walnut", frames=32, size=32, seed=1, protocol="fine-grid", **GEOMETRIES[name])
        result = reconstruct(
            m, "red-psm", max_iter=12, coarse_size=16, refine_iterations=3, order=3, knots=8, init_knots=4
        )
        assert [entry["grid_size"] for entry in result.history][-4:] == [16.0, 32.0, 32.0, 32.0]
        scores[name] = metrics.psnr(result.reconstruction, m.ground_truth)
        assert scores[name] > metrics.psnr(np.zeros_like(m.ground_truth), m.ground_truth) + 5
    assert scores["fan-offset"] > scores["parallel"] - 1.0
