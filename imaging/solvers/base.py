"""The algorithm side of a reconstruction (SigPy's ``Alg``): state plus one ``step``.

A solver owns its iterates and knows how to advance them by one outer iteration, when
its own stopping rule (no ground truth) is met, and how to save and restore its state.
Looping, timing, callbacks, metrics against a reference and checkpoints belong to the
runner (:mod:`imaging.run.runner`), which every front end (API, CLI, GUI, batch)
drives. A solver also states how much memory one slice needs
(:meth:`Solver.estimate_bytes`), which the batch memory guard checks before it runs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
import torch


# -- memory model of one slice (docs/batch.md, "Memory guard"; fitted to peak RSS on Linux) --
#: Memory every reconstruction takes whatever its size (allocator caches, first-use
#: buffers, denoiser weights); small problems measured 70-80 MiB above the process's
#: baseline.
FIXED_BYTES = 80 * 2**20
#: Peak bytes per stored weight while the sparse tomography operator is built (ASTRA's
#: float64 matrix and index temporaries of one frame, the float32 blocks kept); measured
#: 17-25 bytes per weight at N = 128.
OPERATOR_BUILD_BYTES_PER_WEIGHT = 24
#: Peak bytes per k-space sample of the MRI operator: three k-space sized complex64 FFT
#: temporaries.
MRI_OPERATOR_BYTES_PER_SAMPLE = 3 * 8


def image_array(frames: torch.Tensor) -> np.ndarray:
    """Frames as the numpy array a solver's estimate is: float32, or complex64 for complex images."""
    return frames.detach().cpu().numpy().astype(np.complex64 if frames.is_complex() else np.float32, copy=False)


def measurement_bytes(measurements) -> int:
    """Bytes of the arrays a :class:`~imaging.measurements.Measurements` holds.

    The data (sinogram or k-space), the geometry (angles) or sampling (mask, coil maps)
    and the ground truth, whichever are present; a slice or a volume.
    """
    arrays = (
        measurements.sinogram, measurements.angles, measurements.kspace, measurements.mask,
        measurements.trajectory, measurements.coil_maps, measurements.ground_truth,
    )
    return int(sum(array.nbytes for array in arrays if array is not None))


class ParameterError(ValueError):
    """An impossible or unknown solver parameter."""


def _coerce(name: str, value, default):
    """``value`` as the type of the parameter's ``default``, or :class:`ParameterError`.

    Booleans take only true/false; numbers take finite numbers (or their text), never a
    boolean, and integers only whole numbers. Other parameters pass through: each
    solver's ``validate`` checks its text choices (and what else it accepts, e.g. a
    denoiser module).
    """
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise ParameterError(f"parameter {name} must be true or false, got {shown}")
        return bool(value)
    if isinstance(default, (int, float)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, str, np.integer, np.floating)):
            raise ParameterError(f"parameter {name} must be a number, got {shown}")
        if isinstance(default, int) and isinstance(value, (int, np.integer)):
            return int(value)
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise ParameterError(f"parameter {name} must be a finite number, got {shown}") from None
        if not math.isfinite(number):
            raise ParameterError(f"parameter {name} must be a finite number, got {shown}")
        if isinstance(default, int):
            if number != int(number):
                raise ParameterError(f"parameter {name} must be an integer, got {shown}")
            return int(number)
        return number
    return value


