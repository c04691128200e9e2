"""PSM model, PSM subproblem solver, initialisations and the ``psm`` baseline (tiny sizes)."""

import math

import numpy as np
import pytest
import torch

from imaging import reconstruct
from imaging.measurements import Measurements
from imaging.metrics import psnr
from imaging.models.psm import PSMFactors, interpolation_matrix, psm_from_frames, synthesize
from imaging.operators import DynamicTomography
from imaging.schedules import view_angles
from imaging.solvers import ParameterError
from imaging.solvers.psm.initialisation import amplitude_scale, kspace_centre_frames, projection_domain_frames
from imaging.solvers.memory import ProblemSize
from imaging.solvers.psm import PSMSolver, PSMSubproblem, model_size
from imaging.simulate import simulate


def _low_rank_object(frames=24, size=32, rank=2, knots=5):
    """A smooth rank-``rank`` object in the PSM span of cubic ``knots`` knots, zero off the disk."""
    grid = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    blobs = [
        torch.exp(-((xx - 0.2) ** 2 + yy**2) / 0.08),
        torch.exp(-((xx + 0.3) ** 2 + (yy - 0.2) ** 2) / 0.04),
        torch.exp(-((xx + 0.1) ** 2 + (yy + 0.4) ** 2) / 0.03),
    ]
    disk = ((xx**2 + yy**2) <= 0.85).float()
    spatial = torch.stack(blobs[:rank]) * disk
    knot_values = torch.stack(
        [torch.ones(knots), torch.sin(torch.linspace(0, math.pi, knots)), torch.linspace(-0.5, 0.5, knots)]
    )[:rank]
    return PSMFactors(spatial, knot_values, interpolation_matrix(frames, knots)).frames()


def _tomography(images, views=1, noise=0.0):
    frames, size, _ = images.shape
    angles = view_angles("bit-reversal", frames, views)
    operator = DynamicTomography(angles, (size, size))
    sinogram = operator.forward(torch.as_tensor(images, dtype=torch.float32)).numpy()
    if noise:
        sinogram = sinogram + noise * np.abs(sinogram).max() * np.random.default_rng(0).standard_normal(sinogram.shape)
    return Measurements(
        modality="tomography",
        image_shape=(size, size),
        sinogram=sinogram.astype(np.float32),
        angles=angles,
        ground_truth=np.asarray(images, dtype=np.float32),
    )


pytestmark = pytest.mark.usefixtures("single_torch_thread")


# -- the model -----------------------------------------------------------------------------


def test_cubic_interpolation_passes_through_knots_and_reproduces_lines():
    knots = 5
    u = interpolation_matrix(4 * (knots - 1) + 1, knots).double()  # frames at every knot
    assert torch.allclose(u[:: 4], torch.eye(knots, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(u.sum(dim=1), torch.ones(u.shape[0], dtype=torch.float64), atol=1e-6)
    x = torch.linspace(0, 1, knots, dtype=torch.float64)
    t = torch.linspace(0, 1, u.shape[0], dtype=torch.float64)
    assert torch.allclose(u @ (3 * x - 1), 3 * t - 1, atol=1e-6)


def test_linear_and_direct_interpolation():
    u = interpolation_matrix(9, 3, "linear")
    values = torch.tensor([0.0, 2.0, 1.0])
    expected = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 1.75, 1.5, 1.25, 1.0])
    assert torch.allclose(u @ values, expected, atol=1e-6)
    assert torch.equal(interpolation_matrix(6, 2, "direct"), torch.eye(6))


@pytest.mark.parametrize("kind, knots", [("cubic", 1), ("linear", 1), ("cubic", 20), ("spline", 4)])
def test_bad_interpolation_settings_are_refused(kind, knots):
    with pytest.raises(ValueError):
        interpolation_matrix(10, knots, kind)


def test_psm_from_frames_is_exact_on_the_model_span_and_orthonormal():
    frames = _low_rank_object(rank=2, knots=5)
    u = interpolation_matrix(frames.shape[0], 5)
    factors = psm_from_frames(frames, 4, u)  # rank above the object's rank: completed, not zero
    temporal = factors.temporal().double()
    assert torch.allclose(temporal.T @ temporal, torch.eye(4, dtype=torch.float64), atol=1e-5)
    assert float((factors.frames() - frames).abs().max()) < 1e-4
    spatial, unit_temporal = factors.normalized()
    assert torch.allclose(synthesize(spatial, unit_temporal), factors.frames(), atol=1e-5)


