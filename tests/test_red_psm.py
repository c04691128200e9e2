"""RED-PSM: the ADMM steps, the runner integration (resume, callbacks), errors (tiny sizes)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from imaging import reconstruct
from imaging.metrics import psnr
from imaging.solvers import ParameterError
from imaging.solvers.red_psm import RedPSMSolver
from imaging.simulate import simulate

SMALL = {"order": 3, "knots": 4, "init_knots": 4}


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def walnut():
    return simulate("walnut", frames=16, size=32, seed=2)


class LinearSmoother(nn.Module):
    """A symmetric linear denoiser ``W`` (3x3 binomial blur, zero padding): RED's rho is convex."""

    def forward(self, x):
        kernel = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16
        return nn.functional.conv2d(x, kernel[None, None], padding=1)


def _solver(measurements, **params):
    solver = RedPSMSolver(measurements, RedPSMSolver.make_params(**{**SMALL, **params}, denoiser=LinearSmoother()))
    solver._ensure_initialised()
    return solver


def _psm_lagrangian(solver, factors, target):
    return solver.problem.terms(factors, solver.params.beta, target)["total"]


def test_psm_step_decreases_the_augmented_lagrangian(walnut):
    solver = _solver(walnut, lam=0.05, beta=0.05)
    for _ in range(3):
        target = (solver.f - solver.dual).clone()
        before = _psm_lagrangian(solver, solver.factors, target)
        solver.step()
        solver.iteration += 1
        after = _psm_lagrangian(solver, solver.factors, target)
        assert after < before


def test_f_step_solves_the_red_fixed_point_for_a_linear_denoiser(walnut):
    lam, beta = 0.05, 0.05
    solver = _solver(walnut, lam=lam, beta=beta, red_iterations=60, nonnegative="off")
    solver.step()
    # Stationarity of lam rho(f) + beta/2 ||f - v||^2 with v = f_PSM + gamma_old = f + gamma_new.
    f, dual = solver.f, solver.dual
    gradient = lam * (f - solver._mask(solver._denoise(f))) - beta * dual
    assert float(gradient.norm()) < 1e-5 * float((beta * dual).norm() + lam * f.norm())


def test_one_f_step_decreases_the_f_objective(walnut):
    lam, beta = 0.05, 0.05
    solver = _solver(walnut, lam=lam, beta=beta, red_iterations=1)
    solver.step()
    solver.iteration += 1
    previous = solver.f.clone()
    solver.step()
    v = solver.f + solver.dual  # f_PSM + gamma_old of this step

    def objective(x):
        return float(0.5 * lam * (x * (x - solver._mask(solver._denoise(x)))).sum() + 0.5 * beta * (x - v).square().sum())

    assert objective(solver.f) < objective(previous)


@pytest.mark.parametrize("schedule", [{}, {"denoise_stride": 2, "red_iterations": 2, "denoise_batch": 2}])
def test_block_wise_f_and_dual_steps_equal_the_whole_stack(walnut, monkeypatch, schedule):
    from imaging.solvers import red_psm

    states = []
    for block_bytes in (2**40, 1):  # one block; the smallest blocks (stride x batch frames)
        monkeypatch.setattr(red_psm, "F_STEP_BLOCK_BYTES", block_bytes)
        solver = _solver(walnut, **schedule)
        unit = solver.params.denoise_stride * solver.denoise_batch
        assert solver._block_frames() >= 16 if block_bytes > 1 else solver._block_frames() == unit < 16
        for _ in range(3):
            entry = solver.step()
            solver.iteration += 1
        states.append((solver.f.clone(), solver.dual.clone(), entry))
    (f_whole, dual_whole, entry_whole), (f_blocks, dual_blocks, entry_blocks) = states
    assert torch.allclose(f_blocks, f_whole, rtol=0, atol=1e-6) and torch.allclose(dual_blocks, dual_whole, rtol=0, atol=1e-6)
    for key in ("relative_change", "primal_residual", "data_residual"):
        assert entry_blocks[key] == pytest.approx(entry_whole[key], rel=1e-5)
    # f_PSM of a block of frames is those frames of the whole product.
    spatial, temporal = solver.factors.spatial, solver.factors.temporal()
    assert torch.allclose(red_psm.synthesize(spatial, temporal[4:9]), solver.factors.frames()[4:9], rtol=0, atol=1e-6)