def param(default, help: str, **metadata):
    """A solver parameter with its help text (shown as CLI help and GUI tooltip)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


@dataclasses.dataclass
class SolverParams:
    """Parameters shared by every solver."""

    max_iter: int = param(1, "maximum number of outer iterations")
    seed: int = param(0, "seed of every random choice the solver makes")

    def validate(self) -> None:
        """Raise :class:`ParameterError` for impossible values (extended by subclasses)."""
        if self.max_iter < 1:
            raise ParameterError(f"max_iter must be >= 1, got {self.max_iter}")
        # The range torch.manual_seed accepts.
        if not -(2**63) <= self.seed < 2**64:
            raise ParameterError(f"seed must be an integer in [-2**63, 2**64), got {self.seed}")


class Solver:
    """Base class of reconstruction algorithms.

    Subclasses define ``name``, ``Params`` (a :class:`SolverParams` dataclass),
    optionally ``presets`` (name -> parameter overrides), ``modalities`` and
    ``state_copies`` (for :meth:`estimate_bytes`), and implement :meth:`step` and
    :meth:`estimate`.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type[SolverParams]] = SolverParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    modalities: ClassVar[tuple[str, ...]] = ("tomography", "mri")
    #: Peak number of float32 (P, N, N) image stacks the solver holds besides the data
    #: and the operator (iterates, gradients, optimiser state, denoiser activations).
    #: Each method sets the value fitted to its measured peak memory (docs/batch.md);
    #: this generous default stands for a method that has not been measured.
    state_copies: ClassVar[int] = 96

    def __init__(self, measurements, params: SolverParams, device="cpu"):
        if measurements.modality not in self.modalities:
            raise ParameterError(
                f"method '{self.name}' does not handle {measurements.modality} data "
                f"(it handles: {', '.join(self.modalities)})"
            )
        self.measurements = measurements
        self.params = params
        self.device = device
        self.iteration = 0

    @classmethod
    def make_params(cls, preset: str | None = None, **overrides) -> SolverParams:
        """Defaults, then the preset's values, then ``overrides``; validated."""
        values: dict[str, Any] = {}
        if preset is not None:
            if preset not in cls.presets:
                known = ", ".join(sorted(cls.presets)) or "none"
                raise ParameterError(f"method '{cls.name}' has no preset {preset!r} (presets: {known})")
            values.update(cls.presets[preset])
        values.update({k: v for k, v in overrides.items() if v is not None})
        known_fields = {f.name: f for f in dataclasses.fields(cls.Params)}
        unknown = sorted(set(values) - set(known_fields))
        if unknown:
            raise ParameterError(
                f"method '{cls.name}' has no parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known_fields))}"
            )
        for key, value in list(values.items()):
            values[key] = _coerce(key, value, known_fields[key].default)
        params = cls.Params(**values)
        params.validate()
        return params

    @classmethod
    def estimate_bytes(cls, measurements, params: SolverParams | None = None) -> int:
        """Estimated peak memory (bytes) of reconstructing one slice, beyond the process's baseline.

        The model (fitted to measured peak resident memory, see docs/batch.md):

        - :data:`FIXED_BYTES` (allocator caches, first-use buffers, denoiser weights);
        - the arrays of ``measurements`` (data, angles or mask and coil maps, ground
          truth), see :func:`measurement_bytes`;
        - the operator: tomography :data:`OPERATOR_BUILD_BYTES_PER_WEIGHT` per weight of
          the sparse matrix while it is built, about N weights per measured value
          (N x P x V x D); MRI :data:`MRI_OPERATOR_BYTES_PER_SAMPLE` per k-space sample;
        - ``state_copies`` float32 (P, N, N) stacks, complex64 for MRI (complex images:
          twice the bytes of the fitted real stacks, a model not refitted);
        - :meth:`model_bytes` (a network the method trains, 0 for most methods).

        Parameters
        ----------
        measurements : Measurements
            One slice (``measurements.slice(z)`` of a volume).
        params : SolverParams, optional
            The run's parameters (default: the method's defaults).

        Returns
        -------
        int
        """
        if measurements.is_volume:
            raise ValueError("estimate_bytes takes the measurements of one slice: pass measurements.slice(z)")
        params = params if params is not None else cls.make_params()
        height, width = measurements.slice_shape
        stack = (8 if measurements.modality == "mri" else 4) * measurements.n_frames * height * width
        if measurements.modality == "tomography":
            operator = OPERATOR_BUILD_BYTES_PER_WEIGHT * height * measurements.sinogram.size
        else:
            operator = MRI_OPERATOR_BYTES_PER_SAMPLE * measurements.kspace.size
        return int(
            FIXED_BYTES
            + measurement_bytes(measurements)
            + operator
            + cls.state_copies * stack
            + cls.model_bytes(measurements, params)
        )

    @classmethod
    def model_bytes(cls, measurements, params: SolverParams) -> int:
        """Peak bytes of a network the method builds for one slice (weights, optimiser
        state, activations), beyond its ``state_copies``; 0 unless a method overrides it."""
        return 0

    @classmethod
    def describe_params(cls) -> list[dict[str, Any]]:
        """Name, default and help text of every parameter (for CLI help and GUI tooltips)."""
        return [
            {"name": f.name, "default": f.default, "help": f.metadata.get("help", "")}
            for f in dataclasses.fields(cls.Params)
        ]

    # -- the algorithm ------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Advance one outer iteration; return this iteration's log entries.

        The entries must include ``data_residual`` (relative, ||A f - g|| / ||g||).
        """
        raise NotImplementedError

    def converged(self) -> bool:
        """The solver's own stopping rule, evaluated after :meth:`step` (no ground truth)."""
        return False

    def estimate(self) -> np.ndarray:
        """Current reconstruction, numpy float32 (P, N, N), complex64 for complex images (MRI)."""
        raise NotImplementedError

    def extras(self) -> dict[str, np.ndarray]:
        """Optional by-products saved with the result (e.g. PSM factors)."""
        return {}

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: tensors, numbers, lists (no objects)."""
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
