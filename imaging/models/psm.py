"""Partially separable model (PSM) of a dynamic image: ``f = Lambda Psi^T``.

A sequence of P frames of N x N pixels is written as a sum of ``r = K + 1`` products of
a spatial basis image ``Lambda_k`` (N x N) and a temporal basis function ``psi_k``
(P samples)::

    f[p] = sum_k Psi[p, k] * Lambda[k]

The temporal bases are smooth: ``Psi = U z^T`` where ``z`` (r, d) holds ``d`` knot
values per basis function and ``U`` (P, d) is a fixed interpolation matrix from ``d``
knots at ``linspace(0, 1, d)`` to the frame times ``linspace(0, 1, P)``:

- ``"cubic"``: cubic Hermite interpolation with finite-difference tangents (the
  official RED-PSM code's interpolator, not a natural spline): interior tangents are the
  mean of the two neighbouring secants, end tangents the end secants;
- ``"linear"``: piecewise-linear interpolation;
- ``"direct"``: ``U`` is the identity (``d = P``), i.e. ``Psi`` is free.

Tensors here are torch float32 on any device; shapes are stated per function.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

INTERPOLATIONS = ("cubic", "linear", "direct")


def check_interpolation(kind: str, frames: int, knots: int) -> None:
    """Raise ``ValueError`` unless ``knots`` knots suit ``kind`` interpolation to ``frames`` frames."""
    if kind not in INTERPOLATIONS:
        raise ValueError(f"temporal interpolation must be one of {INTERPOLATIONS}, got {kind!r}")
    if frames < 1:
        raise ValueError(f"the number of frames must be >= 1, got {frames}")
    if kind == "direct":
        return
    if knots < 2:
        raise ValueError(f"{kind} temporal interpolation needs at least 2 knots, got {knots}")
    if knots > frames:
        raise ValueError(f"{kind} temporal interpolation needs at most as many knots as frames ({frames}), got {knots}")


def interpolation_matrix(frames: int, knots: int, kind: str = "cubic") -> torch.Tensor:
    """The matrix ``U`` that maps knot values to frame samples.

    Parameters
    ----------
    frames : int
        Number of frames P.
    knots : int
        Number of knots d (ignored for ``"direct"``, where d = P).
    kind : {"cubic", "linear", "direct"}

    Returns
    -------
    torch.Tensor
        float32 (P, d); ``psi = U @ knot_values`` for knot values of shape (d,).
    """
    check_interpolation(kind, frames, knots)
    if kind == "direct":
        return torch.eye(frames, dtype=torch.float32)
    x = np.linspace(0.0, 1.0, knots)
    t = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    h = x[1] - x[0]
    interval = np.clip(np.floor(t / h).astype(int), 0, knots - 2)
    tau = (t - x[interval]) / h
    rows = np.arange(frames)
    u = np.zeros((frames, knots))
    if kind == "linear":
        u[rows, interval] += 1.0 - tau
        u[rows, interval + 1] += tau
        return torch.from_numpy(u.astype(np.float32))
    # Hermite basis polynomials on [x_i, x_i+1]: value at both ends and h * tangent.
    h00 = 1 - 3 * tau**2 + 2 * tau**3
    h10 = tau - 2 * tau**2 + tau**3
    h01 = 3 * tau**2 - 2 * tau**3
    h11 = -(tau**2) + tau**3
    # Tangents as a linear map of the knot values: m = T @ y with secants (y_i+1 - y_i)/h.
    secant = (np.eye(knots, k=1) - np.eye(knots))[: knots - 1] / h  # (d-1, d)
    tangent = np.empty((knots, knots))
    tangent[0] = secant[0]
    tangent[-1] = secant[-1]
    if knots > 2:
        tangent[1:-1] = 0.5 * (secant[:-1] + secant[1:])
    u[rows, interval] += h00
    u[rows, interval + 1] += h01
    u += (h10 * h)[:, None] * tangent[interval] + (h11 * h)[:, None] * tangent[interval + 1]
    return torch.from_numpy(u.astype(np.float32))


def synthesize(spatial: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
    """Frames of the model: ``f[p] = sum_k temporal[p, k] * spatial[k]``.

    Parameters
    ----------
    spatial : torch.Tensor
        (r, N, M) spatial bases, real or complex.
    temporal : torch.Tensor
        (P, r) real temporal bases.

    Returns
    -------
    torch.Tensor
        (P, N, M) frames, of the dtype of ``spatial``.
    """
    r, n, m = spatial.shape
    return (temporal.to(spatial.dtype) @ spatial.reshape(r, n * m)).reshape(temporal.shape[0], n, m)


def project_frames(frames: torch.Tensor, temporal: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`synthesize` in the spatial bases: ``out[k] = sum_p temporal[p, k] frames[p]``.

    Parameters
    ----------
    frames : torch.Tensor
        (P, N, M), real or complex.
    temporal : torch.Tensor
        (P, r) real.

    Returns
    -------
    torch.Tensor
        (r, N, M), of the dtype of ``frames``.
    """
    p, n, m = frames.shape
    return (temporal.T.to(frames.dtype) @ frames.reshape(p, n * m)).reshape(temporal.shape[1], n, m)


