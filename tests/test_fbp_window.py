"""The fbp-window baseline: FBP amplitude, window behaviour, MRI zero filling, registry."""

import numpy as np
import pytest
import torch

import imaging.solvers
from imaging import metrics
from imaging.measurements import Measurements
from imaging.operators import DynamicMRI, DynamicTomography, disk_mask
from imaging import reconstruct
from imaging.simulate import simulate_tomography
from imaging.solvers import METHODS, ParameterError
from imaging.solvers.fbp_window import FBPWindow, angular_weights, filter_views, sliding_view_weights, window_starts

N = 48


def _static_phantom(n=N, frames=1):
    """A unit disk with a brighter insert, inside the field of view; (frames, n, n) float32."""
    rows, cols = np.mgrid[:n, :n] - (n - 1) / 2
    image = (rows**2 + cols**2 < (0.38 * n) ** 2).astype(np.float32)
    image += 0.5 * ((rows - 0.1 * n) ** 2 + (cols + 0.12 * n) ** 2 < (0.1 * n) ** 2)
    return np.repeat(image[None], frames, axis=0)


def _flat_interior(n=N):
    """Pixels well inside the unit disk and away from the insert (expected value 1)."""
    rows, cols = np.mgrid[:n, :n] - (n - 1) / 2
    inside = rows**2 + cols**2 < (0.3 * n) ** 2
    return inside & ((rows - 0.1 * n) ** 2 + (cols + 0.12 * n) ** 2 > (0.1 * n + 3) ** 2)


def _tomography(images, angles, detector_spacing=1.0, n_detectors=None, noise=0.0, seed=0):
    n = images.shape[1]
    operator = DynamicTomography(angles, (n, n), n_detectors=n_detectors, detector_spacing=detector_spacing)
    sinogram = operator.forward(torch.from_numpy(images)).numpy()
    if noise:
        sinogram = sinogram + noise * sinogram.max() * np.random.default_rng(seed).standard_normal(sinogram.shape)
    return Measurements(
        modality="tomography",
        image_shape=(n, n),
        sinogram=sinogram.astype(np.float32),
        angles=angles,
        detector_spacing=detector_spacing,
        ground_truth=images,
    )


def _shuffled_angles(frames, views=1, seed=0):
    """Equispaced angles over [0, pi) in a random temporal order, (frames, views)."""
    angles = np.linspace(0, np.pi, frames * views, endpoint=False)
    return np.random.default_rng(seed).permutation(angles).reshape(frames, views)


