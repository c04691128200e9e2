"""RED-PSM (Iskender, Klasky, Bresler, ICCV 2023 / IEEE TCI 2024): method "red-psm".

Problem, in normalised units (data divided by the robust object amplitude of the
initialisation, :func:`~imaging.solvers.psm.amplitude_scale`, so the object and the
denoiser input are about unit range; results are multiplied back)::

    min  (w/2) ||A(Lambda Psi^T) - g||^2 + lam * rho(f) + (xi/2)||Psi||^2 + (chi/2)||Lambda||^2
    s.t. f = Lambda Psi^T,   Psi = U z^T,
    rho(f) = 1/2 sum_p f_p^T (f_p - D(f_p))        (RED prior, D the learned denoiser)

with ``w = n / trace(A^T A)`` (unit average curvature of the data term, see
:func:`imaging.solvers.psm.data_weight`). All terms are sums, so ``lam`` and ``beta``
mean the same for any data amplitude, size, number of frames and modality. ADMM on the
scaled augmented Lagrangian ``L = Phi(Lambda, z; target = f - gamma) + lam rho(f)``:

1. PSM step: ``sweeps`` rounds of (``Lambda`` update by preconditioned CG, or exactly
   per k-space location for single-coil Cartesian MRI; exact ``z`` update; rescaling of
   the factors) on ``Phi`` with ``beta`` coupling to ``f - gamma``
   (:class:`~imaging.solvers.psm.PSMSubproblem`). Each part lowers ``L``. One sweep
   reaches the subproblem's minimum to 4 digits, where the official code's 25 Adam steps
   barely move it (``benchmarks/tune_red_psm.py psm-solvers``);
2. f step (the "efficient RED" fixed point): ``f <- (lam D(f) + beta (f_PSM + gamma)) /
   (lam + beta)``, ``red_iterations`` times, the denoiser run on all frames as batches;
3. dual step: ``gamma <- gamma + f_PSM - f``.

The result is, by default (``output="denoised"``), the denoiser's output on the last
iterate, ``D(f)`` (non-negative for tomography), kept from the last f step at no extra
denoiser pass: at the fixed point ``f`` equals the low-rank ``f_PSM`` and keeps its
residual artefacts, which one more denoising removes. On the tuning cases (seed 1, the
default cap) it gained +0.12 / +0.27 / +0.42 dB on the walnut at P = 64 / 128 / 256,
+0.01 / +0.08 / +0.18 dB on the material phantom and +0.48 dB on the cardiac cine (P = 128,
45 iterations) over returning ``f``, the official code's output (``output="f"``; section 10
of ``benchmarks/results/tune_red_psm.md``). For tomography (``nonnegative="auto"``: where the operator says
images are non-negative) the f step is projected onto ``f >= 0``: with the denoiser
output fixed, the f subproblem is an isotropic quadratic plus the indicator of the
non-negative orthant, solved exactly by clipping, and the dual step uses the clipped f,
so the iteration is ADMM with the constraint in the f block (the official code clips
``f_PSM`` inside its loss instead).

Defaults, re-tuned for the bias-free denoiser ``dncnn-v2`` (the default before ``dncnn-v3``) with
``benchmarks/tune_red_psm.py`` on tuning data only (seed 1, N=128, never the reported
seed 0; the table and its commands: ``benchmarks/results/tune_red_psm.md``): the order K
and the knots d follow the data (``order = knots = 0``,
:func:`~imaging.solvers.psm.model_size`: K = 6 / 8 / 10 and d = 16 / 24 / 24 at P = 64 / 128 /
256 with one view per frame; re-tuned for ``dncnn-v3``), so ``K+1 < d`` and the model is genuinely low-rank: on the 8-coil Cartesian cardiac
cine (P=128) d = 24 gave +1.1 dB over d = 11 after 20 iterations and d = 32 only 0.04 dB
more; on the walnut (P=128) +0.06 dB. ``cg_iterations = 0``: the operator's
:attr:`~imaging.operators.LinearOperator.lambda_cg_iterations` CG steps per Lambda
update, 16 for MRI (+0.44 dB over 8 on the cardiac cine after 20 iterations: its 8 of
128 lines make the Lambda step ill-conditioned) and 8 for tomography (the same iterates
as 16 on the walnut, at half the cost of the Lambda step). ``xi = chi = 0``: the operator's
:attr:`~imaging.operators.LinearOperator.psm_penalty`, 4 for tomography and 0.2 for MRI
(re-tuned for ``dncnn-v3``; with the automatic K and d, 4 instead of 0.2 gave +0.5 to +1.0 dB
on the tuning walnut and material at P = 64 / 128 / 256, and -0.45 dB on the cardiac cine).
``lam = 2.4``, ``beta = 0.8`` were kept: with v2, lam 1.2 / 4.8 / 9.6 gave -0.04 / +0.14 / +0.14 dB
on the walnut after 25 iterations but the larger values' primal residual stayed above
0.02 (slow ADMM convergence, so later stopping and longer runs), and on the cardiac cine
(lam, beta) = (2.4, 0.4) / (1.2, 0.4) were within 0.1 dB of (2.4, 0.8).

Translation of the official configuration (walnut, P=256: lam=5e-5, beta=1e-4,
xi=chi=1e-6 on a mean-squared data term over the pi-duplicated sinogram, an unsquared
``||f_PSM - f + gamma||`` coupling and mean-normalised penalties): the data weight per
measurement there is ``2/(N P)``; the unsquared coupling acts like a squared one of
weight ``beta / (2 ||r||)``, with ``||r|| ~ 20`` at the objects' scale, i.e.
``beta / w ~ 0.04``; ``lam / beta = 0.5`` enters the f step unchanged; the penalties
become ``< 1e-6`` relative to our data weight. The preset ``"paper"`` uses these values
(with 100 fixed iterations); the tuned defaults couple about 20 times more strongly.

Stopping without ground truth: after at least ``min_iter`` iterations, stop when both the
relative change ``||f_k - f_{k-1}|| / ||f_k||`` and the relative primal residual
``||f_PSM - f|| / ||f||`` are below ``tol``; otherwise stop at ``max_iter``. ``tol = 2e-3``
(was 4e-3) was chosen by replaying the rule on runs of 100 iterations without it (60 for
MRI) on the tuning cases with ``dncnn-v2`` (``tune_red_psm.py stopping``: within 0.19 dB of
each run's best). With the default ``dncnn-v3`` the runs improve for longer (0.9-2.4 dB
above v2 after 40 iterations) and the primal residual stays near 5e-3 on the walnut at
P = 256, so the rule seldom fires there: ``max_iter = 45`` (the P = 256 time budget of about
45 s on two cores) ends every tuning case within 0.19 dB of the best of 60-100 iterations
(the cardiac cine stops by the rule at 28). No semi-convergence: the last of 80-100
iterations is at most 0.09 dB below the best (section 7 of
``benchmarks/results/tune_red_psm.md``); lam 4.8 / beta 1.6 gave the same PSNR as 2.4 / 0.8
with ``dncnn-v3``. The cap is now ``max_iter = 0``, automatic (:func:`automatic_max_iter`):
the work of 45 iterations of 256 frames, between 45 and 100 iterations (100 / 90 / 45 at
P = 64 / 128 / 256), because an iteration's cost grows with P and the CT runs with fewer
views still climb at 45 (section 9).

The denoiser, ``denoiser = "auto"`` (:func:`automatic_denoiser`): the ensemble ``dncnn-e3``
(``dncnn-v3`` and two networks trained by the same command with seeds 1 and 2, one module
that averages their outputs) on up to 64 frames, ``dncnn-v3`` above. On the tuning cases
(seed 1) the ensemble ended +0.17 to +0.39 dB above ``dncnn-v3`` (section 13 of
``tune_red_psm.md``); an iteration with it costs 2.1-2.7 times as much, which only the
runs on few frames can afford within the time of the default P = 256 run.

``denoise_stride = s > 1`` is a cheaper schedule: in iteration ``i`` only the frames
``p`` with ``p % s == i % s`` are denoised, the others reuse their last denoiser output
(the f step decouples over frames, so this is a block-coordinate update of the f block).
With ``output="denoised"`` such a run returns that kept stack: each frame's latest denoiser
output, computed in one of the last ``s`` iterations.
The ``"fast"`` preset is the default cut at 20 iterations (it used ``s = 2`` for 18
iterations until the denoiser ran in bfloat16, which made the denoiser passes no longer
most of an iteration's time).

Coarse-to-fine start (tomography, grids larger than ``2 * coarse_size``): the run first
solves the same acquisition on the grid halved while it stays at least ``coarse_size``
(:meth:`~imaging.Measurements.on_coarser_grid`: pixels twice as wide, the same
detector), with the stopping rule above, then interpolates the spatial bases, ``f`` and
the dual to the next finer grid and runs ``refine_iterations`` iterations there, and so
on up to the data's grid; the history's ``grid_size`` says which grid each iteration
ran on, and the estimate of a coarser grid is reported interpolated to the full grid.
Without it the cost of an iteration grows with the pixels and the iterations the rule
needs grow too (34 / 55 / more than 80 at N = 128 / 256 / 512, walnut P = 256,
``benchmarks/results/scale.md``), and the larger grid's iterates are not better for it.
``refine_iterations = 3`` was chosen on the tuning walnut (seed 1, P = 256, N = 256:
``tune_red_psm.py grid --size 256 --set refine_iterations=8``, table in
``benchmarks/results/tune_red_psm.md``): after the coarse grid's 47 iterations (22.77 dB,
scored interpolated to N = 256) the fine grid's iterations gave 22.88 / 22.97 / 23.04 /
23.06 / 23.05 / 23.02 / 23.00 / 22.98 dB; at N = 512 (an experiment on the same seed) the
finest grid's iterates declined from the first, so 3 rather than 4. ``coarse_size = 128``
keeps runs on grids of up to 255 pixels as they were (the sizes the defaults were tuned
on).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
import warnings

import numpy as np
import torch
from torch import nn

from ..denoisers import denoise_frames, describe_module, load_denoiser
from ..denoisers.inference import (
    CPU_PIXELS_PER_CALL,
    PRECISIONS,
    denoise_layout,
    exact_patch_overlap,
    resolve_precision,
    working_bytes_per_pixel,
)
from ..denoisers.weights import SHIPPED_DENOISERS
from ..models.psm import PSMFactors, synthesize
from .registry import register
from .base import ParameterError, image_array, param
from .psm import AUTO_KNOTS, AUTO_ORDER, PSMFamilySolver, PSMParams, penalty_param
from .psm.solver import norm_ratio, squared_norm
from .psm.subproblem import StackDifference, data_weight

#: Bytes of one float32 block of frames in the f and dual updates (the block's f_PSM,
#: denoiser output and update are a few such blocks).
F_STEP_BLOCK_BYTES = 16 * 2**20


def f_step_block_frames(stride: int, batch: int, frame_bytes: int) -> int:
    """Frames per block of RED-PSM's f and dual updates.

    A multiple of ``stride * batch`` (``denoise_stride`` times the images per denoiser
    call), so that the denoiser sees the same batches as on the whole stack, and about
    :data:`F_STEP_BLOCK_BYTES` per float32 block of frames of ``frame_bytes``.
    """
    unit = stride * batch
    return unit * max(1, F_STEP_BLOCK_BYTES // (unit * frame_bytes))


NONNEGATIVE_CHOICES = ("auto", "on", "off")

#: Default ``coarse_size``: grids of up to 2 x 128 pixels are solved first at 128, where
#: the stopping rule was tuned (benchmarks/tune_red_psm.py).
COARSE_SIZE = 128
#: Default ``refine_iterations`` (see the module docstring for the measurement).
REFINE_ITERATIONS = 3
#: The smallest ``coarse_size`` besides 0: a guard against grids of a few pixels (already a
#: start from 64 at N = 128 ended 1.3-2.7 dB below the plain run, tune_red_psm.md).
MIN_COARSE_SIZE = 16


def coarse_levels(measurements, coarse_size: int) -> int:
    """How many times the coarse-to-fine start halves the grid of ``measurements``: while
    :meth:`~imaging.Measurements.has_coarser_grid` and the halved size is at least
    ``coarse_size`` (0: never)."""
    levels = 0
    size = measurements.slice_shape[0]
    while coarse_size and measurements.has_coarser_grid and size % 2 == 0 and size // 2 >= coarse_size:
        levels += 1
        size //= 2
    return levels


def upsample_frames(frames: torch.Tensor) -> torch.Tensor:
    """(B, N, M) real frames on the grid of twice the size, (B, 2N, 2M), by bilinear
    interpolation (the inverse of 2 x 2 averaging for smooth images)."""
    return torch.nn.functional.interpolate(
        frames.unsqueeze(1), scale_factor=2, mode="bilinear", align_corners=False
    ).squeeze(1)

#: How RED-PSM applies its (real-image) denoiser to complex frames (see :meth:`RedPSMSolver._denoise`).
COMPLEX_DENOISING = ("smooth-phase", "real-imag", "magnitude")
#: What a run returns: the denoiser's output on the last iterate, or the RED variable f.
OUTPUTS = ("denoised", "f")
#: Values of ``denoiser_precision``: "auto" and :data:`imaging.denoisers.inference.PRECISIONS`.
DENOISER_PRECISIONS = ("auto",) + PRECISIONS


#: ``max_iter = 0``: as many iterations as ``ITERATION_BUDGET_ITERATIONS`` iterations of
#: ``ITERATION_BUDGET_FRAMES`` frames cost (an iteration's cost grows with the frames P),
#: at least that many and at most ``MAX_AUTO_ITERATIONS`` (:func:`automatic_max_iter`).
ITERATION_BUDGET_ITERATIONS = 45
ITERATION_BUDGET_FRAMES = 256
MAX_AUTO_ITERATIONS = 100


def automatic_max_iter(n_frames: int) -> int:
    """red-psm's iteration cap for ``max_iter = 0`` on P = ``n_frames`` frames.

    45 iterations of 256 frames are the time budget of the benchmark case (N = 128, about
    45 s on two cores in float32, 29-42 s in three quiet runs with bfloat16 denoising); fewer frames make an
    iteration cheaper, and the CT runs with fewer views still climb at 45 iterations
    (tuning walnut / material, seed 1: +0.10 / +0.22 dB at P = 64 and +0.07 / +0.17 dB at
    P = 128 from 45 to 100 iterations, none drifting; benchmarks/results/tune_red_psm.md,
    section 9). So the cap is ``45 * 256 / P`` between 45 and 100.
    """
    budget = ITERATION_BUDGET_ITERATIONS * ITERATION_BUDGET_FRAMES
    return max(ITERATION_BUDGET_ITERATIONS, min(MAX_AUTO_ITERATIONS, round(budget / max(1, n_frames))))


#: ``denoiser = "auto"``: the ensemble ``dncnn-e3`` up to this many frames, ``dncnn-v3`` above
#: (:func:`automatic_denoiser`).
AUTO_ENSEMBLE_MAX_FRAMES = 64


def automatic_denoiser(n_frames: int) -> str:
    """The shipped denoiser red-psm's ``denoiser = "auto"`` runs on P = ``n_frames`` frames.

    The ensemble ``dncnn-e3`` (``dncnn-v3`` and two networks trained like it with seeds 1
    and 2, outputs averaged) gave +0.17 to +0.39 dB over ``dncnn-v3`` on the tuning cases at
    P = 64, 128 and 256 (benchmarks/results/tune_red_psm.md, section 13), but an iteration
    with it costs 2.1 times as much at P = 64 and 2.7 times at P = 128 (its three networks
    are most of the work). It is used where a default run with it stays within the time of
    the default P = 256 run (about 45 s on two cores): up to 64 frames (the seed-0 walnut and
    material at P = 64: 36 and 41 s on a machine where ``dncnn-v3`` took 18 and 28 s). At
    P = 128 it took 68 and 130 s there, and at P = 256, 23 iterations of it (the same time
    as 45 of ``dncnn-v3``) end 0.23 dB below ``dncnn-v3`` on the tuning walnut. (Those
    times are of the grouped-convolution forward; the members now run one after another,
    3.2 instead of 3.6 times ``dncnn-v3`` per frame: benchmarks/results/denoiser.md.)
    """
    return "dncnn-e3" if n_frames <= AUTO_ENSEMBLE_MAX_FRAMES else "dncnn-v3"


def resolve_denoiser_name(name: str, n_frames: int) -> str:
    """``name`` with ``"auto"`` replaced by :func:`automatic_denoiser` for ``n_frames``."""
    return automatic_denoiser(n_frames) if name == "auto" else name


@dataclasses.dataclass
class RedPSMParams(PSMParams):
    """Parameters of RED-PSM (the PSM ones plus the RED and ADMM weights)."""

    max_iter: int = param(
        0,
        f"maximum number of outer ADMM iterations (0: the work of {ITERATION_BUDGET_ITERATIONS} iterations of "
        f"{ITERATION_BUDGET_FRAMES} frames, between {ITERATION_BUDGET_ITERATIONS} and {MAX_AUTO_ITERATIONS}: "
        "100 / 90 / 45 at P = 64 / 128 / 256; the stopping rule often ends MRI runs earlier, CT runs seldom)",
        minimum=0,
    )
    order: int = param(
        0,
        f"PSM order K: the model has K+1 spatial/temporal basis functions (0: from the views measured, "
        f"round(2 log2(V/8)) for V views in all, at most {AUTO_ORDER}: 6 / 8 / 10 for 64 / 128 / 256 views)",
        symbol="K",
        minimum=0,
        basic=True,
    )
    knots: int = param(
        0,
        f"knots d per temporal basis function (0: a knot every four frames, P // 4, between K+1 and {AUTO_KNOTS}, "
        "so K+1 < d: a genuinely low-rank model; ignored for interpolation 'direct')",
        symbol="d",
        minimum=0,
    )
    cg_iterations: int = param(
        0,
        "preconditioned CG iterations of each Lambda update (0: the modality's, 8 for tomography, 16 for MRI)",
        label="CG iterations",
        minimum=0,
    )
    xi: float = penalty_param("xi", 0.0)
    chi: float = penalty_param("chi", 0.0)
    lam: float = param(
        2.4,
        "RED weight lambda (normalised objective: the data term has unit mean curvature)",
        label="regularisation",
        symbol="λ",
        minimum=0.0,
        basic=True,
    )
    beta: float = param(0.8, "ADMM penalty beta coupling f and the PSM frames", label="ADMM penalty", symbol="β", minimum=0.0)
    red_iterations: int = param(1, "RED fixed-point iterations per f step (one denoiser pass each)", minimum=1)
    denoise_stride: int = param(1, "denoise every s-th frame per iteration, rotating (1: all frames)", minimum=1)
    denoiser: str = param(
        "auto",
        f"denoiser: a shipped name or a path to a weights file (Python API: also a torch.nn.Module); auto: the "
        f"ensemble dncnn-e3 up to {AUTO_ENSEMBLE_MAX_FRAMES} frames (twice the cost per iteration), dncnn-v3 (the "
        "default) above",
        suggestions=("auto", *SHIPPED_DENOISERS),
    )
    patch_size: int = param(
        0,
        "denoise in patches of this size (0: whole frames, or patches of 256 where one frame's denoiser "
        "activations would exceed 256 MiB)",
        unit="pixels",
        minimum=0,
    )
    denoise_batch: int = param(
        0,
        "frames (or patches) per denoiser call (0: as many as fit 256 MiB, at most 8, and on the CPU at most "
        f"{CPU_PIXELS_PER_CALL} pixels, which keeps a call in the caches)",
        minimum=0,
    )
    denoiser_precision: str = param(
        "auto",
        "arithmetic of the denoiser's layers: auto (bfloat16 on CPUs that compute it natively, AVX512-BF16 or "
        "AMX, else float32), float32, bfloat16",
        choices=DENOISER_PRECISIONS,
    )
    nonnegative: str = param(
        "auto",
        "project f onto f >= 0 in the f step: auto (where the modality's images are non-negative), on, off",
        choices=NONNEGATIVE_CHOICES,
    )
    complex_denoising: str = param(
        "smooth-phase",
        "complex images (MRI): remove the frame's smoothed phase and denoise the real part (smooth-phase), "
        "denoise the real and imaginary parts as two images (real-imag), or the magnitude keeping the phase "
        "(magnitude)",
        choices=COMPLEX_DENOISING,
    )
    phase_smoothing: float = param(
        2.0, "smooth-phase: Gaussian width of the phase removed before denoising", unit="pixels", minimum=0.0
    )
    output: str = param(
        "denoised",
        "what the run returns: the denoiser's output on the last iterate (denoised; non-negative for "
        "tomography) or the RED variable f (the official code's output)",
        choices=OUTPUTS,
    )
    tol: float = param(2e-3, "stop when relative change of f and primal residual are both below tol")
    min_iter: int = param(5, "iterations before the stopping rule may stop the run", minimum=0)
    coarse_size: int = param(
        COARSE_SIZE,
        "coarse-to-fine start (tomography): solve first on the grid halved while it stays at least this size, "
        "then refine on each finer grid (0: off; else at least 16)",
        unit="pixels",
        minimum=0,
    )
    refine_iterations: int = param(
        REFINE_ITERATIONS, "iterations on each finer grid after the coarse-to-fine start's coarse solve", minimum=1
    )

    def __post_init__(self):
        # An in-memory module is kept aside and the field records its description
        # (denoisers.describe_module), so the parameters stay JSON for the history, the
        # result files and the checkpoints.
        self.denoiser_module: nn.Module | None = None
        if isinstance(self.denoiser, nn.Module):
            self.denoiser_module = self.denoiser
            self.denoiser = describe_module(self.denoiser)
        elif isinstance(self.denoiser, os.PathLike):
            self.denoiser = os.fspath(self.denoiser)

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.denoiser, str):
            raise ParameterError(
                f"denoiser must be a shipped name, a path or a torch.nn.Module, got {type(self.denoiser).__name__}"
            )
        for name in ("lam", "beta"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ParameterError(f"{name} must be a finite number >= 0, got {value}")
        if self.beta <= 0:
            raise ParameterError(f"beta must be > 0 (it couples f to the PSM frames), got {self.beta}")
        if self.red_iterations < 1 or self.denoise_stride < 1:
            raise ParameterError(
                f"red_iterations and denoise_stride must be >= 1, got {self.red_iterations}, {self.denoise_stride}"
            )
        if self.denoise_batch < 0:
            raise ParameterError(f"denoise_batch must be >= 0 (0: automatic), got {self.denoise_batch}")
        if self.patch_size < 0:
            raise ParameterError(f"patch_size must be >= 0 (0: automatic), got {self.patch_size}")
        if self.min_iter < 0:
            raise ParameterError(f"min_iter must be >= 0, got {self.min_iter}")
        if self.coarse_size != 0 and self.coarse_size < MIN_COARSE_SIZE:
            raise ParameterError(f"coarse_size must be 0 (off) or >= {MIN_COARSE_SIZE} pixels, got {self.coarse_size}")
        if self.refine_iterations < 1:
            raise ParameterError(f"refine_iterations must be >= 1, got {self.refine_iterations}")
        if not math.isfinite(self.phase_smoothing) or self.phase_smoothing <= 0:
            raise ParameterError(f"phase_smoothing must be a positive number of pixels, got {self.phase_smoothing}")


def keeps_denoiser_output(params: RedPSMParams) -> bool:
    """Whether a run keeps its last denoiser output as a (P, N, N) stack: a strided schedule
    reuses it, ``output="denoised"`` returns it."""
    return params.denoise_stride > 1 or params.output == "denoised"


def smooth_phase(frames: torch.Tensor, width: float) -> torch.Tensor:
    """Unit-modulus phase of the Gaussian-smoothed frames (complex (P, H, W)), width in pixels."""
    height, columns = frames.shape[-2:]
    frequencies = [torch.fft.fftfreq(n, device=frames.device) for n in (height, columns)]
    response = torch.exp(-2.0 * (math.pi * width) ** 2 * (frequencies[0][:, None] ** 2 + frequencies[1][None, :] ** 2))
    smoothed = torch.fft.ifft2(torch.fft.fft2(frames) * response)
    magnitude = smoothed.abs()
    return torch.where(magnitude > 0, smoothed / magnitude.clamp_min(1e-30), torch.ones_like(smoothed))


def _denoiser_for_estimate(params: RedPSMParams, n_frames: int) -> nn.Module | None:
    """The denoiser of ``params`` on ``n_frames`` frames for the memory model (None where it
    cannot be loaded)."""
    if params.denoiser_module is not None:
        return params.denoiser_module
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the solver warns about the weights when it loads them
            return load_denoiser(resolve_denoiser_name(params.denoiser, n_frames))
    except (FileNotFoundError, ValueError):
        return None


@register
class RedPSMSolver(PSMFamilySolver):
    """RED-PSM: bilinear ADMM coupling the PSM model to a denoiser-regularised copy ``f``."""

    name = "red-psm"
    Params = RedPSMParams
    # Memory model (imaging/solvers/memory.py), fitted to benchmarks/memory_model.py: 40 MiB
    # fixed (denoiser, kernels' first-use buffers); the Lambda step's peak holds f, the
    # dual and w A^T g, the synthesised frames and their back-projection (the target
    # f - dual is never formed): 6 stacks once they are mapped (estimate / measured 1.07
    # at N = 128, P = 1024), 16 while the allocator's heap serves them (below 32 MiB); a
    # kept denoiser output adds one (denoise_stride > 1 or output "denoised"). Multi-coil MRI: coil-image
    # stacks instead (multicoil_coil_copies, fitted on 8-coil complex data, N = 64-128).
    fixed_bytes = 40 * 2**20
    state_copies = 6
    heap_state_copies = 16
    multicoil_includes_stacks = True
    multicoil_coil_copies = {"cartesian": 0.9, "non-cartesian": 2.7}
    multicoil_fixed_bytes = 24 * 2**20

    @classmethod
    def state_bytes(cls, size, params: RedPSMParams) -> int:
        """The larger of the Lambda step's peak and the f step's (state, blocks, denoiser)."""
        kept_denoised = size.stack_bytes if keeps_denoiser_output(params) else 0
        denoiser = _denoiser_for_estimate(params, size.n_frames)
        patch, batch = denoise_layout(denoiser, size.slice_shape, params.patch_size, params.denoise_batch)
        image_pixels = size.pixels if patch is None else min(patch, size.slice_shape[0]) * min(patch, size.slice_shape[1])
        frame_bytes = (8 if size.modality == "mri" else 4) * size.pixels
        block = min(size.n_frames, f_step_block_frames(params.denoise_stride, batch, frame_bytes))
        # f, dual, w A^T g, the kept output; per block: f_PSM, anchor, denoiser output, new f and temporaries.
        f_step = (
            (3 * size.stack_bytes + kept_denoised)
            + 6 * block * frame_bytes
            + working_bytes_per_pixel(denoiser) * batch * image_pixels
        )
        return max(super().state_bytes(size, params) + kept_denoised, int(f_step))
    presets = {
        # The default cut at 20 iterations: 0.55 dB below its 45 on the tuning walnut P = 256
        # (tune_red_psm.md, section 9). With the denoiser in bfloat16 an iteration that
        # denoises every frame gains more per second than two that denoise half of them
        # each (18 / 24 iterations at stride 1 / 2 take the same time: 27.37 / 27.16 dB).
        "fast": {"max_iter": 20},
        # The defaults of imaging 0.1 (the v1 denoiser with biases, K+1 = d = 11, lam 2.4,
        # beta 0.8, xi = chi = 0.2, no non-negativity, tol 4e-3 within 30 iterations, the
        # estimate f), kept so that benchmarks measure the old and the new defaults in one run.
        "previous": {
            "denoiser": "dncnn-v1",
            "order": 10,
            "knots": 11,
            "cg_iterations": 8,
            "lam": 2.4,
            "beta": 0.8,
            "xi": 0.2,
            "chi": 0.2,
            "nonnegative": "off",
            "max_iter": 30,
            "tol": 4e-3,
            "min_iter": 5,
            "coarse_size": 0,
            "denoiser_precision": "float32",
            "output": "f",
        },
        # The official walnut P=256 configuration translated to the normalised objective
        # (see the module docstring): K=10, d=11, lam/beta = 0.5, negligible Frobenius
        # penalties, a fixed count of 100 outer iterations, one RED iteration, 25 inner
        # (here: CG) steps, the estimate f.
        "paper": {
            "order": 10,
            "knots": 11,
            "lam": 0.02,
            "beta": 0.04,
            "xi": 1e-6,
            "chi": 1e-6,
            "max_iter": 100,
            "tol": 0.0,
            "red_iterations": 1,
            "cg_iterations": 25,
            "coarse_size": 0,
            "denoiser_precision": "float32",
            "output": "f",
        },
    }

    def __init__(self, measurements, params: RedPSMParams, device="cpu"):
        super().__init__(measurements, params, device)
        #: The denoiser's name, ``params.denoiser`` with "auto" resolved for the frames P.
        self.denoiser_name = resolve_denoiser_name(params.denoiser, measurements.n_frames)
        denoiser = self._denoiser_on_device(params)
        # Channels-last convolutions in batches of 8 frames of 128^2 ran the shipped DnCNN 2.9 times
        # faster on the 2-core CPU (1.3 s instead of 3.7 s for 256 frames of 128^2; same
        # output to 3e-7), and the denoiser is most of an iteration's cost.
        self.denoiser = denoiser.to(memory_format=torch.channels_last)
        # Whole frames or patches, and images per call, within the denoiser's working memory.
        self.denoise_patch, self.denoise_batch = denoise_layout(
            self.denoiser, measurements.slice_shape, params.patch_size, params.denoise_batch, device=self.operator.device
        )
        #: The denoiser's arithmetic, ``params.denoiser_precision`` resolved for this device.
        self.denoiser_precision = resolve_precision(params.denoiser_precision, self.operator.device)
        self.nonnegative = params.nonnegative == "on" or (
            params.nonnegative == "auto" and self.operator.nonnegative_images
        )
        if self.nonnegative and self.operator.is_complex_domain:
            raise ParameterError("nonnegative='on' does not apply to complex images (MRI); use 'auto' or 'off'")
        self.f: torch.Tensor | None = None
        self.dual: torch.Tensor | None = None
        self.denoised: torch.Tensor | None = None
        self.primal_residual = math.inf
        #: The coarse-to-fine start: the solver of the same acquisition on the grid of half
        #: the size (itself with a coarser one where ``coarse_size`` allows), run first
        #: and until its own stop; None once this grid took over (or without the start).
        self.coarse: RedPSMSolver | None = None
        #: Outer iterations run on coarser grids, once this grid took over from them.
        self.refined_at: int | None = None
        if params.max_iter == 0:
            self.max_iter = automatic_max_iter(measurements.n_frames)
        if coarse_levels(measurements, params.coarse_size):
            coarse_params = copy.copy(params)  # a shallow copy keeps an in-memory denoiser module
            coarse_params.max_iter = max(1, self.max_iter - params.refine_iterations)
            self.coarse = type(self)(measurements.on_coarser_grid(), coarse_params, device=device)

    def _denoiser_on_device(self, params: RedPSMParams) -> nn.Module:
        """The denoiser of ``params`` on the run's device, in evaluation mode."""
        device = self.operator.device
        if params.denoiser_module is not None:
            # A copy: the run must not move, re-layout or switch the mode of the caller's module.
            denoiser = copy.deepcopy(params.denoiser_module).to(device).eval()
            return denoiser.requires_grad_(False)
        if params.denoiser.startswith("module:"):
            raise ParameterError(
                f"denoiser {params.denoiser!r} records an in-memory module; pass the torch.nn.Module itself"
            )
        try:
            return load_denoiser(self.denoiser_name, device=device)
        except (FileNotFoundError, ValueError) as exc:
            raise ParameterError(f"cannot load denoiser {self.denoiser_name!r}: {exc}") from None

    def _after_initialise(self, frames: torch.Tensor) -> None:
        self.f = self.factors.frames().contiguous()
        self.dual = torch.zeros_like(self.f)
        self.denoised = None

    def _mask(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.support is None else x * self.support

    @property
    def _keeps_denoised(self) -> bool:
        return keeps_denoiser_output(self.params)

    def _denoise(self, frames: torch.Tensor) -> torch.Tensor:
        """The denoiser on (B, N, N) frames; complex frames as ``complex_denoising`` says.

        ``smooth-phase`` (default) removes the phase of the frames smoothed by a Gaussian of
        ``phase_smoothing`` pixels, denoises the real part and restores the phase (the
        imaginary remainder is treated as noise); ``real-imag`` denoises the two parts as
        images; ``magnitude`` the magnitude, keeping the phase. The shipped denoiser is
        trained on non-negative images: the real and imaginary parts of a phase-wrapped
        image are not, and ``real-imag`` does poorly (docs/design.md, complex images).
        """

        def denoise(images: torch.Tensor) -> torch.Tensor:
            return denoise_frames(
                self.denoiser,
                images,
                patch_size=self.denoise_patch,
                patch_overlap=exact_patch_overlap(self.denoiser),
                batch_size=self.denoise_batch,
                precision=self.denoiser_precision,
            )

        if not frames.is_complex():
            return denoise(frames)
        if self.params.complex_denoising == "smooth-phase":
            phase = smooth_phase(frames, self.params.phase_smoothing)
            return denoise((frames * phase.conj()).real.contiguous()) * phase
        if self.params.complex_denoising == "magnitude":
            magnitude = frames.abs()
            phase = torch.where(magnitude > 0, frames / magnitude.clamp_min(1e-30), torch.ones_like(frames))
            return denoise(magnitude.contiguous()) * phase
        # The real and imaginary parts as images of their own, in one batch.
        parts = denoise(torch.cat([frames.real, frames.imag]).contiguous())
        return torch.complex(parts[: len(frames)], parts[len(frames) :])

    def _block_frames(self) -> int:
        """Frames per block of the f and dual updates (:func:`f_step_block_frames`)."""
        return f_step_block_frames(self.params.denoise_stride, self.denoise_batch, self.f[0].numel() * self.f.element_size())

    def _f_and_dual_step(self) -> tuple[float, float, float]:
        """The f step and the dual step, one block of frames at a time (in place).

        ``f_PSM`` is synthesised per block, so the step holds a few blocks of frames
        besides ``f`` and the dual (and the kept denoiser output when
        ``denoise_stride > 1``). The f step decouples over frames, so this equals the
        update of the whole stack.

        Returns
        -------
        tuple of float
            ``||f_new - f_old||^2``, ``||f_new||^2`` and ``||f_PSM - f_new||^2``.
        """
        p = self.params
        stride = p.denoise_stride
        n_frames = self.f.shape[0]
        temporal = self.factors.temporal()
        # The first pass of a strided schedule denoises every frame (there is no earlier output).
        first_pass_all = self.denoised is None
        if self._keeps_denoised and self.denoised is None:
            self.denoised = torch.empty_like(self.f)
        phase = self.iteration % stride
        change_sq = norm_sq = primal_sq = 0.0
        block = self._block_frames()
        for first in range(0, n_frames, block):
            frames = slice(first, min(n_frames, first + block))
            psm = self._mask(synthesize(self.factors.spatial, temporal[frames]))
            anchor = p.beta * (psm + self.dual[frames])
            previous = self.f[frames]
            f = previous
            for red_iteration in range(p.red_iterations):
                if stride == 1:
                    denoised = self._mask(self._denoise(f))
                    if self.denoised is not None:
                        self.denoised[frames] = denoised
                elif first_pass_all and red_iteration == 0:
                    denoised = self.denoised[frames]
                    denoised[:] = self._mask(self._denoise(f))
                else:
                    denoised = self.denoised[frames]
                    selected = torch.arange((phase - first) % stride, f.shape[0], stride, device=f.device)
                    denoised[selected] = self._mask(self._denoise(f[selected].contiguous()))
                f = self._f_step(denoised, anchor)
            change_sq += squared_norm(f - previous)
            norm_sq += squared_norm(f)
            primal_sq += squared_norm(psm - f)
            self.dual[frames] = self.dual[frames] + psm - f
            self.f[frames] = f
        return change_sq, norm_sq, primal_sq

    def _f_step(self, denoised: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """The RED fixed-point f update, on ``f >= 0`` when the run is non-negative.

        With the denoiser output held fixed the f subproblem is
        ``min (lam/2)||f - D||^2 + (beta/2)||f - (f_PSM + gamma)||^2`` (+ the indicator of
        ``f >= 0``): an isotropic quadratic, whose minimiser over the non-negative
        orthant is the clipped unconstrained one. The dual step then uses this f, as
        ADMM with the constraint set in the f block requires.
        """
        p = self.params
        f = (p.lam * denoised + anchor) / (p.lam + p.beta)
        return f.clamp_min_(0.0) if self.nonnegative else f

    def _coarse_step(self) -> dict[str, float]:
        """One iteration of the coarse-to-fine start on the coarser grid; when that grid's
        run stops, its state is carried to this grid (:meth:`_refine_from`)."""
        coarse = self.coarse
        entry = coarse.step()
        coarse.iteration += 1
        entry.setdefault("grid_size", float(coarse.measurements.slice_shape[0]))
        if coarse.converged() or coarse.iteration >= coarse.max_iter:
            start = time.perf_counter()
            self._refine_from(coarse)
            self.coarse = None
            self.refined_at = self.iteration + 1
            entry["refine_seconds"] = time.perf_counter() - start
        return entry

    def _refine_from(self, coarse: "RedPSMSolver") -> None:
        """Start this grid from the state of ``coarse``, the solver of half the size.

        The coarse grid's images have the values of this grid's images averaged over 2 x 2
        pixels, and its normalisation is kept, so the spatial bases, ``f`` and the scaled
        dual (the RED prior's gradient at the fixed point, a per-pixel quantity) are
        interpolated bilinearly; the temporal knots carry over unchanged. The data weight
        is this grid's own.
        """
        self.scale = coarse.scale
        self.data_weight = data_weight(self.operator, self.support)
        self.factors = PSMFactors(
            upsample_frames(coarse.factors.spatial), coarse.factors.knots.clone(), self.interpolation
        )
        self._build_problem()
        self.problem.rebalance(self.factors)
        self.f = self._mask(upsample_frames(coarse.f))
        self.dual = self._mask(upsample_frames(coarse.dual))
        self.denoised = None

    def step(self) -> dict[str, float]:
        if self.coarse is not None:
            return self._coarse_step()
        entry = self._ensure_initialised()
        p = self.params
        start = time.perf_counter()
        # The target f - dual is used through its projections only: never formed as a stack.
        target = StackDifference(self.f, self.dual)
        self.problem.sweep(self.factors, p.beta, target, p.sweeps, self.cg_iterations)
        psm_seconds = time.perf_counter() - start
        start = time.perf_counter()
        change_sq, norm_sq, primal_sq = self._f_and_dual_step()
        denoiser_seconds = time.perf_counter() - start
        self.previous_change = norm_ratio(change_sq, norm_sq)
        self.primal_residual = norm_ratio(primal_sq, norm_sq)
        psm_frames = self.factors.frames()
        if self.support is not None:
            psm_frames.mul_(self.support)
        entry.update(
            data_residual=self._data_residual(self.f),
            psm_data_residual=self._data_residual(psm_frames),
            relative_change=self.previous_change,
            primal_residual=self.primal_residual,
            psm_seconds=psm_seconds,
            denoiser_seconds=denoiser_seconds,
        )
        if self.refined_at is not None:
            entry["grid_size"] = float(self.measurements.slice_shape[0])
        return entry

    def converged(self) -> bool:
        """The stopping rule; on a grid refined from a coarser one also after
        ``refine_iterations`` iterations on it."""
        if self.coarse is not None:
            return False
        if self.refined_at is not None and self.iteration - self.refined_at >= self.params.refine_iterations:
            return True
        tol = self.params.tol
        return self.iteration >= self.params.min_iter and self.previous_change < tol and self.primal_residual < tol

    def estimate(self) -> np.ndarray:
        if self.coarse is not None:
            return image_array(upsample_frames(torch.from_numpy(self.coarse.estimate())))
        self._ensure_initialised()
        if self.params.output == "f" or self.denoised is None:  # before the first f step: f
            return image_array(self.f * self.scale)
        return image_array((self.denoised.clamp_min(0.0) if self.nonnegative else self.denoised) * self.scale)

    @property
    def estimate_is_interpolated(self) -> bool:
        return self.coarse is not None

    def extras(self) -> dict[str, np.ndarray]:
        if self.coarse is None:
            return super().extras()
        extras = self.coarse.extras()
        extras["spatial_bases"] = image_array(upsample_frames(torch.from_numpy(extras["spatial_bases"])))
        return extras

    def state_dict(self) -> dict:
        if self.coarse is not None:
            return {"iteration": self.iteration, "coarse": self.coarse.state_dict()}
        state = super().state_dict()
        if self.refined_at is not None:
            state["refined_at"] = self.refined_at
        if self.f is not None:
            state.update(f=self.f.cpu(), dual=self.dual.cpu(), primal_residual=self.primal_residual)
            if self.denoised is not None:
                state["denoised"] = self.denoised.cpu()
        return state

    def load_state_dict(self, state: dict) -> None:
        if "coarse" in state:
            if self.coarse is None:
                raise ValueError("the state is of a coarse-to-fine start, this run has none")
            self.iteration = int(state["iteration"])
            self.coarse.load_state_dict(state["coarse"])
            return
        # A state past the coarse grids (or of a run without them).
        self.coarse = None
        super().load_state_dict(state)
        self.refined_at = int(state["refined_at"]) if "refined_at" in state else None
        if "f" in state:
            device = self.operator.device
            frames_shape, frames_dtype = self.operator.domain_shape, self.operator.domain_dtype
            for name in ("f", "dual", "denoised"):
                if name in state and (tuple(state[name].shape) != frames_shape or state[name].dtype != frames_dtype):
                    raise ValueError(
                        f"{name!r} is {state[name].dtype} {tuple(state[name].shape)}, this run's frames are "
                        f"{frames_dtype} {frames_shape}"
                    )
            self.f = state["f"].to(device)
            self.dual = state["dual"].to(device)
            # Kept only where the run keeps it (older checkpoints hold it always).
            keep = "denoised" in state and self._keeps_denoised
            self.denoised = state["denoised"].to(device) if keep else None
            self.primal_residual = float(state["primal_residual"])
