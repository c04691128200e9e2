"""Complex images end to end (MRI): PSM factors, RED-PSM, baselines, files, scoring."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from imaging import load_reconstruction, reconstruct, save_measurements, save_reconstruction
from imaging.cli import main
from imaging.metrics import psnr
from imaging.models.psm import interpolation_matrix, psm_from_frames
from imaging.results import magnitude_image
from imaging.solvers.base import ParameterError
from imaging.solvers.red_psm import RedPSMSolver, smooth_phase
from imaging.simulate import simulate

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SMALL = {"order": 4, "knots": 6}


@pytest.fixture(scope="module")
def complex_cardiac():
    """4 coils, smooth drifting phase, 6 of 32 lines per frame, coil maps left to be estimated."""
    m = simulate("cardiac", frames=16, size=32, lines_per_frame=6, center_lines=2, coils=4, seed=0)
    return dataclasses.replace(m, coil_maps=None)


def _score(result, m):
    return psnr(magnitude_image(result.reconstruction), m.ground_truth)


def test_complex_red_psm_beats_psm_and_the_sliding_window(complex_cardiac):
    m = complex_cardiac
    red = reconstruct(m, "red-psm", max_iter=10, **SMALL)
    psm = reconstruct(m, "psm")
    window = reconstruct(m, "fbp-window")
    for result in (red, psm, window):
        assert result.reconstruction.dtype == np.complex64 and result.reconstruction.shape == (16, 32, 32)
    assert red.extras["spatial_bases"].dtype == np.complex64
    assert red.extras["temporal_bases"].dtype == np.float32  # real temporal bases
    assert _score(red, m) > _score(psm, m) + 1.0
    assert _score(red, m) > _score(window, m) + 3.0
    # The history scores the magnitude too.
    assert red.history[-1]["psnr"] == pytest.approx(_score(red, m), abs=1e-3)


def test_complex_frames_get_real_temporal_bases_that_represent_them_exactly():
    rng = np.random.default_rng(0)
    interpolation = interpolation_matrix(12, 5)
    temporal = interpolation @ torch.from_numpy(rng.standard_normal((5, 2))).float()
    spatial = torch.from_numpy(rng.standard_normal((2, 6, 6)) + 1j * rng.standard_normal((2, 6, 6))).to(torch.complex64)
    frames = torch.einsum("pk,kxy->pxy", temporal.to(torch.complex64), spatial)
    factors = psm_from_frames(frames, 2, interpolation)
    assert factors.spatial.is_complex() and not factors.knots.is_complex()
    assert torch.allclose(factors.frames(), frames, atol=1e-4)


def test_td_dip_generates_complex_frames_and_fits_them(complex_cardiac):
    m = dataclasses.replace(complex_cardiac, coil_maps=complex_cardiac.estimate_coil_maps()[0])
    result = reconstruct(m, "td-dip", max_iter=4, steps=40, steps_per_iteration=10, channels=8)
    assert result.reconstruction.dtype == np.complex64
    residuals = [entry["data_residual"] for entry in result.history]
    assert residuals[-1] < residuals[0]


def test_smooth_phase_denoising_keeps_a_smooth_phase():
    yy, xx = np.mgrid[:16, :16] / 16
    phase = np.exp(1j * (2.0 * xx + yy))
    frames = torch.from_numpy((np.ones((2, 16, 16)) * phase).astype(np.complex64))
    recovered = smooth_phase(frames, width=2.0)
    assert torch.allclose(recovered.abs(), torch.ones(()), atol=1e-5)
    # Away from the edges (the smoothing wraps around) the phase is the frames' own.
    inner = (slice(None), slice(4, 12), slice(4, 12))
    assert torch.allclose(recovered[inner], frames[inner], atol=0.05)
    with pytest.raises(ParameterError, match="complex_denoising"):
        RedPSMSolver.make_params(complex_denoising="phase-only")
    with pytest.raises(ParameterError, match="phase_smoothing"):
        RedPSMSolver.make_params(phase_smoothing=0.0)


def test_complex_reconstruction_files_and_scoring(complex_cardiac, tmp_path):
    m = complex_cardiac
    result = reconstruct(m, "fbp-window")
    npz, tif = tmp_path / "window.npz", tmp_path / "window.tif"
    save_reconstruction(npz, result)
    save_reconstruction(tif, result)
    loaded = load_reconstruction(npz)
    assert loaded.reconstruction.dtype == np.complex64
    np.testing.assert_array_equal(loaded.reconstruction, result.reconstruction)
    np.testing.assert_array_equal(loaded.extras["coil_maps"], result.extras["coil_maps"])
    shown = load_reconstruction(tif)
    np.testing.assert_allclose(shown.reconstruction, np.abs(result.reconstruction), rtol=1e-6)
    # The command line scores the magnitude.
    measurements, metrics_file = tmp_path / "m.npz", tmp_path / "metrics.json"
    save_measurements(measurements, m)
    assert main(["evaluate", str(npz), "--reference", str(measurements), "--json", str(metrics_file)]) == 0
    scores = json.loads(metrics_file.read_text())
    assert scores[str(npz)]["psnr"] == pytest.approx(_score(result, m), abs=1e-3)
