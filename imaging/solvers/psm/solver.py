"""The PSM solvers: parameters, the set-up shared with RED-PSM, and the ``psm`` method.

:class:`PSMFamilySolver` builds what ``psm`` and ``red-psm`` share: the operator, the
initial frames (:mod:`.initialisation`), the amplitude normalisation, the data weight
and the :class:`~.subproblem.PSMSubproblem`; :class:`PSMSolver` is the PSM model alone,
alternating exact and CG minimisations of the data fit (the subproblem with no coupling).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import ClassVar

import numpy as np
import torch

from ...models.psm import INTERPOLATIONS, PSMFactors, interpolation_matrix, psm_from_frames, synthesize
from ..base import HEAP_STACK_LIMIT, ParameterError, Solver, SolverParams, image_array, param
from ..registry import register
from .initialisation import INITIALISATIONS, amplitude_scale, initial_frames
from .subproblem import GRAM_FROM_PROJECTIONS_ENTRIES, PSMSubproblem, data_weight


#: The most knots of the temporal splines when ``knots`` is 0 (automatic, red-psm's default;
#: :func:`model_size`). Measured with benchmarks/tune_red_psm.py on tuning seed 1 (table:
#: benchmarks/results/tune_red_psm.md): on the 8-coil Cartesian cardiac cine (P=128) 24
#: knots gave +1.1 dB over 11 after 20 iterations and 32 only +0.04 dB more; on the walnut
#: (P=128) 24 were 0.06 dB better than 11.
AUTO_KNOTS = 24

#: The largest order K that ``order = 0`` (automatic, red-psm's default) chooses (:func:`model_size`).
AUTO_ORDER = 10


def model_size(order: int, knots: int, n_frames: int, views: float = 1.0) -> tuple[int, int]:
    """The order K and knots d of a run of P = ``n_frames`` frames with ``views`` per frame.

    ``views`` is :attr:`~imaging.Measurements.views_per_frame` (MRI: a frame's k-space samples
    as full phase-encode lines). ``order = 0`` chooses ``K = round(2 log2(V / 8))`` for the
    V = P x ``views`` views measured in all, between 1 and :data:`AUTO_ORDER` (and below P and
    ``knots`` where that is given): fewer views support fewer temporal basis functions.
    ``knots = 0`` chooses ``d = P // 4`` (a knot every four frames), between K+1 and
    :data:`AUTO_KNOTS`, at most P. With one view per frame this gives K = 6 / 8 / 10 and
    d = 16 / 24 / 24 at P = 64 / 128 / 256.

    Tuned with dncnn-v3 on the tuning cases only (seed 1, N = 128, 45 iterations; section 8
    of benchmarks/results/tune_red_psm.md). With the penalties of the time (xi = chi = 0.2),
    against K = 10 (d = min(24, P)), K = 6 / 8 / 8 gave +0.80 / +0.20 / +0.20 dB on the walnut
    and +0.36 / +0.37 / +0.16 dB on the material at P = 64 / 128 / 256; K = 5 and below
    semi-converged at P = 64, K = 14 lost 0.6-0.8 dB at P = 256. With tomography's
    xi = chi = 4, K = 6 stayed best at P = 64 (K = 8 / 10: -0.25 / -0.47 dB on the walnut) and
    K = 10 was best at P = 256 (+0.17 / +0.14 dB over 8), hence the cap 10. On the cardiac cine
    (P = 128, 8 lines per frame: V = 1024, K = 10) K = 8 / 10 were within 0.1 dB, K = 6 lost
    0.9 dB. Explicit values are returned unchanged (the solver validates them).
    """
    if order == 0:
        total_views = max(1, n_frames * views)
        order = max(1, min(AUTO_ORDER, round(2 * math.log2(total_views / 8))))
        order = min(order, n_frames - 1, (knots or n_frames) - 1)
    if knots == 0:
        knots = min(n_frames, max(order + 1, min(AUTO_KNOTS, n_frames // 4)))
    return order, knots


def relative_norm(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    """``||numerator|| / ||denominator||`` (``||numerator||`` for a zero denominator)."""
    scale = float(torch.linalg.vector_norm(denominator))
    return float(torch.linalg.vector_norm(numerator)) / scale if scale > 0 else float(torch.linalg.vector_norm(numerator))


def squared_norm(x: torch.Tensor) -> float:
    """``||x||^2`` accumulated in double precision."""
    return float(torch.linalg.vector_norm(x, dtype=torch.complex128 if x.is_complex() else torch.float64)) ** 2


def norm_ratio(numerator_sq: float, denominator_sq: float) -> float:
    """``sqrt(numerator_sq / denominator_sq)`` (the numerator's root for a zero denominator),
    as :func:`relative_norm` of the two norms."""
    return math.sqrt(numerator_sq / denominator_sq) if denominator_sq > 0 else math.sqrt(numerator_sq)


#: Bytes of one block of frames that :func:`model_change` synthesises at once.
CHANGE_BLOCK_BYTES = 16 * 2**20


def model_change(new: PSMFactors, old: PSMFactors, block_bytes: int = CHANGE_BLOCK_BYTES) -> float:
    """``||F_new - F_old|| / ||F_new||`` of the frames ``F = Lambda Psi^T`` of two models.

    The frames are synthesised a block of about ``block_bytes`` at a time, so the change
    costs a few blocks instead of three (P, N, N) stacks; it equals
    :func:`relative_norm` of the whole stacks.
    """
    new_temporal, old_temporal = new.temporal(), old.temporal()
    block = max(1, block_bytes // (new.spatial[0].numel() * new.spatial.element_size()))
    change_sq = norm_sq = 0.0
    for first in range(0, new_temporal.shape[0], block):
        frames = slice(first, first + block)
        new_frames = synthesize(new.spatial, new_temporal[frames])
        change_sq += squared_norm(new_frames - synthesize(old.spatial, old_temporal[frames]))
        norm_sq += squared_norm(new_frames)
    return norm_ratio(change_sq, norm_sq)


def penalty_param(name: str, default: float):
    """The parameter ``xi`` (temporal bases) or ``chi`` (spatial bases) with this default; shared
    by ``psm`` and ``red-psm``, which differ only in the default (0: the operator's
    :attr:`~imaging.operators.LinearOperator.psm_penalty`)."""
    factor, bases, symbol = {"xi": ("Psi", "temporal", "ξ"), "chi": ("Lambda", "spatial", "χ")}[name]
    return param(
        default,
        f"weight of the Frobenius penalty ({name}/2)||{factor}||^2 on the {bases} bases (0: the modality's, "
        "4 for tomography, 0.2 for MRI; for no penalty give a tiny value such as 1e-9)",
        label=f"{bases} basis penalty",
        symbol=symbol,
        minimum=0.0,
    )


@dataclasses.dataclass
class PSMParams(SolverParams):
    """Parameters of the PSM model and its subproblem solver (shared with RED-PSM)."""

    max_iter: int = param(3, "maximum number of outer iterations (alternating sweeps for psm)")
    order: int = param(
        10,
        f"PSM order K: the model has K+1 spatial/temporal basis functions (0: from the views measured, "
        f"round(2 log2(V/8)) for V views in all, at most {AUTO_ORDER})",
        symbol="K",
        minimum=0,
        basic=True,
    )
    knots: int = param(
        11,
        f"knots d per temporal basis function (0: a knot every four frames, P // 4, between K+1 and {AUTO_KNOTS}; "
        "ignored for interpolation 'direct')",
        symbol="d",
        minimum=0,
    )
    interpolation: str = param("cubic", "temporal interpolation from knots to frames: cubic, linear or direct", choices=INTERPOLATIONS)
    xi: float = penalty_param("xi", 10.0)
    chi: float = penalty_param("chi", 10.0)
    init: str = param("auto", "initialisation: projection or fbp-svd (tomography), kspace-centre (mri); auto picks the first", label="initialisation", choices=("auto", *INITIALISATIONS))
    init_knots: int = param(6, "temporal functions (cubic knots) of the projection-domain initialisation", minimum=2)
    sweeps: int = param(1, "alternating (Lambda, z) sweeps per outer iteration", minimum=1)
    cg_iterations: int = param(8, "preconditioned CG iterations of each Lambda update", label="CG iterations", minimum=1)
    tol: float = param(1e-3, "stop when the relative change of the estimate falls below tol (no ground truth)", label="tolerance", minimum=0.0)

    def validate(self) -> None:
        super().validate()
        if self.order < 0:
            raise ParameterError(f"order K must be >= 0, got {self.order}")
        if self.interpolation != "direct":
            if self.knots < 2 and self.knots != 0:
                raise ParameterError(f"{self.interpolation} interpolation needs knots >= 2 (or 0: automatic), got {self.knots}")
            if self.knots and self.order and self.order + 1 > self.knots:
                raise ParameterError(
                    f"order K = {self.order} gives K+1 = {self.order + 1} temporal bases, more than the "
                    f"{self.knots} knots can make independent; use knots >= K+1"
                )
        for name in ("xi", "chi", "tol"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ParameterError(f"{name} must be a finite number >= 0, got {value}")
        if self.init_knots < 2:
            raise ParameterError(f"init_knots must be >= 2, got {self.init_knots}")
        if self.sweeps < 1:
            raise ParameterError(f"sweeps must be >= 1, got {self.sweeps}")
        minimum = type(self).__dataclass_fields__["cg_iterations"].metadata.get("minimum", 1)
        if self.cg_iterations < minimum:
            raise ParameterError(f"cg_iterations must be >= {minimum}, got {self.cg_iterations}")


class PSMFamilySolver(Solver):
    """Set-up shared by ``psm`` and ``red-psm``: operator, normalisation, initial factors.

    The expensive set-up (initialisation, operator norm) runs on the first
    :meth:`step` unless :meth:`load_state_dict` restored it, so resuming from a
    checkpoint skips it.
    """

    Params = PSMParams
    #: Peak float32 (K+1, N, N) copies of the spatial bases in the Lambda step (CG vectors,
    #: preconditioner spectra) while the allocator's heap serves them (below 32 MiB), and
    #: once they are mapped; fitted with benchmarks/memory_model.py.
    heap_rank_copies: ClassVar[float] = 14
    rank_copies: ClassVar[float] = 12

    @classmethod
    def state_bytes(cls, size, params: PSMParams) -> int:
        """The stacks (``state_copies``), the Lambda step's copies of the spatial bases
        (complex64 for MRI) and the z step's projections of the bases (:meth:`gram_bytes`)."""
        rank_bytes = (8 if size.modality == "mri" else 4) * (cls.model_size(size, params)[0] + 1) * size.pixels
        copies = cls.heap_rank_copies if rank_bytes < HEAP_STACK_LIMIT else cls.rank_copies
        return int(super().state_bytes(size, params) + copies * rank_bytes + cls.gram_bytes(size, params))

    @staticmethod
    def gram_bytes(size, params: PSMParams) -> int:
        """The z step's float32 projections of the K+1 bases, where it stores them
        (:data:`~.subproblem.GRAM_FROM_PROJECTIONS_ENTRIES`); single-coil Cartesian MRI
        takes its Gram matrices from the k-space weights instead."""
        if size.modality == "mri" and size.coils == 1 and size.layout != "non-cartesian":
            return 0
        projection_bytes = (PSMFamilySolver.model_size(size, params)[0] + 1) * size.range_bytes
        return projection_bytes if projection_bytes // 4 <= GRAM_FROM_PROJECTIONS_ENTRIES else 0

    @staticmethod
    def model_size(size, params: PSMParams) -> tuple[int, int]:
        """The (K, d) a run of ``params`` on a problem of this ``size`` uses (:func:`model_size`)."""
        return model_size(params.order, params.knots, size.n_frames, size.views_per_frame)

    def __init__(self, measurements, params: PSMParams, device="cpu"):
        super().__init__(measurements, params, device)
        n_frames = measurements.n_frames
        #: The order K and knots d of this run: ``params.order`` and ``params.knots``, or
        #: where they are 0 the automatic choice of :func:`model_size`.
        self.order, self.knots = model_size(params.order, params.knots, n_frames, measurements.views_per_frame)
        if params.interpolation != "direct" and (self.knots > n_frames or self.order + 1 > self.knots):
            raise ParameterError(
                f"knots must be at most the number of frames ({n_frames}) and at least K+1 = {self.order + 1}, "
                f"got {self.knots}; for so few frames set e.g. knots={n_frames} "
                f"order={max(0, min(self.order, n_frames - 1))}"
            )
        if params.interpolation == "direct" and self.order + 1 > n_frames:
            raise ParameterError(f"order K+1 = {self.order + 1} exceeds the number of frames ({n_frames})")
        suitable = measurements.operator_class.initialisations
        if not suitable:
            raise ParameterError(f"no PSM initialisation suits {measurements.modality} data")
        self.init_method = suitable[0] if params.init == "auto" else params.init
        if self.init_method not in suitable:
            raise ParameterError(
                f"init {params.init!r} does not apply to {measurements.modality} data (use: {', '.join(suitable)})"
            )
        self.operator = measurements.operator(device)
        self.raw_data = self.operator.measured(measurements.data)
        self.support = self.operator.support_mask()
        #: CG steps per Lambda update: ``params.cg_iterations``, or the operator's
        #: :attr:`~imaging.operators.LinearOperator.lambda_cg_iterations` when that is 0 (red-psm).
        self.cg_iterations = params.cg_iterations or self.operator.lambda_cg_iterations
        #: The penalty weights: ``params.xi`` / ``params.chi``, or the operator's
        #: :attr:`~imaging.operators.LinearOperator.psm_penalty` where they are 0 (red-psm).
        self.xi = params.xi or self.operator.psm_penalty
        self.chi = params.chi or self.operator.psm_penalty
        self.interpolation = interpolation_matrix(n_frames, self.knots, params.interpolation).to(self.operator.device)
        self.scale: float | None = None
        self.data_weight: float | None = None
        self.factors: PSMFactors | None = None
        self.problem: PSMSubproblem | None = None
        self.previous_change = math.inf

    # -- set-up -----------------------------------------------------------------------------
    def _build_problem(self) -> None:
        self.problem = PSMSubproblem(
            self.operator,
            self.raw_data / self.scale,
            self.interpolation,
            self.support,
            self.data_weight,
            self.xi,
            self.chi,
            direct=self.params.interpolation == "direct",
        )

    def _initialise(self) -> dict[str, float]:
        """Initial factors and normalisation; returns log entries (seconds spent)."""
        start = time.perf_counter()
        frames = initial_frames(
            self.measurements, self.init_method, knots=self.params.init_knots, device=self.operator.device
        )
        # In place: the initial frames are one (P, N, N) stack until the factors are made.
        if self.support is not None:
            frames.mul_(self.support)
        self.scale = amplitude_scale(frames)
        frames.div_(self.scale)
        self.data_weight = data_weight(self.operator, self.support)
        self.factors = psm_from_frames(frames, self.order + 1, self.interpolation)
        self._build_problem()
        self.problem.rebalance(self.factors)
        if self.init_method == "kspace-centre":
            # PS-MRI: the centre gives the temporal bases, all the data the spatial ones
            # (exact for single-coil Cartesian data). On the tuning cardiac phantom this
            # raised the first iterate of red-psm from 17.5 to 27.6 dB and the result
            # from 29.5 to 29.7 dB in 12 instead of 21 iterations.
            self.problem.update_spatial(self.factors, iterations=self.cg_iterations)
            self.problem.rebalance(self.factors)
        self._after_initialise(frames)
        return {"init_seconds": time.perf_counter() - start}

    def _after_initialise(self, frames: torch.Tensor) -> None:
        """Hook for subclasses: set their own variables from the normalised initial frames."""

    def _ensure_initialised(self) -> dict[str, float]:
        return self._initialise() if self.factors is None else {}

    def _data_residual(self, frames: torch.Tensor) -> float:
        with torch.no_grad():
            return relative_norm(self.operator.forward(frames) - self.problem.data, self.problem.data)

    # -- results ----------------------------------------------------------------------------
    def extras(self) -> dict[str, np.ndarray]:
        """``spatial_bases`` (K+1, N, N) in data units (complex64 for complex images) and unit-norm
        ``temporal_bases`` (P, K+1)."""
        self._ensure_initialised()
        spatial, temporal = self.factors.normalized()
        return {
            "spatial_bases": image_array(spatial * self.scale),
            "temporal_bases": image_array(temporal),
        }

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.factors is not None:
            state.update(
                scale=self.scale,
                data_weight=self.data_weight,
                spatial=self.factors.spatial.cpu(),
                knots=self.factors.knots.cpu(),
                previous_change=self.previous_change,
            )
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if "spatial" in state:
            self.scale = float(state["scale"])
            self.data_weight = float(state["data_weight"])
            device = self.operator.device
            self.factors = PSMFactors(state["spatial"].to(device), state["knots"].to(device), self.interpolation)
            self.previous_change = float(state["previous_change"])
            self._build_problem()


@register
class PSMSolver(PSMFamilySolver):
    """The PSM model alone (no RED): alternating exact/CG minimisation of the data fit.

    Each outer iteration is ``sweeps`` rounds of a preconditioned-CG update of the
    spatial bases and an exact update of the temporal knots (:class:`PSMSubproblem` with
    ``beta = 0``). Stops when the relative change of ``Lambda Psi^T`` between outer
    iterations is below ``tol``, or after ``max_iter``.

    The data fit alone over-fits the noise as it converges (the model has more unknowns
    than one view per frame measures), so the defaults were tuned like those of red-psm
    on the walnut, seed 1 (``benchmarks/tune_red_psm.py grid --method psm``): ``K = 10``,
    ``d = 11``, the ``fbp-svd`` initialisation, ``xi = chi = 10`` (a nuclear-norm-like
    weight, see :meth:`PSMSubproblem.rebalance`; 0.03-100 tried) and ``max_iter = 3``,
    where the tuning run peaked (22.05, 22.03 dB after 2, 3 sweeps, 21.4 dB after 10).
    """

    name = "psm"
    # Memory model (fitted with benchmarks/memory_model.py): w A^T g and the Lambda step's
    # synthesised frames and their back-projection (the change between iterations is
    # measured in blocks of frames, model_change).
    fixed_bytes = 20 * 2**20
    state_copies = 4
    heap_state_copies = 9
    multicoil_includes_stacks = True
    multicoil_coil_copies = {"cartesian": 1.1, "non-cartesian": 4.5}

    def step(self) -> dict[str, float]:
        entry = self._ensure_initialised()
        # The factors, not their frames: the change is measured a block of frames at a time.
        previous = PSMFactors(self.factors.spatial.clone(), self.factors.knots.clone(), self.interpolation)
        self.problem.sweep(self.factors, sweeps=self.params.sweeps, cg_iterations=self.cg_iterations)
        self.previous_change = model_change(self.factors, previous)
        del previous
        terms = self.problem.terms(self.factors)
        entry.update(
            data_residual=self._data_residual(self.factors.frames()),
            objective=terms["total"],
            relative_change=self.previous_change,
        )
        return entry

    def converged(self) -> bool:
        return self.previous_change < self.params.tol

    def estimate(self) -> np.ndarray:
        self._ensure_initialised()
        with torch.no_grad():
            return image_array(self.factors.frames() * self.scale)