def test_patches_by_default_where_a_frame_exceeds_the_denoiser_memory_give_the_same_result(walnut, monkeypatch):
    from imaging.denoisers import inference
    from imaging.denoisers.dncnn import DnCNN

    torch.manual_seed(0)
    denoiser = DnCNN(depth=3, width=4).eval()  # receptive radius 3: the tiling is exact
    params = dict(SMALL, max_iter=2, denoiser=denoiser)
    whole = reconstruct(walnut, "red-psm", **params)
    monkeypatch.setattr(inference, "DENOISER_WORKING_BYTES", 20 * 20 * inference.working_bytes_per_pixel(denoiser))
    monkeypatch.setattr(inference, "AUTO_PATCH_SIZE", 20)
    solver = RedPSMSolver(walnut, RedPSMSolver.make_params(**params))
    assert (solver.denoise_patch, solver.denoise_batch) == (20, 1)
    patched = reconstruct(walnut, "red-psm", **params)
    assert np.allclose(patched.reconstruction, whole.reconstruction, rtol=0, atol=1e-5 * np.abs(whole.reconstruction).max())


def test_nonnegative_f_step_solves_the_constrained_fixed_point(walnut):
    """KKT of lam rho(f) + beta/2 ||f - v||^2 on f >= 0: zero gradient where f > 0, >= 0 where f = 0."""
    lam, beta = 0.05, 0.05
    solver = _solver(walnut, lam=lam, beta=beta, red_iterations=60)
    assert solver.nonnegative  # tomography: "auto" is on
    solver.step()
    f, dual = solver.f, solver.dual
    assert float(f.min()) >= 0.0 and int((f == 0).sum()) > 0  # the constraint is active somewhere
    gradient = lam * (f - solver._mask(solver._denoise(f))) - beta * dual
    scale = float((beta * dual).norm() + lam * f.norm())
    assert float(gradient[f > 0].norm()) < 1e-5 * scale
    assert float(gradient[f == 0].min()) > -1e-5 * scale


def test_nonnegativity_follows_the_modality_unless_set(walnut):
    assert not _solver(walnut, nonnegative="off").nonnegative
    mri = simulate("cardiac", frames=8, size=16, lines_per_frame=4, seed=1)
    assert not RedPSMSolver(mri, RedPSMSolver.make_params(**SMALL, denoiser=LinearSmoother())).nonnegative
    # MRI images are complex: no order, and forcing f >= 0 is refused.
    with pytest.raises(ParameterError, match="does not apply to complex images"):
        RedPSMSolver(mri, RedPSMSolver.make_params(**SMALL, nonnegative="on", denoiser=LinearSmoother()))
    forced = RedPSMSolver(walnut, RedPSMSolver.make_params(**SMALL, nonnegative="on", denoiser=LinearSmoother()))
    assert forced.nonnegative
    result = reconstruct(walnut, "red-psm", max_iter=3, **SMALL)
    assert float(result.reconstruction.min()) >= 0.0
    unconstrained = reconstruct(walnut, "red-psm", max_iter=3, nonnegative="off", **SMALL)
    assert float(unconstrained.reconstruction.min()) < 0.0


def test_cg_steps_follow_the_modality_unless_set(walnut, monkeypatch):
    from imaging.solvers.psm import subproblem

    steps = []

    def counting(apply_matrix, rhs, start, iterations, precondition=None):
        steps.append(iterations)
        return conjugate_gradient(apply_matrix, rhs, start, iterations, precondition)

    conjugate_gradient = subproblem.conjugate_gradient
    monkeypatch.setattr(subproblem, "conjugate_gradient", counting)
    mri = simulate("cardiac", frames=8, size=16, lines_per_frame=4, coils=2)
    for measurements, params, expected in (
        (walnut, {}, 8),  # tomography: the operator's lambda_cg_iterations
        (walnut, {"cg_iterations": 5}, 5),
        (mri, {"order": 3, "knots": 4}, 16),  # multi-coil MRI: Lambda by CG, 16 steps
    ):
        steps.clear()
        solver = RedPSMSolver(
            measurements, RedPSMSolver.make_params(**{**SMALL, **params}, denoiser=LinearSmoother())
        )
        solver.step()
        assert steps and set(steps) == {expected}


