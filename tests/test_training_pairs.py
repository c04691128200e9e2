"""Denoiser training pairs from intermediate reconstructions of generated dynamic objects."""

import math

import numpy as np

from imaging.phantoms import animate
from imaging.run.training_pairs import dynamic_object_measurements, reconstruction_pairs


def test_animate_moves_a_static_image_smoothly_inside_the_disk():
    yy, xx = np.mgrid[:32, :32] - 15.5
    image = ((yy / 9) ** 2 + (xx / 6) ** 2 < 1).astype(np.float32)
    movie = animate(image, frames=8, seed=3)
    assert movie.shape == (8, 32, 32) and movie.dtype == np.float32
    assert movie.min() >= 0 and movie.max() <= 1
    assert not np.allclose(movie[0], movie[4])  # it moves
    assert np.abs(movie.sum(axis=(1, 2)) / image.sum() - 1).max() < 0.15  # and stays about the same object
    np.testing.assert_array_equal(movie, animate(image, frames=8, seed=3))


def test_dynamic_objects_are_measured_without_inverse_crime():
    tomography = dynamic_object_measurements(32, 16, seed=4, modality="tomography")
    assert tomography.sinogram.shape == (16, 1, 32) and tomography.ground_truth.shape == (16, 32, 32)
    mri = dynamic_object_measurements(32, 16, seed=4, modality="mri")
    assert mri.kspace.shape == (16, 1, 32, 32)


def test_reconstruction_pairs_are_grouped_scaled_reconstructions():
    pairs = reconstruction_pairs(n_objects=2, size=32, frames=16, seed=7, frames_per_iterate=3, mri_fraction=0.5)
    # Two objects, each: psm iterations (1, 2, 4, 6) and (1, 3), three frames each.
    assert pairs.inputs.shape == (2 * 6 * 3, 32, 32) and pairs.targets.shape == pairs.inputs.shape
    assert sorted(set(pairs.groups.tolist())) == [0, 1]
    assert pairs.record["generator"] == "imaging.run.training_pairs.reconstruction_pairs"
    # Inputs are imperfect reconstructions of their targets, on the solver's unit scale.
    error = np.mean((pairs.inputs - pairs.targets) ** 2)
    assert 0 < error < np.mean(pairs.targets**2)
    assert 0.5 < np.quantile(np.abs(pairs.targets), 0.999) < 2.0
    again = reconstruction_pairs(n_objects=2, size=32, frames=16, seed=7, frames_per_iterate=3, mri_fraction=0.5)
    np.testing.assert_array_equal(pairs.inputs, again.inputs)
    assert math.isfinite(float(pairs.inputs.sum()))


def test_red_psm_pair_runs_add_red_psm_iterates_closer_to_the_truth():
    from imaging.cli.train_denoiser import PAIR_RUN_SETS
    from imaging.run.training_pairs import PAIR_RUNS, RED_PSM_RUN

    assert tuple(PAIR_RUNS) == PAIR_RUN_SETS  # the CLI's choices name every set
    method, params, kept = RED_PSM_RUN
    short = (method, {**params, "max_iter": 4}, (1, 4))  # the same run, cut short for the test
    pairs = reconstruction_pairs(n_objects=1, size=32, frames=16, seed=7, frames_per_iterate=3, mri_fraction=0.0,
                                 runs=PAIR_RUNS["psm"][:1] + (short,))
    assert pairs.inputs.shape == ((4 + 2) * 3, 32, 32)
    assert pairs.record["runs"][-1][0] == "red-psm" and pairs.record["runs"][-1][1]["denoiser"] == "dncnn-v2"
    error = np.mean((pairs.inputs - pairs.targets) ** 2, axis=(1, 2))
    # The denoised iterates are nearer their clean frames than the first plain PSM fit.
    assert error[-3:].mean() < error[:3].mean()
