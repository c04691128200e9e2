"""Linear operator base class shared by the dynamic tomography and MRI operators.

Every operator maps a time-first image stack ``x`` of shape ``(P, N, N)`` (P frames) to
a measurement tensor and back. ``forward`` and ``adjoint`` are differentiable with
respect to their input and are exact adjoints of each other:
``<A x, y> == <x, A^H y>`` (real part of the inner product for complex ranges).
"""

from __future__ import annotations

import math

import torch


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Return a torch device, refusing ``cuda`` with a clear message when it is absent."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but PyTorch sees no CUDA GPU; use device='cpu'")
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
    """

    domain_shape: tuple[int, ...]
    range_shape: tuple[int, ...]
    domain_dtype: torch.dtype = torch.float32
    range_dtype: torch.dtype = torch.float32
    device: torch.device = torch.device("cpu")

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