def test_red_psm_beats_fbp_window_on_a_tiny_phantom(walnut):
    red = reconstruct(walnut, "red-psm", max_iter=10, **SMALL)
    fbp = reconstruct(walnut, "fbp-window")
    assert red.reconstruction.shape == walnut.ground_truth.shape
    assert psnr(red.reconstruction, walnut.ground_truth) > psnr(fbp.reconstruction, walnut.ground_truth) + 1.0
    assert red.extras["spatial_bases"].shape == (4, 32, 32)
    assert red.extras["temporal_bases"].shape == (16, 4)


def test_checkpoint_and_resume_continue_bit_for_bit(walnut, tmp_path):
    params = dict(SMALL, denoise_stride=2, tol=0.0)
    full = reconstruct(walnut, "red-psm", max_iter=4, **params)
    checkpoint = tmp_path / "run.ckpt"
    first = reconstruct(walnut, "red-psm", max_iter=2, checkpoint=checkpoint, checkpoint_every=1, **params)
    assert len(first.history) == 2 and checkpoint.exists()
    resumed = reconstruct(walnut, "red-psm", max_iter=4, checkpoint=checkpoint, resume=True, **params)
    assert [h["iteration"] for h in resumed.history] == [1, 2, 3, 4]
    assert np.array_equal(resumed.reconstruction, full.reconstruction)
    assert resumed.history[-1]["data_residual"] == full.history[-1]["data_residual"]


def test_runs_are_deterministic(walnut):
    a = reconstruct(walnut, "red-psm", max_iter=2, **SMALL)
    b = reconstruct(walnut, "red-psm", max_iter=2, **SMALL)
    assert np.array_equal(a.reconstruction, b.reconstruction)


def test_callback_stops_the_run(walnut):
    seen = []

    def callback(info):
        seen.append(info.iteration)
        assert info.estimate().shape == (16, 32, 32)
        return info.iteration < 2

    result = reconstruct(walnut, "red-psm", max_iter=10, callback=callback, **SMALL)
    assert seen == [1, 2]
    assert result.stop_reason == "stopped"
    assert len(result.history) == 2


def test_red_psm_on_dynamic_mri_improves_on_its_initialisation():
    m = simulate("cardiac", frames=16, size=32, lines_per_frame=6, seed=1)
    red = reconstruct(m, "red-psm", max_iter=8, **SMALL)
    from imaging.solvers.psm.initialisation import kspace_centre_frames

    start = kspace_centre_frames(m).numpy()
    assert red.reconstruction.dtype == np.complex64  # complex images: scored by their magnitude
    assert psnr(np.abs(red.reconstruction), m.ground_truth) > psnr(np.abs(start), m.ground_truth) + 1.0


def test_denoiser_precision_resolves_per_device_and_bfloat16_keeps_the_run(walnut, monkeypatch):
    from imaging.denoisers import inference

    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(inference, "native_bfloat16", lambda device, native=native: native)
        assert RedPSMSolver(walnut, RedPSMSolver.make_params(**SMALL)).denoiser_precision == expected
    explicit = RedPSMSolver(walnut, RedPSMSolver.make_params(**SMALL, denoiser_precision="float32"))
    assert explicit.denoiser_precision == "float32"
    # The presets that reproduce earlier numbers keep float32 everywhere.
    for preset in ("previous", "paper"):
        assert RedPSMSolver.presets[preset]["denoiser_precision"] == "float32"
    runs = {
        precision: reconstruct(walnut, "red-psm", max_iter=6, denoiser_precision=precision, **SMALL)
        for precision in ("float32", "bfloat16")
    }
    scores = {precision: psnr(run.reconstruction, walnut.ground_truth) for precision, run in runs.items()}
    assert abs(scores["bfloat16"] - scores["float32"]) < 0.05
    assert not np.array_equal(runs["bfloat16"].reconstruction, runs["float32"].reconstruction)


def test_automatic_iteration_cap_keeps_the_work_of_45_iterations_of_256_frames(walnut, monkeypatch):
    from imaging.solvers import red_psm

    assert [red_psm.automatic_max_iter(p) for p in (16, 64, 128, 200, 256, 1024)] == [100, 100, 90, 58, 45, 45]
    assert RedPSMSolver.make_params().max_iter == 0
    assert RedPSMSolver(walnut, RedPSMSolver.make_params(**SMALL)).max_iter == 100  # P = 16
    assert RedPSMSolver(walnut, RedPSMSolver.make_params(**SMALL, max_iter=7)).max_iter == 7
    # The runner loops up to the solver's resolved cap.
    monkeypatch.setattr(red_psm, "automatic_max_iter", lambda n_frames: 3)
    result = reconstruct(walnut, "red-psm", tol=0.0, **SMALL)
    assert len(result.history) == 3 and result.stop_reason == "max_iter" and result.params["max_iter"] == 0
    with pytest.raises(ParameterError, match="max_iter must be >= 0"):
        RedPSMSolver.make_params(max_iter=-1)


