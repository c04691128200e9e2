"""The time a run has left (imaging.run.RemainingTime), on a fake clock."""

from types import SimpleNamespace

import pytest

from imaging.run.progress import COST_PER_DOUBLING, RemainingTime, format_seconds


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def info(iteration, max_iter=80, grid=None, full=512, refine=3, slice_index=0, n_slices=1):
    entry = {} if grid is None else {"grid_size": float(grid)}
    solver = SimpleNamespace(measurements=SimpleNamespace(slice_shape=(full, full)),
                             params=SimpleNamespace(refine_iterations=refine))
    return SimpleNamespace(iteration=iteration, max_iter=max_iter, entry=entry, solver=solver,
                           slice_index=slice_index, n_slices=n_slices)


def test_a_plain_run_costs_its_remaining_iterations_at_the_latest_pace():
    clock = FakeClock()
    remaining = RemainingTime(clock)
    clock.now = 5.0  # the first iteration holds the set-up: no pace yet
    assert remaining.update(info(1, max_iter=20)) is None
    for iteration in range(2, 6):
        clock.now += 2.0
        assert remaining.update(info(iteration, max_iter=20)) == pytest.approx((20 - iteration) * 2.0)


def test_a_coarse_to_fine_start_costs_the_finer_grids_to_come():
    clock = FakeClock()
    remaining = RemainingTime(clock)
    clock.now = 3.0
    assert remaining.update(info(1, grid=128)) is None
    clock.now += 1.0
    # 128 -> 256 -> 512: the coarsest grid stops 2 x 3 iterations before max_iter, then 3 on each finer grid.
    expected = (80 - 6 - 2) * 1.0 + 3 * 1.0 * COST_PER_DOUBLING + 3 * 1.0 * COST_PER_DOUBLING**2
    assert remaining.update(info(2, grid=128)) == pytest.approx(expected)
    clock.now += 4.0  # the first iteration on the 256 grid
    assert remaining.update(info(3, grid=256)) == pytest.approx(2 * 4.0 + 3 * 4.0 * COST_PER_DOUBLING)
    for iteration, grid in ((4, 256), (5, 256), (6, 512)):
        clock.now += 4.0 if grid == 256 else 16.0
        left = remaining.update(info(iteration, grid=grid))
    assert left == pytest.approx(2 * 16.0)


def test_a_volume_costs_its_slices_to_come_like_the_current_one():
    clock = FakeClock()
    remaining = RemainingTime(clock)
    clock.now = 4.0
    assert remaining.update(info(1, max_iter=5, full=64, n_slices=3)) is None
    clock.now = 6.0
    # Slice 0: 6 s so far, 3 iterations of 2 s left; two slices of 6 + 6 s to come.
    assert remaining.update(info(2, max_iter=5, full=64, n_slices=3)) == pytest.approx(6.0 + 2 * 12.0)
    clock.now = 20.0  # slice 1 starts: its first iteration is no pace again
    assert remaining.update(info(1, max_iter=5, full=64, slice_index=1, n_slices=3)) is None


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 42.4, 65, 3725)] == ["0 s", "42 s", "1 min 05 s", "1 h 02 min"]


def test_a_real_run_reports_a_bound_after_its_first_iteration():
    from imaging.run import iterate
    from imaging.simulate import simulate

    measurements = simulate("walnut", frames=8, size=32, seed=1)
    remaining = RemainingTime()
    steps = iterate(measurements, "psm", max_iter=4, order=3, knots=8, threads=1)
    bounds = [remaining.update(step) for step in steps]
    assert bounds[0] is None and all(bound is not None and bound >= 0 for bound in bounds[1:])
    assert len(bounds) < 4 or bounds[-1] == 0  # nothing left after max_iter