def test_psm_from_frames_converts_the_frames_in_column_blocks_to_the_same_factors(monkeypatch):
    from imaging.models import psm as psm_module

    frames = torch.rand(20, 15, 15, generator=torch.Generator().manual_seed(0))
    u = interpolation_matrix(20, 6)
    whole = psm_from_frames(frames, 4, u)
    monkeypatch.setattr(psm_module, "_DOUBLE_BLOCK_BYTES", 8 * 20 * 7)  # 7 pixel columns per block
    blocks = psm_from_frames(frames, 4, u)
    assert torch.equal(blocks.spatial, whole.spatial) and torch.equal(blocks.knots, whole.knots)


# -- the subproblem ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def subproblem():
    frames = _low_rank_object(rank=2, knots=5)
    m = _tomography(frames.numpy(), views=1, noise=0.01)
    operator = m.operator()
    u = interpolation_matrix(frames.shape[0], 5)
    problem = PSMSubproblem(
        operator,
        torch.from_numpy(m.sinogram),
        u,
        operator.support_mask(),
        data_weight=1.0 / operator.norm() ** 2,
        xi=1e-3,
        chi=1e-3,
    )
    generator = torch.Generator().manual_seed(0)
    start = PSMFactors(0.1 * torch.randn(3, 32, 32, generator=generator) * operator.support_mask(), torch.randn(3, 5, generator=generator), u)
    target = frames + 0.05 * torch.randn(frames.shape, generator=generator)
    return problem, start, target


def _copy(factors):
    return PSMFactors(factors.spatial.clone(), factors.knots.clone(), factors.interpolation)


def test_spatial_update_decreases_and_solves_the_normal_equations(subproblem):
    problem, start, target = subproblem
    beta = 0.1
    factors = _copy(start)
    values = [problem.terms(factors, beta, target)["total"]]
    for _ in range(3):
        problem.update_spatial(factors, beta, target, iterations=5)
        values.append(problem.terms(factors, beta, target)["total"])
    assert all(b <= a + 1e-6 * abs(a) for a, b in zip(values, values[1:]))  # float32 round-off
    assert values[-1] < 0.7 * values[0]
    # Many more iterations reach the minimiser: the gradient in Lambda vanishes.
    problem.update_spatial(factors, beta, target, iterations=200)
    spatial = factors.spatial.clone().requires_grad_(True)
    frames = synthesize(spatial, factors.temporal())
    residual = problem.operator.forward(frames) - problem.data
    value = 0.5 * problem.data_weight * residual.square().sum() + 0.5 * beta * (frames - target).square().sum()
    value = value + 0.5 * problem.chi * spatial.square().sum()
    (grad,) = torch.autograd.grad(value, spatial)
    grad = grad * problem.support
    rhs_scale = float(torch.linalg.vector_norm(problem.weighted_backprojection)) + beta * float(torch.linalg.vector_norm(target))
    assert float(torch.linalg.vector_norm(grad)) < 1e-3 * rhs_scale


def test_knot_update_is_the_exact_minimiser(subproblem):
    problem, start, target = subproblem
    beta = 0.1
    factors = _copy(start)
    before = problem.terms(factors, beta, target)["total"]
    problem.update_knots(factors, beta, target)
    after = problem.terms(factors, beta, target)["total"]
    assert after < before
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):  # any perturbation of the optimal knots increases Phi
        perturbed = _copy(factors)
        perturbed.knots = factors.knots + 1e-2 * torch.randn(factors.knots.shape, generator=generator)
        assert problem.terms(perturbed, beta, target)["total"] > after



