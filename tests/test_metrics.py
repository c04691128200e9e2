"""Metrics: paper conventions, limiting cases, invariances and input validation."""

import math

import numpy as np
import pytest
import torch

from imaging import metrics


@pytest.fixture
def reference():
    """A smooth (8, 24, 24) sequence in [0, 1]: a moving bright disk on a ramp."""
    frames, size = 8, 24
    yy, xx = np.mgrid[:size, :size] / size
    images = [0.3 * xx + 0.7 * ((xx - 0.3 - 0.04 * p) ** 2 + (yy - 0.5) ** 2 < 0.04) for p in range(frames)]
    return np.asarray(images)


def test_identical_inputs_are_perfect(reference):
    scores = metrics.evaluate(reference, reference)
    assert scores["psnr"] == math.inf
    assert scores["psnr_frame_mean"] == math.inf
    assert scores["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert scores["mae"] == 0.0
    assert scores["hfen"] == 0.0
    assert scores["hfen_normalized"] == 0.0
    assert all(isinstance(v, float) for v in scores.values())


def test_psnr_matches_the_formula_for_known_noise(reference):
    rng = np.random.default_rng(0)
    sigma = 0.05
    noisy = reference + sigma * rng.standard_normal(reference.shape)
    data_range = reference.max() - reference.min()
    mse = np.mean((noisy - reference) ** 2)
    assert metrics.psnr(noisy, reference) == pytest.approx(20 * np.log10(data_range / np.sqrt(mse)), rel=1e-12)
    # The empirical noise power is close to sigma^2, so the PSNR is close to the nominal value.
    assert metrics.psnr(noisy, reference) == pytest.approx(20 * np.log10(data_range / sigma), abs=0.2)


def test_psnr_frames_use_the_volume_data_range(reference):
    error = np.zeros_like(reference)
    error[3] = 0.1  # only frame 3 is wrong, by a constant
    frame_psnr = metrics.psnr_frames(reference + error, reference)
    assert frame_psnr.shape == (reference.shape[0],)
    data_range = reference.max() - reference.min()
    assert frame_psnr[3] == pytest.approx(20 * np.log10(data_range / 0.1))
    assert np.all(np.isinf(np.delete(frame_psnr, 3)))
    # One frame in P carries all the error: the volume MSE is 1/P of that frame's.
    assert metrics.psnr(reference + error, reference) == pytest.approx(frame_psnr[3] + 10 * np.log10(len(frame_psnr)))


@pytest.mark.parametrize("name", ["psnr", "ssim", "mae", "hfen", "hfen_normalized"])
def test_metrics_are_monotone_in_the_noise_level(reference, name):
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(reference.shape)
    scores = [metrics.evaluate(reference + level * noise, reference)[name] for level in (0.01, 0.03, 0.1, 0.3)]
    better_is_higher = name in ("psnr", "ssim")
    assert np.all(np.diff(scores) < 0) if better_is_higher else np.all(np.diff(scores) > 0)


def test_scale_and_shift_behaviour(reference):
    rng = np.random.default_rng(2)
    estimate = reference + 0.05 * rng.standard_normal(reference.shape)
    base = metrics.evaluate(estimate, reference)
    scale, shift = 7.5, -2.0
    scaled = metrics.evaluate(scale * estimate + shift, scale * reference + shift)
    # PSNR is invariant under an affine change of the intensity scale ...
    for name in ("psnr", "psnr_frame_mean"):
        assert scaled[name] == pytest.approx(base[name], rel=1e-9)
    # ... absolute errors scale with it and ignore the shift (up to the truncated LoG kernel) ...
    assert scaled["mae"] == pytest.approx(scale * base["mae"], rel=1e-9)
    assert scaled["hfen"] == pytest.approx(scale * base["hfen"], rel=1e-3)
    # ... and SSIM and the normalised HFEN are invariant under a pure scaling (SSIM's
    # luminance term depends on the mean, so not under a shift).
    rescaled = metrics.evaluate(scale * estimate, scale * reference)
    for name in ("ssim", "hfen_normalized"):
        assert rescaled[name] == pytest.approx(base[name], rel=1e-9)


def test_hfen_is_the_paper_unnormalised_log_norm(reference):
    from scipy.ndimage import gaussian_laplace

    estimate = np.roll(reference, 1, axis=2)
    expected = np.sqrt(sum(np.sum(gaussian_laplace(r - e, 1.5) ** 2) for r, e in zip(reference, estimate)))
    assert metrics.hfen(estimate, reference, normalized=False) == pytest.approx(expected, rel=1e-12)
    norm_ref = np.sqrt(sum(np.sum(gaussian_laplace(r, 1.5) ** 2) for r in reference))
    assert metrics.hfen(estimate, reference) == pytest.approx(expected / norm_ref, rel=1e-12)


def test_hfen_ignores_a_constant_offset_but_not_blur(reference):
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(reference, (0, 1.5, 1.5))
    assert metrics.hfen(blurred, reference) > 0.2
    # A constant offset has no high frequencies (only the truncated kernel's tiny residue).
    assert metrics.hfen(reference + 0.5, reference) < 0.02 * metrics.hfen(blurred, reference)


def test_ssim_uses_the_reference_range_not_the_estimate_range(reference):
    rng = np.random.default_rng(3)
    estimate = reference + 0.05 * rng.standard_normal(reference.shape)
    outlier = estimate.copy()
    outlier[0, 0, 0] = 50.0  # widens the estimate's own range a lot
    # With the reconstruction's range (the paper's code) one hot pixel inflates SSIM ...
    paper_style = metrics.ssim(outlier, reference, data_range=outlier.max() - outlier.min())
    assert paper_style > metrics.ssim(estimate, reference) + 0.05
    # ... with the reference's range (ours) it can only cost.
    assert metrics.ssim(outlier, reference) <= metrics.ssim(estimate, reference)


def test_ssim_frames_and_short_sequences(reference):
    rng = np.random.default_rng(4)
    estimate = reference + 0.05 * rng.standard_normal(reference.shape)
    per_frame = metrics.ssim_frames(estimate, reference)
    assert per_frame.shape == (reference.shape[0],)
    assert np.all((per_frame > 0) & (per_frame < 1))
    # Fewer frames than the 3D window: the volume SSIM is the mean frame SSIM.
    short_per_frame = metrics.ssim_frames(estimate[:3], reference[:3])
    assert metrics.ssim(estimate[:3], reference[:3]) == pytest.approx(short_per_frame.mean())
    # A single 2D frame is accepted as one frame.
    volume_range = reference.max() - reference.min()
    assert metrics.ssim(estimate[0], reference[0], data_range=volume_range) == pytest.approx(per_frame[0])


def test_torch_tensors_are_accepted(reference):
    estimate = reference + 0.01
    tensor = torch.tensor(estimate, requires_grad=True)
    assert metrics.psnr(tensor, torch.from_numpy(reference)) == pytest.approx(metrics.psnr(estimate, reference))


def test_format_table_lists_rows_and_columns(reference):
    rows = {
        "fbp-window": metrics.evaluate(reference + 0.1, reference),
        "perfect": {**metrics.evaluate(reference, reference), "seconds": 1.5},
    }
    table = metrics.format_table(rows).splitlines()
    assert table[0] == (
        "|  | PSNR (dB) | mean frame PSNR (dB) | SSIM | MAE | HFEN | HFEN (normalised) | seconds |"
    )
    assert len(table) == 4
    assert table[2].startswith("| fbp-window | ")
    assert table[2].endswith(" - |")  # no wall time in that row
    assert "| perfect | inf | inf | 1.0000 | 0 | 0 | 0.0000 | 1.5 |" == table[3]


@pytest.mark.parametrize(
    "x, ref, message",
    [
        (np.zeros((2, 8, 8)), np.zeros((2, 8, 9)), "must match"),
        (np.full((2, 8, 8), np.nan), np.ones((2, 8, 8)), "x contains NaN"),
        (np.ones((2, 8, 8)), np.full((2, 8, 8), np.inf), "ref contains NaN or infinite"),
        (np.ones((2, 8, 8), dtype=complex), np.ones((2, 8, 8)), "complex"),
        (np.ones(5), np.arange(5.0), r"\(P, H, W\)"),
    ],
)
def test_bad_inputs_give_clear_errors(x, ref, message):
    with pytest.raises(ValueError, match=message):
        metrics.evaluate(x, ref)


def test_a_constant_reference_uses_its_peak_as_data_range():
    reference = np.full((2, 8, 8), 2.0)
    assert metrics.psnr(reference + 0.2, reference) == pytest.approx(20 * np.log10(2.0 / 0.2))
    assert metrics.psnr(np.full((2, 8, 8), 0.1), np.zeros((2, 8, 8))) == pytest.approx(20.0)
    assert np.isfinite(list(metrics.evaluate(reference + 0.2, reference).values())).all()


def test_bad_parameters_are_refused(reference):
    with pytest.raises(ValueError, match="data_range must be a positive"):
        metrics.psnr(reference, reference, data_range=0)
    with pytest.raises(ValueError, match="sigma must be a positive"):
        metrics.hfen(reference, reference, sigma=-1)
    with pytest.raises(ValueError, match="at least one row"):
        metrics.format_table({})


def test_runner_scorer_equals_the_full_metrics_on_its_frames():
    from imaging.run.runner import SSIM_SAMPLED_FRAMES, ReferenceScorer

    rng = np.random.default_rng(5)
    reference = rng.random((37, 12, 12)).astype(np.float32)
    estimate = (reference + 0.1 * rng.standard_normal(reference.shape)).astype(np.float32)
    scorer = ReferenceScorer(reference)
    scores = scorer.score(estimate, with_ssim=True)
    assert scores["psnr"] == pytest.approx(metrics.psnr(estimate, reference), rel=1e-9)
    assert scores["psnr_frame_mean"] == pytest.approx(metrics.psnr_frames(estimate, reference).mean(), rel=1e-9)
    frames = scores["ssim_frames"]
    assert len(frames) == SSIM_SAMPLED_FRAMES and frames[0] == 0 and frames[-1] == 36
    full = metrics.ssim_frames(estimate, reference)
    assert scores["ssim_sampled"] == pytest.approx(full[frames].mean(), rel=1e-12)
    assert "ssim_sampled" not in scorer.score(estimate, with_ssim=False)