def test_output_is_the_last_denoiser_output_or_f(walnut):
    from imaging.solvers.base import image_array

    solver = _solver(walnut, nonnegative="on", lam=0.5, denoiser_precision="float32")
    # Before the first f step there is no denoiser output: the estimate is f.
    np.testing.assert_array_equal(solver.estimate(), image_array(solver.f * solver.scale))
    for _ in range(2):
        f_before = solver.f.clone()
        solver.step()
        solver.iteration += 1
    # "denoised": the denoiser's output on the f the last f step started from, on the support, >= 0.
    expected = solver._mask(LinearSmoother()(f_before[:, None])[:, 0]).clamp_min(0.0) * solver.scale
    np.testing.assert_allclose(solver.estimate(), image_array(expected), rtol=1e-5, atol=1e-6)
    assert not np.allclose(solver.estimate(), image_array(solver.f * solver.scale), atol=1e-3)
    as_f = _solver(walnut, nonnegative="on", lam=0.5, denoiser_precision="float32", output="f")
    for _ in range(2):
        as_f.step()
        as_f.iteration += 1
    np.testing.assert_array_equal(as_f.estimate(), image_array(as_f.f * as_f.scale))
    # The choice changes what is returned, not the iterates.
    torch.testing.assert_close(as_f.f, solver.f)
    # The kept output is one more (P, N, N) stack in the memory model.
    from imaging.solvers.memory import ProblemSize

    size = ProblemSize.tomography(512, 64, 1, None, False)
    kept = RedPSMSolver.estimate_size_bytes(size, RedPSMSolver.make_params())
    assert kept - RedPSMSolver.estimate_size_bytes(size, RedPSMSolver.make_params(output="f")) == size.stack_bytes


def test_strided_run_returns_each_frames_latest_denoiser_output(walnut):
    from imaging.solvers.base import image_array

    solver = _solver(walnut, nonnegative="on", lam=0.5, denoiser_precision="float32", denoise_stride=2)
    starts = []
    for _ in range(3):
        starts.append(solver.f.clone())
        solver.step()
        solver.iteration += 1
    # Iteration 0 denoises every frame, iteration 1 the odd frames, iteration 2 the even ones:
    # the even frames hold the output on the iterate of the last step, the odd ones the step before.
    latest = torch.empty_like(solver.f)
    latest[0::2] = LinearSmoother()(starts[2][0::2, None])[:, 0]
    latest[1::2] = LinearSmoother()(starts[1][1::2, None])[:, 0]
    expected = solver._mask(latest).clamp_min(0.0) * solver.scale
    np.testing.assert_allclose(solver.estimate(), image_array(expected), rtol=1e-5, atol=1e-6)


def test_output_f_is_pinned_where_earlier_numbers_are_reproduced():
    from imaging.run.training_pairs import RED_PSM_RUN, RED_PSM_V3_RUN

    assert RedPSMSolver.make_params().output == "denoised"
    for preset in ("previous", "paper"):
        assert RedPSMSolver.presets[preset]["output"] == "f"
    # The shipped denoisers were trained on pairs of red-psm iterates f.
    for _, params, _ in (RED_PSM_RUN, RED_PSM_V3_RUN):
        assert params["output"] == "f"


@pytest.mark.parametrize(
    "bad",
    [{"order": -1}, {"knots": 1}, {"lam": -0.1}, {"beta": 0.0}, {"denoise_stride": 0}, {"patch_size": -8},
     {"nonnegative": "yes"}, {"denoiser_precision": "half"}, {"output": "psm"}, {"coarse_size": 8}, {"coarse_size": -1}, {"refine_iterations": 0}],
)
def test_bad_parameters_raise_parameter_error(bad):
    with pytest.raises(ParameterError):
        RedPSMSolver.make_params(**bad)


def test_unknown_denoiser_is_a_parameter_error(walnut):
    with pytest.raises(ParameterError, match="denoiser"):
        reconstruct(walnut, "red-psm", max_iter=1, denoiser="no-such-weights", **SMALL)