# -- tomography ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spacing, n_detectors, min_psnr",
    [(1.0, N, 24), (0.5, 2 * N, 24), (2.0, N // 2 + 2, 18)],  # bins of 2 pixels blur edges
)
def test_static_object_reconstructs_to_its_values(spacing, n_detectors, min_psnr):
    frames = 64
    images = _static_phantom(frames=frames)
    m = _tomography(images, _shuffled_angles(frames), spacing, n_detectors)
    result = reconstruct(m, "fbp-window", window=frames)
    recon = result.reconstruction
    assert recon.shape == images.shape and recon.dtype == np.float32
    # Every frame sees all views: all frames are the same full FBP.
    assert np.allclose(recon, recon[0], atol=1e-6)
    assert recon[0][_flat_interior()].mean() == pytest.approx(1.0, abs=0.02)
    assert metrics.psnr(recon * disk_mask(N), images) > min_psnr
    assert result.history[0]["data_residual"] < 0.05


@pytest.mark.parametrize(
    "geometry",
    [
        {"center_offset": 3.4},
        # Bins of 2/3 pixel at the axis: with bins of one pixel, ASTRA's line weights alias where rays run
        # between pixel centres, which costs a parallel beam as much (27 dB instead of 33 dB for 49 bins here).
        {"geometry": "fan", "source_origin": 2.0 * N, "origin_detector": 1.0 * N, "detector_spacing": 1.0},
        {"geometry": "fan", "source_origin": 1.2 * N, "origin_detector": 2.0 * N, "center_offset": -4.6},
    ],
    ids=["parallel-offset", "fan-magnification-1.5", "fan-wide-offset"],
)
def test_static_object_reconstructs_in_other_geometries(geometry):
    """A full scan of a static object: FBP (fan beam: cosine pre-weights, ramp filter and
    distance-weighted back-projection) gives back its values about as well as for a centred
    parallel beam."""
    frames = 64
    reference = reconstruct(_tomography(_static_phantom(frames=frames), _shuffled_angles(frames)), "fbp-window", window=frames)
    reference = reference.reconstruction
    if geometry.get("geometry") == "fan":  # a full circle at the same angular density
        frames *= 2
    images = _static_phantom(frames=frames)
    angles = _shuffled_angles(frames) * (frames / 64)
    m = simulate_tomography(images, angles, noise=0.0, **geometry)
    recon = reconstruct(m, "fbp-window", window=frames).reconstruction
    assert recon[0][_flat_interior()].mean() == pytest.approx(1.0, abs=0.02)
    assert metrics.psnr(recon * disk_mask(N), images) > metrics.psnr(reference * disk_mask(N), images[:64]) - 1.0
    assert metrics.psnr(recon * disk_mask(N), images) > 24


def test_fan_beam_views_repeat_after_a_full_turn():
    full_turn = angular_weights(np.linspace(0, 2 * np.pi, 8, endpoint=False), period=2 * np.pi)
    assert np.allclose(full_turn, np.pi / 8)
    # Parallel-beam views half a turn apart measure the same rays: they share one interval.
    assert np.allclose(angular_weights(np.array([0.0, np.pi, np.pi / 2])), [np.pi / 4, np.pi / 4, np.pi / 2])


def test_several_views_per_frame_use_whole_frames():
    frames, views = 16, 4
    images = _static_phantom(frames=frames)
    m = _tomography(images, _shuffled_angles(frames, views))
    recon = reconstruct(m, "fbp-window", window=64).reconstruction  # 16 frames x 4 views: all of them
    assert recon[5][_flat_interior()].mean() == pytest.approx(1.0, abs=0.02)
    weights = sliding_view_weights(m.angles, 10).to_dense().numpy()
    # ceil(10 / 4) = 3 whole frames, i.e. 12 views, in every window; the weights sum to pi.
    assert np.all(np.count_nonzero(weights, axis=1) == 12)
    assert np.allclose(weights.sum(axis=1), np.pi, rtol=1e-5)


def test_a_larger_window_reduces_streaks_on_a_static_object():
    frames = 64
    images = _static_phantom(frames=frames)
    m = _tomography(images, _shuffled_angles(frames, seed=1))
    errors = []
    for window in (8, 16, 32, 64):
        recon = reconstruct(m, "fbp-window", window=window).reconstruction
        errors.append(np.sqrt(np.mean(((recon - images) * disk_mask(N)) ** 2)))
    assert np.all(np.diff(errors) < 0), errors
    assert errors[0] > 2 * errors[-1]


def test_the_window_follows_a_moving_object():
    """A disk that jumps halfway through: frames far from the jump see only their own state."""
    frames = 64
    images = _static_phantom(frames=frames)
    images[frames // 2 :] = np.roll(images[frames // 2 :], 8, axis=2)
    m = _tomography(images, _shuffled_angles(frames, seed=2))
    narrow = reconstruct(m, "fbp-window", window=16).reconstruction
    wide = reconstruct(m, "fbp-window", window=frames).reconstruction
    early, late = slice(0, 8), slice(frames - 8, frames)
    for part in (early, late):
        assert metrics.psnr(narrow[part], images[part]) > metrics.psnr(wide[part], images[part]) + 2


def test_apodised_filters_keep_the_amplitude_and_lower_the_noise():
    frames = 64
    images = _static_phantom(frames=frames)
    m = _tomography(images, _shuffled_angles(frames), noise=0.02)
    interior = _flat_interior()
    noise_std = {}
    for kind in ("ramp", "shepp-logan", "cosine", "hann"):
        recon = reconstruct(m, "fbp-window", window=frames, filter=kind).reconstruction[0]
        assert recon[interior].mean() == pytest.approx(1.0, abs=0.03)
        noise_std[kind] = recon[interior].std()
    assert noise_std["ramp"] > noise_std["shepp-logan"] > noise_std["cosine"] > noise_std["hann"]


def test_ramp_filter_matches_the_continuous_ramp_on_a_sinusoid():
    # A cosine of f cycles per bin is an eigenfunction of the ramp filter with eigenvalue |f|
    # (away from the ends, where zero padding truncates it).
    bins = np.arange(256)
    for frequency in (0.05, 0.125, 0.3):
        views = torch.from_numpy(np.cos(2 * np.pi * frequency * bins)[None].astype(np.float32))
        filtered = filter_views(views)[0, 64:-64].numpy()
        assert np.allclose(filtered, frequency * views[0, 64:-64].numpy(), atol=0.01 * frequency + 2e-3)


def test_window_starts_are_centred_and_clipped():
    assert window_starts(10, 4).tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 6]
    assert window_starts(5, 1).tolist() == [0, 1, 2, 3, 4]
    assert window_starts(5, 9).tolist() == [0] * 5  # a window longer than the sequence covers it


def test_angular_weights():
    uniform = np.linspace(0, np.pi, 8, endpoint=False)
    assert np.allclose(angular_weights(uniform), np.pi / 8)
    assert np.allclose(angular_weights(uniform + np.pi), np.pi / 8)  # theta and theta + pi are the same lines
    repeated = angular_weights(np.concatenate([uniform, uniform[:1]]))
    assert repeated[0] == pytest.approx(repeated[-1]) and repeated.sum() == pytest.approx(np.pi)
    irregular = angular_weights(np.array([0.0, 0.1, 0.2, 1.5, 2.0]))
    assert irregular.sum() == pytest.approx(np.pi)
    assert irregular[1] < irregular[0] < irregular[4]  # crowded views weigh less than isolated ones
    # A limited arc: the end views do not take over the whole missing arc.
    arc = angular_weights(np.linspace(0, np.pi / 8, 32))
    assert arc.sum() == pytest.approx(np.pi) and arc.max() <= 3 * np.median(arc) + 1e-12


# -- MRI ------------------------------------------------------------------------------------------


def _mri(images, mask, coil_maps=None):
    operator = DynamicMRI(mask, coil_maps)
    kspace = operator.zero_filled(operator.forward(torch.from_numpy(images))).numpy()
    return Measurements(
        modality="mri", image_shape=images.shape[1:], kspace=kspace, mask=mask, coil_maps=coil_maps, ground_truth=images
    )


def _coil_maps(n_coils, shape):
    yy, xx = np.mgrid[: shape[0], : shape[1]] / max(shape)
    centres = np.linspace(0, 1, n_coils)
    maps = np.stack([np.exp(-((yy - c) ** 2 + (xx - 1 + c) ** 2) / 0.5) * np.exp(2j * c * xx) for c in centres])
    return (maps / np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))).astype(np.complex64)


