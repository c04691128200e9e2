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

from .memory import MULTICOIL_FIXED_BYTES, ProblemSize, coil_map_estimation_bytes, measurement_bytes, operator_bytes  # noqa: F401  (measurement_bytes: kept here)


# -- memory model of one slice (imaging/solvers/memory.py; fitted to peak RSS on Linux) --
#: Memory a reconstruction takes whatever its size (first-use buffers of PyTorch's
#: kernels, weights) unless a method states its own ``fixed_bytes``.
FIXED_BYTES = 80 * 2**20
#: Stacks smaller than this come from the allocator's heap (glibc's mmap threshold rises
#: up to 32 MiB as large blocks are freed), where freed memory stays resident and the
#: peak counts more copies (a method's ``heap_state_copies``); larger ones are mapped
#: and returned when freed.
HEAP_STACK_LIMIT = 32 * 2**20


class ParameterError(ValueError):
    """An impossible or unknown solver parameter."""


def image_array(frames: torch.Tensor) -> np.ndarray:
    """Frames as the numpy array a solver's estimate is: float32, or complex64 for complex images."""
    return frames.detach().cpu().numpy().astype(np.complex64 if frames.is_complex() else np.float32, copy=False)


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


#: Keys of :meth:`Solver.describe_params` entries besides ``name``, ``default`` and ``help``.
PARAM_METADATA = ("label", "symbol", "unit", "minimum", "maximum", "choices", "suggestions", "basic", "applies")


def param(
    default,
    help: str,
    *,
    label: str | None = None,
    symbol: str | None = None,
    unit: str | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple | None = None,
    suggestions: tuple | None = None,
    basic: bool = False,
    applies: bool = True,
):
    """A solver parameter with its help text (shown as CLI help and GUI tooltip).

    The other arguments describe the parameter to front ends that build inputs from
    it (the napari plugin); of them only ``choices`` is enforced (by
    :meth:`SolverParams.validate`), the rest of the validation stays in each method's
    ``validate``.

    Parameters
    ----------
    default
        The default value; its type is the parameter's type.
    help : str
        One line saying what the parameter does.
    label : str, optional
        A readable name (default: the name with spaces for underscores).
    symbol : str, optional
        The paper's symbol, e.g. "λ".
    unit : str, optional
        Unit of the value, e.g. "views".
    minimum, maximum : float, optional
        Inclusive bounds of the values that make sense.
    choices : tuple, optional
        The only values allowed.
    suggestions : tuple, optional
        Values to offer where others are allowed too (e.g. shipped names besides paths).
    basic : bool
        One of the few parameters a user changes first (shown before the others).
    applies : bool
        False where a shared parameter means nothing for a method (hidden there).

    A subclass that redeclares a parameter (e.g. another default) keeps the base
    class's description for every argument it does not give again (see
    :meth:`Solver.describe_params`).
    """
    if (minimum is not None and default < minimum) or (maximum is not None and default > maximum):
        raise ValueError(f"default {default!r} lies outside [{minimum}, {maximum}]")
    if choices is not None and default not in choices:
        raise ValueError(f"default {default!r} is not one of the choices {choices!r}")
    given = dict(label=label, symbol=symbol, unit=unit, minimum=minimum, maximum=maximum, choices=choices)
    metadata = {"help": help, **{key: value for key, value in given.items() if value is not None}}
    for key, values in (("choices", choices), ("suggestions", suggestions)):
        if values is not None:
            metadata[key] = tuple(values)
    if basic:
        metadata["basic"] = True
    if not applies:
        metadata["applies"] = False
    return dataclasses.field(default=default, metadata=metadata)


def declared(params_cls: type, name: str, key: str):
    """What the nearest declaration of parameter ``name`` in ``params_cls`` and its base
    classes gives for the :func:`param` argument ``key`` (None where none gives it): a
    redeclared parameter inherits what it does not say again."""
    for base in params_cls.__mro__:
        field = getattr(base, "__dataclass_fields__", {}).get(name)
        if field is not None and key in field.metadata:
            return field.metadata[key]
    return None