def test_data_gram_in_frame_blocks_equals_the_whole_products(monkeypatch):
    import imaging.solvers.psm.subproblem as subproblem_module

    m = simulate("cardiac", frames=6, size=16, lines_per_frame=4, coils=2, seed=0)
    operator = m.operator()
    problem = PSMSubproblem(operator, operator.measured(m.kspace), interpolation_matrix(6, 3), data_weight=0.5)
    generator = torch.Generator().manual_seed(0)
    spatial = torch.randn(3, 16, 16, dtype=torch.complex64, generator=generator)
    projections = torch.stack([operator.forward(spatial[k].expand(6, 16, 16).contiguous()) for k in range(3)])
    flat = torch.view_as_real(projections).reshape(3, 6, -1).double()
    whole = 0.5 * torch.einsum("kpm,lpm->pkl", flat, flat)  # w Re<A_p Lambda_k, A_p Lambda_l>
    monkeypatch.setattr(subproblem_module, "GRAM_BLOCK_ENTRIES", 1)  # one frame per block
    assert torch.allclose(problem._data_gram(spatial), whole, rtol=1e-12, atol=0)
    # The large-measurement path (applications of A^T A) agrees to float32 precision.
    monkeypatch.setattr(subproblem_module, "GRAM_FROM_PROJECTIONS_ENTRIES", 0)
    assert torch.allclose(problem._data_gram(spatial), whole, rtol=1e-5, atol=1e-5 * float(whole.abs().max()))


def test_a_stack_difference_target_gives_the_sweep_of_the_formed_difference(subproblem):
    from imaging.solvers.psm.subproblem import StackDifference

    problem, start, target = subproblem
    generator = torch.Generator().manual_seed(2)
    dual = 0.1 * torch.randn(target.shape, generator=generator)
    difference = StackDifference(target + dual, dual)
    formed, lazy = _copy(start), _copy(start)
    problem.sweep(formed, 0.1, target, cg_iterations=5)
    problem.sweep(lazy, 0.1, difference, cg_iterations=5)
    assert torch.allclose(lazy.frames(), formed.frames(), rtol=1e-4, atol=1e-4 * float(formed.frames().abs().max()))
    assert problem.terms(lazy, 0.1, difference)["coupling"] == pytest.approx(problem.terms(lazy, 0.1, target)["coupling"], rel=1e-4)


def test_model_change_in_frame_blocks_equals_the_whole_stacks(subproblem):
    from imaging.solvers.psm.solver import model_change, relative_norm

    _, start, _ = subproblem
    moved = _copy(start)
    moved.knots = moved.knots * 1.1 + 0.01
    whole = relative_norm(moved.frames() - start.frames(), moved.frames())
    frame_bytes = 32 * 32 * 4
    assert model_change(moved, start, block_bytes=5 * frame_bytes) == pytest.approx(whole, rel=1e-5)  # blocks of 5 of 24

def test_rebalance_keeps_the_frames_and_lowers_the_penalty(subproblem):
    problem, start, _ = subproblem
    factors = _copy(start)
    factors.spatial = factors.spatial * 50.0
    before_frames = factors.frames()
    before = factors.penalty(problem.xi, problem.chi)
    problem.rebalance(factors)
    assert torch.allclose(factors.frames(), before_frames, rtol=1e-4, atol=1e-5)
    assert factors.penalty(problem.xi, problem.chi) < before


# -- initialisations ---------------------------------------------------------------------------


def test_projection_domain_initialisation_recovers_a_smooth_object():
    frames = _low_rank_object(frames=64, rank=2, knots=5)
    m = _tomography(frames.numpy(), views=1)
    estimate = projection_domain_frames(m.sinogram, m.angles, 32, rank=5, knots=5)
    assert estimate.shape == frames.shape
    assert psnr(estimate.numpy(), frames.numpy()) > 24.0
    assert amplitude_scale(estimate) == pytest.approx(float(frames.max()), rel=0.25)


def test_variable_projection_improves_a_reduced_temporal_model():
    frames = _low_rank_object(frames=64, rank=2, knots=5)
    m = _tomography(frames.numpy(), views=1)
    fixed = projection_domain_frames(m.sinogram, m.angles, 32, rank=2, knots=5, varpro_iterations=0)
    optimised = projection_domain_frames(m.sinogram, m.angles, 32, rank=2, knots=5, varpro_iterations=5)
    assert psnr(optimised.numpy(), frames.numpy()) > psnr(fixed.numpy(), frames.numpy()) + 0.5


