"""The matrix-free conjugate gradient shared by the solvers (imaging.solvers._cg)."""

import torch

from imaging.solvers._cg import conjugate_gradient


def _spd_system(n=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    factor = torch.randn(n, n, generator=generator, dtype=torch.float64)
    matrix = factor @ factor.T + 0.1 * torch.eye(n, dtype=torch.float64)
    rhs = torch.randn(n, generator=generator, dtype=torch.float64)
    return matrix, rhs


def test_cg_solves_a_positive_definite_system_in_n_steps():
    matrix, rhs = _spd_system()
    solution = conjugate_gradient(lambda x: matrix @ x, rhs, torch.zeros_like(rhs), iterations=40)
    assert torch.allclose(solution, torch.linalg.solve(matrix, rhs), rtol=1e-8, atol=1e-8)


def test_an_exact_preconditioner_solves_in_one_step():
    matrix, rhs = _spd_system(seed=1)
    inverse = torch.linalg.inv(matrix)
    solution = conjugate_gradient(lambda x: matrix @ x, rhs, torch.zeros_like(rhs), 1, lambda r: inverse @ r)
    assert torch.allclose(solution, inverse @ rhs, rtol=1e-10, atol=1e-10)


def test_a_solved_system_stops_without_further_products():
    weights = torch.tensor([1.0, 2.0, 4.0])
    solution = torch.tensor([3.0, -1.0, 0.5])
    applications = []

    def apply(x):
        applications.append(x)
        return weights * x

    assert torch.equal(conjugate_gradient(apply, weights * solution, solution, iterations=5), solution)
    assert len(applications) == 1  # the initial residual only: it is zero


def test_cg_keeps_the_shape_of_tensor_unknowns_and_lowers_the_energy():
    generator = torch.Generator().manual_seed(2)
    weights = 1.0 + torch.rand(3, 8, 8, generator=generator)  # a diagonal SPD operator on (3, 8, 8)
    rhs = torch.randn(3, 8, 8, generator=generator)
    start = torch.zeros_like(rhs)

    def energy(x):
        return float(0.5 * (x * weights * x).sum() - (x * rhs).sum())

    values = [energy(conjugate_gradient(lambda x: weights * x, rhs, start, k)) for k in range(4)]
    assert all(later < earlier for earlier, later in zip(values, values[1:]))
    assert conjugate_gradient(lambda x: weights * x, rhs, start, 2).shape == (3, 8, 8)