@pytest.mark.parametrize("n_coils", [0, 4])
def test_fully_sampled_mri_gives_the_exact_image(n_coils):
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(6, 16, 20)).astype(np.float32)  # every frame different
    maps = _coil_maps(n_coils, (16, 20)) if n_coils else None
    m = _mri(images, np.ones(images.shape, dtype=bool), maps)
    result = reconstruct(m, "fbp-window", window=1)
    assert np.allclose(result.reconstruction, images, atol=1e-5)
    assert result.history[0]["data_residual"] < 1e-5


def test_mri_window_fills_k_space_from_neighbouring_frames():
    frames, shape = 12, (16, 16)
    images = np.repeat(np.random.default_rng(1).uniform(0, 1, size=(1, *shape)).astype(np.float32), frames, axis=0)
    mask = np.zeros(images.shape, dtype=bool)
    for p in range(frames):
        mask[p, p % 4 :: 4] = True  # interleaved lines: any 4 consecutive frames cover k-space
    m = _mri(images, mask)
    assert np.allclose(reconstruct(m, "fbp-window", window=4).reconstruction, images, atol=1e-5)
    assert not np.allclose(reconstruct(m, "fbp-window", window=2).reconstruction, images, atol=1e-2)
    # The automatic window fills k-space once on average: 1 / (1/4 sampled) = 4 frames.
    assert FBPWindow(m, FBPWindow.make_params()).window_size() == 4
    assert np.allclose(reconstruct(m, "fbp-window").reconstruction, images, atol=1e-5)


def test_mri_samples_measured_several_times_are_averaged():
    shape = (8, 8)
    images = np.ones((2, *shape), dtype=np.float32)
    mask = np.ones((2, *shape), dtype=bool)
    m = _mri(images, mask)
    m.kspace[1] *= 3.0  # frame 1 measured the same object three times brighter
    recon = reconstruct(m, "fbp-window", window=2).reconstruction
    assert np.allclose(recon, 2.0, atol=1e-5)  # the average of 1 and 3


# -- registry and parameters --------------------------------------------------------------------------


def test_registered_and_driven_by_the_runner():
    assert METHODS["fbp-window"] is FBPWindow
    frames = 8
    images = _static_phantom(n=24, frames=frames)
    m = _tomography(images, _shuffled_angles(frames))
    seen = []
    result = imaging.reconstruct(m, method="fbp-window", callback=seen.append, max_iter=3)
    assert len(seen) == 1 and result.stop_reason == "converged"  # one step computes everything
    assert result.method == "fbp-window" and result.params["window"] == 0 and result.params["filter"] == "ramp"
    assert {"data_residual", "psnr", "psnr_frame_mean", "ssim_sampled", "ssim_frames"} <= set(result.history[0])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"window": -1}, "window must be >= 0"),
        ({"filter": "butterworth"}, "filter must be one of"),
        ({"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_parameters_are_refused(overrides, message):
    with pytest.raises(ParameterError, match=message):
        FBPWindow.make_params(**overrides)


def test_the_operator_class_picks_the_sliding_window_method():
    from imaging.operators import DynamicMRI, DynamicTomography, LinearOperator
    from imaging.solvers.fbp_window import SlidingFBP, SlidingZeroFilling, window_method

    class ShiftedMRI(DynamicMRI):
        """A modality built on MRI's physics inherits its method."""

    assert isinstance(window_method(DynamicTomography), SlidingFBP)
    assert isinstance(window_method(ShiftedMRI), SlidingZeroFilling)
    with pytest.raises(ParameterError, match="no sliding-window method for LinearOperator"):
        window_method(LinearOperator)