def test_kspace_centre_initialisation_is_a_low_pass_of_the_frames():
    m = simulate("cardiac", frames=6, size=32, lines_per_frame=6, noise=0.0, coils=1, phase=False)
    estimate = kspace_centre_frames(m).numpy()
    assert estimate.shape == (6, 32, 32) and estimate.dtype == np.complex64
    estimate = estimate.real  # a real object: the complex low-pass of its frames
    # It keeps the frame means (the k-space DC is always sampled) and correlates with the truth.
    assert np.allclose(estimate.mean(axis=(1, 2)), m.ground_truth.mean(axis=(1, 2)), atol=1e-4)
    assert np.corrcoef(estimate.ravel(), m.ground_truth.ravel())[0, 1] > 0.8



@pytest.mark.parametrize("common_centre", [True, False])
def test_kspace_centre_frames_in_blocks_equal_the_whole_stack(monkeypatch, common_centre):
    import imaging.solvers.psm.initialisation as initialisation
    from imaging.operators import ifft2c

    m = simulate("cardiac", frames=7, size=16, lines_per_frame=4, coils=3, seed=0)
    if not common_centre:  # no location sampled in every frame: each frame's own mask
        common = m.mask.all(axis=0)
        m.mask[0][common] = False
        m.kspace[0][:, common] = 0
    assert m.mask.all(axis=0).any() == common_centre
    keep = m.mask.all(axis=0) if common_centre else m.mask
    coil_images = ifft2c(torch.from_numpy(m.kspace * np.broadcast_to(keep, m.mask.shape)[:, None]))
    maps = torch.from_numpy(m.coil_maps)
    whole = (maps.conj()[None] * coil_images).sum(dim=1) / (maps.abs().square().sum(dim=0) + 1e-12)
    # Blocks of 2 frames (the last one of 1).
    monkeypatch.setattr(initialisation, "KSPACE_CENTRE_BLOCK_BYTES", 2 * 8 * 3 * 16 * 16)
    blocked = kspace_centre_frames(m)
    assert torch.allclose(blocked, whole.to(torch.complex64), atol=1e-6)

# -- the psm baseline ----------------------------------------------------------------------------


def test_psm_with_exact_rank_recovers_a_low_rank_object_from_noiseless_data():
    frames = _low_rank_object(frames=32, rank=2, knots=5)
    m = _tomography(frames.numpy(), views=3)
    result = reconstruct(
        m, "psm", order=1, knots=5, xi=1e-6, chi=1e-6, init_knots=5, max_iter=40, cg_iterations=20, tol=0.0
    )
    assert result.reconstruction.shape == frames.shape
    assert result.history[-1]["psnr"] > 38.0
    objective = [entry["objective"] for entry in result.history]
    # Every sweep is a descent step (float32 round-off aside, near the optimum).
    assert all(b <= a * (1 + 1e-3) for a, b in zip(objective, objective[1:]))
    assert objective[-1] < 0.6 * objective[0]
    assert result.extras["spatial_bases"].shape == (2, 32, 32)
    assert result.extras["temporal_bases"].shape == (32, 2)


@pytest.mark.parametrize(
    "bad",
    [
        {"order": -1},
        {"knots": 1},
        {"order": 8, "knots": 4},
        {"interpolation": "spline"},
        {"xi": -1.0},
        {"init": "magic"},
        {"cg_iterations": 0},
    ],
)
def test_bad_psm_parameters_raise_parameter_error(bad):
    with pytest.raises(ParameterError):
        PSMSolver.make_params(**bad)


def test_initialisation_must_suit_the_modality():
    m = simulate("cardiac", frames=8, size=16, lines_per_frame=4)
    with pytest.raises(ParameterError, match="does not apply"):
        reconstruct(m, "psm", init="projection", order=2, knots=4, max_iter=1)


def test_old_initialisation_module_is_a_deprecated_alias():
    import imaging.solvers.init as old
    from imaging.solvers import psm

    with pytest.warns(DeprecationWarning, match="imaging.solvers.psm.initialisation.amplitude_scale"):
        assert old.amplitude_scale is psm.amplitude_scale
    with pytest.raises(AttributeError):
        old.no_such_name
    with pytest.warns(DeprecationWarning, match="operator_class.initialisations"):
        assert old.INITIALISATIONS_BY_MODALITY["mri"] == ("kspace-centre",)


