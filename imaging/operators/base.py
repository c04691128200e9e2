"""Linear operator base class shared by the dynamic tomography and MRI operators.

Every operator maps a time-first image stack ``x`` of shape ``(P, N, N)`` (P frames) to
a measurement tensor and back. ``forward`` and ``adjoint`` are differentiable with
respect to their input and are exact adjoints of each other:
``<A x, y> == <x, A^H y>`` (real part of the inner product for complex ranges).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return a torch device, refusing ``cuda`` with a clear message when it is absent."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    requested = device
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {str(requested)!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but PyTorch sees no CUDA GPU; use device='cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r} was requested but PyTorch sees {torch.cuda.device_count()} GPU(s)")
    return device


def inner(a: torch.Tensor, b: torch.Tensor) -> float:
    """Real part of the Euclidean inner product, accumulated in double precision."""
    if a.is_complex() or b.is_complex():
        a = torch.view_as_real(a.to(torch.complex128).contiguous())
        b = torch.view_as_real(b.to(torch.complex128).contiguous())
    return float(torch.sum(a.double() * b.double()))


class LinearOperator:
    """A linear map between torch tensors with an exact adjoint.

    Subclasses set ``domain_shape``, ``range_shape``, ``domain_dtype``, ``range_dtype``
    and ``device`` and implement ``forward`` and ``adjoint``.

    An operator also carries what is particular to its modality, so that solvers ask the
    operator instead of testing which modality or class they have. A new modality
    overrides what applies to it:

    - :meth:`from_measurements`: build the operator of a
      :class:`~imaging.measurements.Measurements` (called by
      :meth:`Measurements.operator`, the one place that maps a modality to its class);
    - :meth:`support_mask`: the pixels the data can see (``None``: all of them);
    - :attr:`is_complex_domain`: whether the images are complex (from ``domain_dtype``);
    - :meth:`kspace_normal_weights`: ``A^H A`` as a diagonal in Cartesian k-space, where
      it is one (``None`` otherwise);
    - :attr:`initialisations`: the PSM initialisations that suit its data;
    - :attr:`nonnegative_images`: whether the physics makes every image value >= 0;
    - :attr:`costly_to_build`: whether building it costs much more than applying it;
    - :attr:`lambda_cg_iterations`: CG steps that solve PSM's Lambda system on its data;
    - :attr:`psm_penalty`: RED-PSM's Frobenius penalty weights xi = chi for its data.
    """

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]
    domain_dtype: torch.dtype = torch.float32
    range_dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")

    #: Names of the PSM initialisations (:mod:`imaging.solvers.psm.initialisation`) that
    #: suit this operator's data, the default first; empty when none does.
    initialisations: ClassVar[tuple[str, ...]] = ()

    #: True when the images are physically non-negative (attenuation, density), so a
    #: solver may project its estimate onto ``x >= 0``.
    nonnegative_images: ClassVar[bool] = False

    #: True when building the operator costs much more than applying it (tomography
    #: computes its projection weights): a solver that needs the operators of subsets of
    #: frames then builds one per frame once and keeps them, instead of building one for
    #: each subset it visits.
    costly_to_build: ClassVar[bool] = False

    #: Preconditioned CG steps per Lambda update of RED-PSM that reach the accuracy the
    #: outer iterations need on this operator's data (``cg_iterations = 0``). 16 by
    #: default: on the 8-coil cardiac cine with 8 of 128 lines per frame, 16 instead of 8
    #: gained 0.44 dB after 20 iterations (benchmarks/results/tune_red_psm.md).
    lambda_cg_iterations: ClassVar[int] = 16

    #: The weights xi = chi of RED-PSM's penalties (xi/2)||Psi||^2 + (chi/2)||Lambda||^2 on
    #: this operator's data (``xi = chi = 0``), a nuclear-norm-like weight on the frames. 0.2 by
    #: default: on the 8-coil cardiac cine (8 of 128 lines per frame, P = 128) 4 lost 0.45 dB
    #: (benchmarks/results/tune_red_psm.md section 8).
    psm_penalty: ClassVar[float] = 0.2

    @classmethod
    def from_measurements(cls, measurements, device="cpu", **options) -> "LinearOperator":
        """The operator of single-slice ``measurements`` (their modality's fields).

        ``options`` are keyword arguments of the constructor.
        """
        raise NotImplementedError(f"{cls.__name__} cannot be built from measurements")

    @property
    def is_complex_domain(self) -> bool:
        """True when the images (the domain) are complex."""
        return self.domain_dtype.is_complex

    def support_mask(self) -> torch.Tensor | None:
        """(N, N) float 0/1 mask of the pixels the data can see, or ``None`` (every pixel).

        Pixels outside the mask are not measured; solvers keep the image zero there.
        """
        return None

    def kspace_normal_weights(self) -> torch.Tensor | None:
        """``A^H A`` as a diagonal in centred Cartesian k-space, where it is one.

        Returns
        -------
        torch.Tensor or None
            float32 (P, H, W) weights ``m`` with ``A_p^H A_p x = F^H (m_p * F x)`` for
            every frame ``x`` of the domain (``F`` = :func:`imaging.operators.fft2c`), on
            the operator's device; ``None`` when ``A^H A`` is not such a diagonal (the
            default). A solver may then solve normal equations one frequency at a time.
        """
        return None

    def measured(self, data) -> torch.Tensor:
        """The measured data of a file (``Measurements.data``) in this operator's range layout.

        The default is the array itself as a tensor on the operator's device; an operator
        whose range keeps only part of the file's layout (line-sampled Cartesian MRI)
        overrides it.
        """
        data = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
        return self._check_input(data, self.range_shape, "measured")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``A^H A`` to ``x`` of shape ``domain_shape``."""
        return self.adjoint(self.forward(x))

    def _check_input(self, t: torch.Tensor, expected: tuple[int, ...], what: str) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(t)
        if tuple(t.shape) != tuple(expected):
            raise ValueError(
                f"{type(self).__name__}.{what} expects a tensor of shape {tuple(expected)}, "
                f"got {tuple(t.shape)}"
            )
        return t.to(self.device)

    def random_domain(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A standard-normal tensor of the domain shape and dtype (on the CPU, then moved)."""
        return _randn(self.domain_shape, self.domain_dtype, generator).to(self.device)

    def random_range(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """A standard-normal tensor of the range shape and dtype."""
        return _randn(self.range_shape, self.range_dtype, generator).to(self.device)

    def adjointness_error(self, seed: int = 0) -> float:
        """Relative mismatch ``|<Ax, y> - <x, A^H y>| / (||Ax|| ||y||)`` on random x, y."""
        gen = torch.Generator().manual_seed(seed)
        x = self.random_domain(gen)
        y = self.random_range(gen)
        with torch.no_grad():
            ax = self.forward(x)
            ahy = self.adjoint(y)
        lhs, rhs = inner(ax, y), inner(x, ahy)
        scale = math.sqrt(inner(ax, ax) * inner(y, y)) or 1.0
        return abs(lhs - rhs) / scale

    def norm(self, n_iter: int = 50, tol: float = 1e-6, seed: int = 0) -> float:
        """Operator norm ``||A||_2`` estimated by power iteration on ``A^H A`` (cached)."""
        cached = getattr(self, "_norm_cache", None)
        if cached is not None:
            return cached
        gen = torch.Generator().manual_seed(seed)
        x = self.random_domain(gen)
        x = x / torch.linalg.vector_norm(x)
        sigma2 = 0.0
        with torch.no_grad():
            for _ in range(n_iter):
                z = self.normal(x)
                new_sigma2 = float(torch.linalg.vector_norm(z))
                if new_sigma2 == 0.0:
                    break
                x = z / new_sigma2
                if abs(new_sigma2 - sigma2) <= tol * new_sigma2:
                    sigma2 = new_sigma2
                    break
                sigma2 = new_sigma2
        self._norm_cache = math.sqrt(sigma2)
        return self._norm_cache


class _LinearMap(torch.autograd.Function):
    """``product(x)`` for a linear ``product`` computed outside autograd, with gradient ``adjoint(grad)``."""

    @staticmethod
    def forward(ctx, x, product, adjoint):
        ctx.adjoint = adjoint
        return product(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.adjoint(grad), None, None


def linear_map(x: torch.Tensor, product, adjoint) -> torch.Tensor:
    """Apply a linear map that autograd cannot see through (NumPy, SciPy, a C library).

    Parameters
    ----------
    x : torch.Tensor
    product : callable
        Tensor -> tensor, the linear map (computed without autograd).
    adjoint : callable
        Its adjoint, which back-propagates the gradient.
    """
    return _LinearMap.apply(x, product, adjoint)


def _randn(shape, dtype, generator):
    if dtype.is_complex:
        real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
        parts = torch.randn((*shape, 2), generator=generator, dtype=real_dtype)
        return torch.view_as_complex(parts)
    return torch.randn(shape, generator=generator, dtype=dtype)
