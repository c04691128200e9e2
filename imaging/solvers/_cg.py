"""Preconditioned conjugate gradients for symmetric positive semi-definite systems.

Matrix-free: the system matrix and the preconditioner are callables on tensors of any
shape (the "vector" is the whole tensor), so a solver can use it on images, stacks of
spatial bases or factors without flattening them. Inner products are accumulated in
double precision (:func:`imaging.operators.inner`) while the iterates keep their dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..operators import inner


def conjugate_gradient(
    apply_matrix: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    start: torch.Tensor,
    iterations: int,
    precondition: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``iterations`` steps of (preconditioned) CG on ``H x = rhs`` from ``start``.

    Parameters
    ----------
    apply_matrix : callable
        ``x -> H x`` for a symmetric positive semi-definite ``H``; same shape as ``rhs``.
    rhs : torch.Tensor
        Right-hand side, any shape.
    start : torch.Tensor
        Initial iterate (warm start), shape of ``rhs``.
    iterations : int
        Number of CG steps (each one application of ``H`` and of the preconditioner).
    precondition : callable, optional
        ``r -> M^{-1} r`` for a symmetric positive definite ``M``, returning a new tensor
        (not ``r`` itself); identity when omitted.

    Returns
    -------
    torch.Tensor
        The last iterate, shape of ``rhs``. The loop ends early when the preconditioned
        residual or a search direction's curvature is no longer positive (the system is
        solved, or ``H`` is singular along that direction).
    """
    if precondition is None:
        precondition = _identity
    # The vectors are updated in place (few allocations of the system's size), on a copy
    # of ``start``; ``precondition`` returns a new tensor (the direction is updated in place).
    x = start.clone()
    residual = rhs - apply_matrix(x)
    z = precondition(residual)
    direction = z
    rz = inner(residual, z)
    for _ in range(iterations):
        if rz <= 0.0:
            break
        h_direction = apply_matrix(direction)
        curvature = inner(direction, h_direction)
        if curvature <= 0.0:
            break
        alpha = rz / curvature
        x.add_(direction, alpha=alpha)
        residual.sub_(h_direction, alpha=alpha)
        del h_direction
        z = precondition(residual)
        rz_new = inner(residual, z)
        direction = direction.mul_(rz_new / rz).add_(z)
        rz = rz_new
    return x


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x.clone()  # a new tensor: the iteration updates its vectors in place