def test_fbp_svd_initialisation_runs_the_fbp_window_solver_on_the_run_device(monkeypatch):
    from imaging.solvers.psm import initialisation

    devices = []

    class RecordingFBPWindow(initialisation.FBPWindow):
        def __init__(self, measurements, params, device="cpu"):
            devices.append(device)
            super().__init__(measurements, params, device)

    monkeypatch.setattr(initialisation, "FBPWindow", RecordingFBPWindow)
    m = simulate("walnut", frames=8, size=16, seed=3)
    solver = PSMSolver(m, PSMSolver.make_params(order=2, knots=4, init="fbp-svd"), device="cpu")
    solver.step()
    assert devices == [solver.operator.device]


@pytest.mark.parametrize("init", ["fbp-svd", "projection"])
def test_psm_leaves_the_global_random_generators_alone(init):
    m = simulate("walnut", frames=8, size=16, seed=3)
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    solver = PSMSolver(m, PSMSolver.make_params(order=2, knots=4, init_knots=4, init=init))
    solver.step()
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))


@pytest.mark.parametrize(
    "frames, views, expected",
    [(64, 1, (6, 16)), (128, 1, (8, 24)), (256, 1, (10, 24)), (64, 4, (10, 16)), (1024, 1, (10, 24))],
)
def test_automatic_order_and_knots_follow_the_views_measured(frames, views, expected):
    assert model_size(0, 0, frames, views) == expected


@pytest.mark.parametrize("frames", [2, 3, 5, 8, 12, 20, 40])
def test_automatic_model_size_is_valid_for_few_frames(frames):
    order, knots = model_size(0, 0, frames)
    assert 1 <= order + 1 <= knots <= frames
    assert knots >= 2


def test_explicit_order_and_knots_are_kept_and_automatic_order_fits_explicit_knots():
    assert model_size(10, 11, 256) == (10, 11)
    assert model_size(3, 0, 256) == (3, 24)
    assert model_size(0, 5, 256) == (4, 5)  # the rule's 10 does not fit 5 knots


def test_solver_uses_the_automatic_model_size_and_the_memory_estimate_agrees():
    m = simulate("walnut", frames=32, size=16, seed=1)
    solver = PSMSolver(m, PSMSolver.make_params(order=0, knots=0, max_iter=1))
    assert (solver.order, solver.knots) == model_size(0, 0, 32)
    solver.step()
    assert solver.factors.spatial.shape[0] == solver.order + 1
    assert solver.factors.knots.shape == (solver.order + 1, solver.knots)
    assert PSMSolver.model_size(ProblemSize.of(m), solver.params) == (solver.order, solver.knots)


def test_views_per_frame_counts_views_lines_and_shots():
    ct = simulate("walnut", frames=8, size=16, views_per_frame=3, seed=1)
    assert ct.views_per_frame == 3
    mri = simulate("cardiac", frames=8, size=16, lines_per_frame=4)
    assert mri.views_per_frame == pytest.approx(4)
    kspace = np.zeros((8, 1, 2, 24), np.complex64)
    trajectory = np.zeros((8, 2, 24, 2))
    radial = Measurements("mri", (16, 16), kspace=kspace, trajectory=trajectory)
    assert radial.views_per_frame == pytest.approx(2 * 24 / 16)


def test_zero_penalties_take_the_operators_weight_and_explicit_ones_are_kept():
    ct = simulate("walnut", frames=8, size=16, seed=1)
    mri = simulate("cardiac", frames=8, size=16, lines_per_frame=4)
    for m, documented in ((ct, 4.0), (mri, 0.2)):  # docs/design.md
        solver = PSMSolver(m, PSMSolver.make_params(order=2, knots=4, xi=0, chi=0))
        assert solver.xi == solver.chi == m.operator_class.psm_penalty == documented
        solver = PSMSolver(m, PSMSolver.make_params(order=2, knots=4, xi=0.5, chi=3.0))
        assert (solver.xi, solver.chi) == (0.5, 3.0)