# -- the denoiser as a torch.nn.Module ------------------------------------------------------------

TINY = {"order": 2, "knots": 4, "init_knots": 4, "max_iter": 2}


@pytest.fixture(scope="module")
def tiny():
    return simulate("walnut", frames=8, size=16, seed=3)


def test_red_psm_runs_with_a_denoiser_module_built_in_memory(tiny):
    from imaging.denoisers import DnCNN, describe_module

    torch.manual_seed(0)
    module = DnCNN(depth=3, width=8).train()
    result = reconstruct(tiny, "red-psm", denoiser=module, **TINY)
    assert result.reconstruction.shape == (8, 16, 16) and np.all(np.isfinite(result.reconstruction))
    # The parameters record the module by name and weights digest, and stay JSON.
    assert result.params["denoiser"] == describe_module(module)
    assert result.params["denoiser"].startswith("module:DnCNN:sha256=")
    json.loads(json.dumps(result.params))
    # The run used a copy: the caller's module keeps its mode and trainable weights.
    assert module.training and all(p.requires_grad for p in module.parameters())


def test_automatic_denoiser_is_the_ensemble_up_to_64_frames():
    from imaging.solvers.red_psm import AUTO_ENSEMBLE_MAX_FRAMES, automatic_denoiser, resolve_denoiser_name

    assert automatic_denoiser(64) == automatic_denoiser(AUTO_ENSEMBLE_MAX_FRAMES) == "dncnn-e3"
    assert automatic_denoiser(AUTO_ENSEMBLE_MAX_FRAMES + 1) == automatic_denoiser(256) == "dncnn-v3"
    assert resolve_denoiser_name("dncnn-v2", 64) == "dncnn-v2" and resolve_denoiser_name("auto", 300) == "dncnn-v3"


def test_the_solver_records_the_denoiser_it_resolved(tiny):
    solver = RedPSMSolver(tiny, RedPSMSolver.Params(**TINY))
    assert solver.denoiser_name == "dncnn-e3" and solver.denoiser.members == 3
    solver = RedPSMSolver(tiny, RedPSMSolver.Params(**TINY, denoiser="dncnn-v2"))
    assert solver.denoiser_name == "dncnn-v2" and solver.denoiser.members == 1


def test_the_module_passed_is_the_denoiser_used(tiny):
    from imaging.denoisers import load_denoiser

    shipped = reconstruct(tiny, "red-psm", **TINY).reconstruction  # denoiser "auto": dncnn-e3 for 8 frames
    same_weights = reconstruct(tiny, "red-psm", denoiser=load_denoiser("dncnn-e3"), **TINY).reconstruction
    identity = reconstruct(tiny, "red-psm", denoiser=nn.Identity(), **TINY).reconstruction
    assert np.array_equal(same_weights, shipped)
    assert np.linalg.norm(identity - shipped) > 1e-2 * np.linalg.norm(shipped)


def test_resume_of_a_module_run_needs_the_same_weights(tiny, tmp_path):
    from imaging.denoisers import load_denoiser

    module = load_denoiser("default")
    full = reconstruct(tiny, "red-psm", denoiser=module, **TINY)
    checkpoint = tmp_path / "module.ckpt"
    reconstruct(tiny, "red-psm", denoiser=module, checkpoint=checkpoint, **{**TINY, "max_iter": 1})
    resumed = reconstruct(tiny, "red-psm", denoiser=module, checkpoint=checkpoint, resume=True, **TINY)
    assert [h["iteration"] for h in resumed.history] == [1, 2]
    assert np.array_equal(resumed.reconstruction, full.reconstruction)
    changed = load_denoiser("default")
    with torch.no_grad():
        next(changed.parameters())[0] += 1e-3
    with pytest.raises(ParameterError, match="other settings"):
        reconstruct(tiny, "red-psm", denoiser=changed, checkpoint=checkpoint, resume=True, **TINY)
    # The recorded description is not a denoiser: it names weights that only the module holds.
    with pytest.raises(ParameterError, match="in-memory module"):
        reconstruct(tiny, "red-psm", denoiser=full.params["denoiser"], **TINY)