def fit_knots(temporal: torch.Tensor, interpolation: torch.Tensor) -> torch.Tensor:
    """Knot values whose interpolation is closest (least squares) to ``temporal``.

    Parameters
    ----------
    temporal : torch.Tensor
        (P, r) temporal functions.
    interpolation : torch.Tensor
        (P, d) interpolation matrix ``U``.

    Returns
    -------
    torch.Tensor
        (r, d) knots ``z`` minimising ``||U z^T - temporal||_F``.
    """
    solution = torch.linalg.lstsq(interpolation.double(), temporal.double()).solution  # (d, r)
    return solution.T.to(temporal.dtype).contiguous()


#: Bytes of the float64 copy of a block of pixel columns in :func:`_double_product`.
_DOUBLE_BLOCK_BYTES = 16 * 2**20


def _double_product(left: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``left @ matrix`` in double precision, converting ``matrix`` a block of columns at a time.

    Parameters
    ----------
    left : torch.Tensor
        float64 (k, P).
    matrix : torch.Tensor
        (P, M), any real dtype (frames as rows, pixels as columns).

    Returns
    -------
    torch.Tensor
        float64 (k, M); no float64 copy of the whole ``matrix`` is made.
    """
    columns = max(1, _DOUBLE_BLOCK_BYTES // (8 * matrix.shape[0]))
    out = torch.empty((left.shape[0], matrix.shape[1]), dtype=torch.float64, device=matrix.device)
    for first in range(0, matrix.shape[1], columns):
        out[:, first : first + columns] = left @ matrix[:, first : first + columns].double()
    return out


def psm_from_frames(frames: torch.Tensor, rank: int, interpolation: torch.Tensor) -> "PSMFactors":
    """Best rank-``rank`` PSM of ``frames`` whose temporal bases lie in the span of ``U``.

    The frames are projected on the temporal subspace spanned by the columns of the
    interpolation matrix and factorised by a truncated SVD (Eckart-Young in that
    subspace). The temporal bases come out orthonormal and, when ``rank`` exceeds the
    rank of the frames, are completed by further orthonormal directions of the
    subspace (never zero), so that every basis function can still be updated by a
    solver. Complex frames (MRI) get real temporal bases, those of the frames' real and
    imaginary parts together, and complex spatial bases.

    Parameters
    ----------
    frames : torch.Tensor
        (P, N, M) frames, real or complex.
    rank : int
        Number of basis functions r = K + 1, at most d (the columns of ``interpolation``).
    interpolation : torch.Tensor
        (P, d) interpolation matrix ``U``.

    Returns
    -------
    PSMFactors
        Spatial bases (r, N, M) carrying the amplitude, knots (r, d) whose
        interpolation is orthonormal; signs chosen so that each temporal basis has a
        positive largest-magnitude sample.
    """
    p, n, m = frames.shape
    d = interpolation.shape[1]
    if interpolation.shape[0] != p:
        raise ValueError(f"interpolation has {interpolation.shape[0]} rows but there are {p} frames")
    if not 1 <= rank <= d:
        raise ValueError(f"rank must be between 1 and the number of knots ({d}), got {rank}")
    matrix = frames.reshape(p, n * m)
    # Complex frames: real and imaginary parts are pixels of their own for the (real)
    # temporal subspace (a view, no copy).
    real_matrix = torch.view_as_real(matrix).reshape(p, -1) if matrix.is_complex() else matrix
    basis, _ = torch.linalg.qr(interpolation.double())  # (P, d) orthonormal span of U
    coefficients = _double_product(basis.T, real_matrix)  # (d, N M) or (d, 2 N M)
    eigenvalues, eigenvectors = torch.linalg.eigh(coefficients @ coefficients.T)
    order = torch.argsort(eigenvalues, descending=True)[:rank]
    temporal = basis @ eigenvectors[:, order]  # (P, r)
    peak = temporal.gather(0, temporal.abs().argmax(dim=0, keepdim=True))
    temporal = temporal * torch.where(peak < 0, -1.0, 1.0)
    spatial = _double_product(temporal.T, real_matrix)  # (r, N M) or (r, 2 N M)
    if matrix.is_complex():
        spatial = torch.view_as_complex(spatial.reshape(rank, n * m, 2))
    spatial = spatial.reshape(rank, n, m).to(frames.dtype)
    real_dtype = frames.real.dtype
    knots = fit_knots(temporal, interpolation.double()).to(real_dtype)
    return PSMFactors(spatial.contiguous(), knots.contiguous(), interpolation.to(real_dtype))


@dataclasses.dataclass
class PSMFactors:
    """The factors of a PSM: spatial bases and temporal knots with their interpolation.

    Attributes
    ----------
    spatial : torch.Tensor
        (r, N, M) spatial bases ``Lambda``, real, or complex for complex images (MRI).
    knots : torch.Tensor
        (r, d) real knot values ``z``.
    interpolation : torch.Tensor
        (P, d) fixed interpolation matrix ``U``.
    """

    spatial: torch.Tensor
    knots: torch.Tensor
    interpolation: torch.Tensor

    def __post_init__(self):
        r = self.spatial.shape[0]
        if self.spatial.ndim != 3 or self.knots.ndim != 2 or self.interpolation.ndim != 2:
            raise ValueError("PSM factors need spatial (r, N, M), knots (r, d) and interpolation (P, d)")
        if self.knots.shape != (r, self.interpolation.shape[1]):
            raise ValueError(
                f"knots must have shape ({r}, {self.interpolation.shape[1]}) to match spatial bases "
                f"and interpolation, got {tuple(self.knots.shape)}"
            )

    @property
    def rank(self) -> int:
        """Number of basis functions r = K + 1."""
        return self.spatial.shape[0]

    def temporal(self) -> torch.Tensor:
        """Temporal bases ``Psi = U z^T``, (P, r)."""
        return self.interpolation @ self.knots.T

    def frames(self) -> torch.Tensor:
        """The modelled frames ``Lambda Psi^T``, (P, N, M)."""
        return synthesize(self.spatial, self.temporal())

    def penalty(self, xi: float, chi: float) -> float:
        """``(xi/2) ||Psi||_F^2 + (chi/2) ||Lambda||_F^2`` (Frobenius penalties of the factors)."""
        return 0.5 * xi * float(self.temporal().double().square().sum()) + 0.5 * chi * float(
            self.spatial.abs().double().square().sum()
        )

    def normalized(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The same model with unit-norm temporal bases ordered by decreasing energy.

        Returns
        -------
        spatial : torch.Tensor
            (r, N, M), scaled by the norms of the temporal bases.
        temporal : torch.Tensor
            (P, r), each column of unit Euclidean norm (zero columns stay zero).
        """
        temporal = self.temporal()
        norms = torch.linalg.vector_norm(temporal, dim=0)
        spatial = self.spatial * norms[:, None, None]
        temporal = temporal / torch.where(norms > 0, norms, torch.ones_like(norms))
        energy = torch.linalg.vector_norm(spatial.reshape(self.rank, -1), dim=1)
        order = torch.argsort(energy, descending=True)
        return spatial[order], temporal[:, order]
