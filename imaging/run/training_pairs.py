"""Denoiser training pairs made of the intermediate reconstructions RED-PSM denoises.

Inside RED-PSM the denoiser is not given noisy photographs but the current estimate of
a dynamic reconstruction: a low-rank (PSM) fit of one view per frame, with its smeared
motion, streaks and noise. :func:`reconstruction_pairs` makes such inputs, paired with
their clean frames, from *generated* dynamic objects (never the phantoms or seeds the
benchmarks report): a random static object of
:func:`imaging.denoisers.generate_static_objects` on a grid twice as fine, moved by
:func:`imaging.phantoms.animate`, measured with the fine-grid protocol of
:mod:`imaging.simulate` (tomography, one view per frame in bit-reversal order; or
Cartesian MRI with a variable-density k-t mask), and reconstructed by the listed
methods; every listed iteration of every run gives a few frames. The estimate and the
clean frames are divided by the same scale, the one the solver normalises by (so the
inputs are on the scale RED-PSM's denoiser sees).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from ..denoisers.training_data import FAMILIES, ImagePairs, generate_static_objects
from ..phantoms import animate
from ..schedules import kt_mask, view_angles
from ..simulate import FINE_GRID_FACTOR, simulate_mri, simulate_tomography
from .runner import iterate

#: Methods and parameters whose iterates become pair inputs, and the iterations kept. The
#: parameters are spelled out so that a change of the methods' defaults does not change
#: the pairs (and the weights trained on them).
_PSM = {"order": 10, "knots": 11, "cg_iterations": 8, "tol": 0.0}
DEFAULT_RUNS = (
    ("psm", {**_PSM, "xi": 10.0, "chi": 10.0, "max_iter": 6}, (1, 2, 4, 6)),
    ("psm", {**_PSM, "xi": 1.0, "chi": 1.0, "max_iter": 3}, (1, 3)),
)
#: A red-psm run whose iterates are what a denoiser inside red-psm actually meets: the PSM
#: fit after the denoiser has already removed part of the artefacts (milder, smoother
#: errors than a plain PSM fit's). It denoises with the shipped ``dncnn-v2`` in float32, named
#: here so that the pairs do not change with the default denoiser or the CPU; K = 10 and d = min(24, P) (the
#: knots are capped at the frames P of the objects) are what the automatic choice of the time
#: gave (``dncnn-v3`` was trained on these, P = 64). Its pairs are the iterates f
#: (``output="f"``): what the denoiser is applied to inside the loop.
RED_PSM_RUN = (
    "red-psm",
    {"order": 10, "knots": 24, "cg_iterations": 16, "lam": 2.4, "beta": 0.8, "xi": 0.2, "chi": 0.2,
     "tol": 0.0, "max_iter": 30, "denoiser": "dncnn-v2", "denoiser_precision": "float32", "output": "f"},
    (2, 5, 10, 20, 30),
)
#: The red-psm run of the seventh session's defaults: ``dncnn-v3`` with the automatic model
#: size and the operator's low-rank penalty (``order`` = ``knots`` = ``xi`` = ``chi`` = 0: K = 6,
#: d = 16 and xi = chi = 4 on the 64-frame tomography objects; K = 10, d = 16, xi = chi = 0.2
#: on the MRI ones). Its iterates f carry the milder, lower-rank errors a denoiser meets in
#: today's red-psm runs.
RED_PSM_V3_RUN = (
    "red-psm",
    {"order": 0, "knots": 0, "cg_iterations": 16, "lam": 2.4, "beta": 0.8, "xi": 0.0, "chi": 0.0,
     "tol": 0.0, "max_iter": 30, "denoiser": "dncnn-v3", "denoiser_precision": "float32", "output": "f"},
    (2, 5, 10, 20, 30),
)
#: Named sets of runs (``imaging train-denoiser --pair-runs``).
PAIR_RUNS = {
    "psm": DEFAULT_RUNS,
    "psm+red-psm": DEFAULT_RUNS + (RED_PSM_RUN,),
    "psm+red-psm-v3": DEFAULT_RUNS + (RED_PSM_V3_RUN,),
}


def _solver_scale(solver, estimate: np.ndarray) -> float:
    """The scale the solver divides the data by, or the 0.999 quantile of |estimate|."""
    scale = getattr(solver, "scale", None)
    if scale:
        return float(scale)
    return float(np.quantile(np.abs(estimate), 0.999)) or 1.0


def dynamic_object_measurements(size: int, frames: int, seed: int, modality: str, noise: float = 5e-3):
    """One generated dynamic object, measured without inverse crime.

    Parameters
    ----------
    size, frames : int
        Reconstruction grid N and frames P.
    seed : int
        Seed of the object, its motion, the schedule and the noise.
    modality : {"tomography", "mri"}
    noise : float
        Relative noise level (see :mod:`imaging.simulate`).

    Returns
    -------
    Measurements
        With ``ground_truth`` (P, N, N), the fine object block-averaged.
    """
    rng = np.random.default_rng(seed)
    fine_size = FINE_GRID_FACTOR * size
    family = FAMILIES[int(rng.integers(len(FAMILIES)))]
    static = generate_static_objects(1, fine_size, seed=int(rng.integers(2**31)), families=(family,))[0]
    movie = animate(static, frames, seed=int(rng.integers(2**31)))
    noise_seed = int(rng.integers(2**31))
    if modality == "tomography":
        angles = view_angles("bit-reversal", frames)
        return simulate_tomography(
            movie, angles, noise=noise, seed=noise_seed, grid_factor=FINE_GRID_FACTOR, projector="strip"
        )
    mask = kt_mask("variable-density", frames, (size, size), 8, center_lines=4, seed=noise_seed)
    return simulate_mri(movie, mask, noise=noise, seed=noise_seed, grid_factor=FINE_GRID_FACTOR)


def reconstruction_pairs(
    n_objects: int = 24,
    size: int = 64,
    frames: int = 64,
    seed: int = 1000,
    frames_per_iterate: int = 8,
    mri_fraction: float = 0.25,
    runs=DEFAULT_RUNS,
    noise: float = 5e-3,
    progress: bool = False,
) -> ImagePairs:
    """(intermediate reconstruction, clean frame) pairs of generated dynamic objects.

    Parameters
    ----------
    n_objects : int
        Dynamic objects; each is one group of the pairs.
    size, frames : int
        Reconstruction grid N and frames P of each object.
    seed : int
        Seed of everything (object ``i`` uses the seed sequence ``[seed, i]``).
    frames_per_iterate : int
        Frames (chosen at random) taken from each kept iterate.
    mri_fraction : float
        Expected fraction of the objects measured by MRI instead of tomography.
    runs : sequence of (method, parameters, iterations)
        Each object is reconstructed by every run; the estimates after the listed
        iterations become inputs. A run's ``knots`` are capped at ``frames``.
    noise : float
        Relative measurement noise.
    progress : bool
        Show a progress bar over the objects (the runs take minutes).

    Returns
    -------
    ImagePairs
        inputs/targets float32 (M, N, N), M = n_objects * (iterations kept) *
        frames_per_iterate; groups = the object index; the record says how they were made.
    """
    inputs, targets, groups = [], [], []
    for index in tqdm(range(n_objects), desc="training pairs", unit="object", disable=not progress):
        rng = np.random.default_rng([seed, index])
        modality = "mri" if rng.random() < mri_fraction else "tomography"
        measurements = dynamic_object_measurements(size, frames, int(rng.integers(2**31)), modality, noise)
        truth = measurements.ground_truth
        measurements.ground_truth = None  # the runs never see it
        for method, params, kept in runs:
            if params.get("knots"):  # at most one knot per frame on short objects
                params = {**params, "knots": min(params["knots"], frames)}
            run = iterate(measurements, method, threads=1, **params)
            for info in run:
                if info.iteration in kept:
                    # MRI estimates are complex; the generated objects are real (no phase),
                    # so the real part is the estimate of the object and the rest is noise.
                    estimate = np.real(info.estimate())
                    scale = _solver_scale(info.solver, estimate)
                    chosen = rng.choice(frames, size=min(frames_per_iterate, frames), replace=False)
                    inputs.append(estimate[chosen] / scale)
                    targets.append(truth[chosen] / scale)
                    groups.append(np.full(len(chosen), index))
    record = {
        "source": "intermediate reconstructions of generated dynamic objects",
        "generator": "imaging.run.training_pairs.reconstruction_pairs",
        "n_objects": n_objects,
        "size": size,
        "frames": frames,
        "seed": seed,
        "frames_per_iterate": frames_per_iterate,
        "mri_fraction": mri_fraction,
        "noise": noise,
        "protocol": "fine-grid",
        "runs": [[method, dict(params), list(kept)] for method, params, kept in runs],
        "note": "generated static objects moved by imaging.phantoms.animate; not the benchmark phantoms",
    }
    return ImagePairs(np.concatenate(inputs), np.concatenate(targets), np.concatenate(groups), record)