@dataclasses.dataclass
class SolverParams:
    """Parameters shared by every solver."""

    max_iter: int = param(1, "maximum number of outer iterations", label="iterations", minimum=1, basic=True)
    seed: int = param(0, "seed of every random choice the solver makes", minimum=0, maximum=2**31 - 1)

    def validate(self) -> None:
        """Raise :class:`ParameterError` for impossible values (extended by subclasses)."""
        # A method whose max_iter may be 0 (chosen from the problem) declares minimum 0.
        lowest = declared(type(self), "max_iter", "minimum")
        if self.max_iter < lowest:
            raise ParameterError(f"max_iter must be >= {lowest}, got {self.max_iter}")
        for field in dataclasses.fields(self):
            choices = declared(type(self), field.name, "choices")
            value = getattr(self, field.name)
            if choices is not None and value not in choices:
                raise ParameterError(f"{field.name} must be one of {', '.join(map(str, choices))}, got {value!r}")
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
    #: Memory the method takes whatever the problem's size (denoiser or network weights,
    #: first-use buffers), bytes.
    fixed_bytes: ClassVar[int] = FIXED_BYTES
    #: Peak number of float32 (P, N, N) image stacks the solver holds besides the data
    #: and the operator (iterates, gradients, optimiser state, denoiser activations),
    #: for stacks of at least :data:`HEAP_STACK_LIMIT`. Each method sets the value fitted
    #: to its measured peak memory (``benchmarks/memory_model.py``); this generous default
    #: stands for a method that has not been measured.
    state_copies: ClassVar[float] = 96
    #: The same for smaller stacks, served from the allocator's heap (None: ``state_copies``).
    heap_state_copies: ClassVar[float | None] = None
    #: Multi-coil MRI (C > 1): the products' and the method's memory beyond the data is
    #: ``multicoil_fixed_bytes`` plus this many complex64 coil-image stacks (P, C, N, N)
    #: (:attr:`ProblemSize.coil_stack_bytes`), for Cartesian and non-Cartesian sampling:
    #: the products build coil images (all frames' at once for the NUFFT, a few frames'
    #: for Cartesian lines, whose freed blocks the allocator keeps) and the method's
    #: stacks are an eighth of them. Each measured method sets the values fitted with
    #: ``benchmarks/memory_model.py``; these generous defaults stand for the others, whose
    #: multi-coil stacks also count ``state_copies``.
    multicoil_coil_copies: ClassVar[dict[str, float]] = {"cartesian": 4.0, "non-cartesian": 6.0}
    multicoil_fixed_bytes: ClassVar[int] = MULTICOIL_FIXED_BYTES
    #: Whether ``multicoil_coil_copies`` include the method's image stacks (then
    #: :meth:`state_bytes` counts none for multi-coil data).
    multicoil_includes_stacks: ClassVar[bool] = False

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
        #: The iterations the run may take: ``params.max_iter``, or the method's choice for
        #: this problem where its ``max_iter = 0`` means automatic.
        self.max_iter = params.max_iter

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

        The baseline is the process after importing ``imaging`` (PyTorch, ASTRA), see
        :data:`imaging.solvers.memory.PROCESS_BYTES`. The model
        (:mod:`imaging.solvers.memory`, fitted to measured peaks) is
        :meth:`estimate_size_bytes` of the measurements' :class:`ProblemSize`, on this
        machine and the CPU.

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
        return cls.estimate_size_bytes(ProblemSize.of(measurements), params)

    @classmethod
    def estimate_size_bytes(
        cls, size: ProblemSize, params: SolverParams | None = None, device_type: str = "cpu",
        memory_bytes: int | None = None,
    ) -> int:
        """:meth:`estimate_bytes` of a problem given by its sizes.

        The sum of ``fixed_bytes``, the measurements' arrays (``size.data_bytes``) and the
        larger of the run's memory, the operator (:meth:`operator_bytes`: the sparse
        tomography weights unless the projector that ``"auto"`` chooses on a machine of
        ``memory_bytes`` is matrix-free, the MRI products and coil images) plus
        :meth:`state_bytes`, and the coil-map estimation that precedes a multi-coil MRI
        run without maps (:func:`~imaging.solvers.memory.coil_map_estimation_bytes`).

        Parameters
        ----------
        size : ProblemSize
        params : SolverParams, optional
            Default: the method's defaults.
        device_type : {"cpu", "cuda"}
            "cuda": the operator's host memory while it is built.
        memory_bytes : int, optional
            The memory available to the run, for the projector choice (default: this
            process's, :func:`imaging._limits.available_memory`).
        """
        params = params if params is not None else cls.make_params()
        # Coil maps estimated before the run (multi-coil MRI without maps) peak on their own.
        run = cls.operator_bytes(size, device_type, memory_bytes) + cls.state_bytes(size, params)
        return int(cls.fixed_bytes + size.data_bytes + max(run, coil_map_estimation_bytes(size)))

    @classmethod
    def operator_bytes(cls, size: ProblemSize, device_type: str = "cpu", memory_bytes: int | None = None) -> int:
        """Peak bytes of the operator the method builds (:func:`imaging.solvers.memory.operator_bytes`
        by default, the measurements' own operator); for multi-coil MRI ``multicoil_fixed_bytes``
        plus ``multicoil_coil_copies`` coil-image stacks."""
        if size.multicoil:
            copies = cls.multicoil_coil_copies["non-cartesian" if size.layout == "non-cartesian" else "cartesian"]
            return int(cls.multicoil_fixed_bytes + copies * size.coil_stack_bytes)
        return operator_bytes(size, device_type, memory_bytes)

    @classmethod
    def state_bytes(cls, size: ProblemSize, params: SolverParams) -> int:
        """Peak bytes of the solver's own state and temporaries for a problem of ``size``.

        By default ``state_copies`` (``heap_state_copies`` for stacks below
        :data:`HEAP_STACK_LIMIT`) float32 (P, N, N) stacks (complex64 for MRI; none for
        multi-coil MRI where ``multicoil_includes_stacks``) plus :meth:`model_bytes`;
        a method overrides it where its memory has other terms.
        """
        copies = cls.state_copies
        if cls.heap_state_copies is not None and size.stack_bytes < HEAP_STACK_LIMIT:
            copies = cls.heap_state_copies
        if size.multicoil and cls.multicoil_includes_stacks:
            copies = 0
        return int(copies * size.stack_bytes + cls.model_bytes(size, params))

    @classmethod
    def model_bytes(cls, size: ProblemSize, params: SolverParams) -> int:
        """Peak bytes of a network the method builds for one slice of ``size`` (weights,
        optimiser state, activations), beyond its ``state_copies``; 0 unless a method
        overrides it."""
        return 0

    @classmethod
    def describe_params(cls) -> list[dict[str, Any]]:
        """Every parameter, for CLI help and GUI inputs.

        Returns
        -------
        list of dict
            In declaration order: ``name``, ``default``, ``help`` and the keys of
            :data:`PARAM_METADATA` as given to :func:`param` (``label`` defaults to the
            name with spaces; unset keys are ``None``, ``basic`` False, ``applies`` True).
        """
        described = []
        for field in dataclasses.fields(cls.Params):
            entry = {"name": field.name, "default": field.default, "help": field.metadata.get("help", "")}
            for key in PARAM_METADATA:
                entry[key] = declared(cls.Params, field.name, key)
            entry["label"] = entry["label"] or field.name.replace("_", " ")
            entry["basic"] = bool(entry["basic"])
            entry["applies"] = entry["applies"] is not False
            described.append(entry)
        return described

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

    @property
    def estimate_is_interpolated(self) -> bool:
        """True while the solver works on a coarser grid than the data's and :meth:`estimate`
        interpolates its images (red-psm's coarse-to-fine start): an iteration there costs
        about what scoring the full-size estimate does, so the runner scores less often."""
        return False

    def extras(self) -> dict[str, np.ndarray]:
        """Optional by-products saved with the result (e.g. PSM factors)."""
        return {}

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-for-bit: tensors, numbers, lists (no objects).

        Like ``torch.nn.Module.state_dict``, the tensors may be the solver's own, which the
        next :meth:`step` updates in place: save or copy them before stepping again.
        """
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])