def test_denoiser_parameter_types():
    from pathlib import Path

    assert RedPSMSolver.make_params(denoiser=Path("weights.pt")).denoiser == "weights.pt"
    with pytest.raises(ParameterError, match="torch.nn.Module"):
        RedPSMSolver.make_params(denoiser=3)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda: simulate("walnut", frames=16, size=32, seed=2, protocol="fine-grid"), id="ct"),
        pytest.param(lambda: simulate("cardiac", frames=16, size=32, lines_per_frame=6, seed=1), id="mri"),
    ],
)
def test_a_long_run_does_not_drift_from_its_best_iterate(case):
    """No semi-convergence (issue 10): 60 iterations without a stopping rule end within
    0.3 dB of the best iterate, with the default denoiser (``dncnn-v1`` peaks at iteration 8
    on the CT case and ends 1.5 dB below)."""
    measurements = case()
    result = reconstruct(measurements, "red-psm", max_iter=60, tol=0.0, order=3, knots=8, init_knots=4)
    curve = [entry["psnr"] for entry in result.history]
    assert len(curve) == 60
    assert curve[-1] >= max(curve) - 0.3
    assert curve[-1] > curve[0] + 0.5  # and the run did improve on its start


@pytest.fixture(scope="module")
def fine_walnut():
    return simulate("walnut", frames=16, size=32, seed=2, protocol="fine-grid")


def test_coarse_to_fine_levels():
    from imaging.solvers.red_psm import coarse_levels

    def walnut_of(size):
        return simulate("walnut", frames=2, size=size, noise=0.0)

    assert [coarse_levels(walnut_of(n), 16) for n in (16, 30, 32, 64, 66)] == [0, 0, 1, 2, 1]
    assert coarse_levels(walnut_of(64), 0) == 0
    assert coarse_levels(simulate("cardiac", frames=2, size=64), 16) == 0  # tomography only


def test_coarse_to_fine_start_refines_the_coarse_solution(fine_walnut):
    """The run solves on the 16-pixel grid until its stopping rule (or its share of
    ``max_iter``), then takes
    ``refine_iterations`` iterations on the 32-pixel grid, which fit the data better and
    improve on the interpolated coarse solution."""
    seen = []

    def callback(info):
        seen.append(info.estimate().shape)

    result = reconstruct(
        fine_walnut, "red-psm", coarse_size=16, refine_iterations=3, max_iter=20, callback=callback, **SMALL
    )
    grids = [entry["grid_size"] for entry in result.history]
    coarse_iterations = grids.count(16.0)
    assert grids == [16.0] * coarse_iterations + [32.0] * 3 and 5 <= coarse_iterations <= 17
    assert result.stop_reason == "converged"
    assert set(seen) == {(16, 32, 32)} and result.reconstruction.shape == (16, 32, 32)
    assert result.extras["spatial_bases"].shape == (4, 32, 32)
    refined = result.history[coarse_iterations:]
    # Scored on the coarse grid only every metrics_every (10) iterations and where it hands over.
    scored = [entry["iteration"] for entry in result.history[:coarse_iterations] if "psnr" in entry]
    assert scored == [i for i in range(1, coarse_iterations + 1) if i % 10 == 0 or i == coarse_iterations]
    assert all("psnr" in entry for entry in refined)
    assert refined[-1]["data_residual"] < 0.8 * refined[0]["data_residual"]
    assert refined[-1]["psnr"] > result.history[coarse_iterations - 1]["psnr"] + 0.3


def test_coarse_to_fine_checkpoint_resumes_bit_for_bit(fine_walnut, tmp_path):
    """A run stopped on the coarse grid resumes there and through the refinement."""
    params = dict(SMALL, coarse_size=16, refine_iterations=2, tol=0.0)
    full = reconstruct(fine_walnut, "red-psm", max_iter=6, **params)
    assert [entry["grid_size"] for entry in full.history] == [16.0] * 4 + [32.0] * 2
    checkpoint = tmp_path / "run.ckpt"
    stopped = reconstruct(
        fine_walnut, "red-psm", max_iter=6, checkpoint=checkpoint, checkpoint_every=1,
        callback=lambda info: info.iteration < 3, **params,
    )
    assert len(stopped.history) == 3
    resumed = reconstruct(fine_walnut, "red-psm", max_iter=6, checkpoint=checkpoint, resume=True, **params)
    assert np.array_equal(resumed.reconstruction, full.reconstruction)
    assert resumed.history[-1]["data_residual"] == full.history[-1]["data_residual"]
