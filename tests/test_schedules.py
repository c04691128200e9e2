"""View-angle schedules and k-t sampling masks (imaging.schedules)."""

import math

import numpy as np
import pytest

from imaging.schedules import (
    GOLDEN_ANGLE,
    MASK_PATTERNS,
    SCHEDULES,
    bit_reversal_order,
    center_rows,
    kt_mask,
    view_angles,
)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("frames, views", [(1, 1), (8, 1), (5, 3), (12, 2)])
def test_angles_shape_dtype_and_range(schedule, frames, views):
    angles = view_angles(schedule, frames, views, seed=3)
    assert angles.shape == (frames, views)
    assert angles.dtype == np.float64
    assert np.all(angles >= 0) and np.all(angles < math.pi)


def test_bit_reversal_first_values_for_256_frames():
    angles = view_angles("bit-reversal", 256)[:, 0]
    expected = np.array([0, 1 / 2, 1 / 4, 3 / 4, 1 / 8, 5 / 8, 3 / 8, 7 / 8]) * math.pi
    np.testing.assert_allclose(angles[:8], expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("frames, views", [(2, 1), (32, 1), (256, 1), (16, 4)])
def test_bit_reversal_permutes_linear_angles_for_powers_of_two(frames, views):
    bit_reversed = view_angles("bit-reversal", frames, views).ravel()
    linear = view_angles("linear", frames, views).ravel()
    np.testing.assert_allclose(np.sort(bit_reversed), linear, rtol=0, atol=1e-14)


@pytest.mark.parametrize("n", [1, 3, 5, 6, 7, 12, 100, 255])
def test_bit_reversal_for_other_lengths_is_the_truncated_power_of_two_order(n):
    order = bit_reversal_order(n)
    assert sorted(order.tolist()) == list(range(n))
    next_power = 1 << max(0, (n - 1).bit_length())
    full_order = bit_reversal_order(next_power)
    np.testing.assert_array_equal(order, full_order[full_order < n])
    angles = view_angles("bit-reversal", n).ravel()
    np.testing.assert_allclose(np.sort(angles), math.pi * np.arange(n) / n, atol=1e-14)


def test_bit_reversal_is_coarse_to_fine():
    # Every prefix of length 2^j of a power-of-two schedule is itself equispaced.
    angles = view_angles("bit-reversal", 64).ravel()
    for j in range(7):
        prefix = np.sort(angles[: 1 << j])
        np.testing.assert_allclose(np.diff(prefix), math.pi / (1 << j), atol=1e-13)


def test_views_of_one_frame_are_consecutive_instants():
    per_frame = view_angles("linear", 4, 3)
    np.testing.assert_allclose(per_frame.ravel(), math.pi * np.arange(12) / 12)
    np.testing.assert_allclose(view_angles("bit-reversal", 4, 3).ravel(), view_angles("bit-reversal", 12, 1).ravel())


def test_golden_angle_steps():
    angles = view_angles("golden-angle", 50).ravel()
    assert math.isclose(math.degrees(GOLDEN_ANGLE), 111.246117975, rel_tol=1e-9)
    steps = np.mod(np.diff(angles), math.pi)
    np.testing.assert_allclose(steps, GOLDEN_ANGLE % math.pi, atol=1e-9)
    assert angles[0] == 0.0
    # No two views coincide, and the views spread over the whole half turn.
    assert np.min(np.diff(np.sort(angles))) > 1e-3
    assert np.max(np.diff(np.sort(angles))) < 3 * math.pi / 50


def test_interlaced_sweeps_fill_each_others_gaps():
    angles = view_angles("interlaced", 32, turns=4).ravel()
    np.testing.assert_allclose(np.sort(angles), view_angles("linear", 32).ravel())
    sweeps = angles.reshape(4, 8)
    assert np.all(np.diff(sweeps, axis=1) > 0)  # a continuous rotation within each sweep
    # the sweeps start at 0, 1/2, 1/4, 3/4 of the angular step: coarse to fine
    np.testing.assert_allclose(sweeps[:, 0] / (np.pi / 8), [0, 0.5, 0.25, 0.75])
    full = view_angles("interlaced", 12, turns=3, arc=2 * np.pi).ravel()
    assert full.max() < 2 * np.pi and np.unique(full).size == 12
    with pytest.raises(ValueError, match="turns"):
        view_angles("interlaced", 4, turns=5)


def test_random_schedule_is_seeded():
    first = view_angles("random", 16, 2, seed=7)
    np.testing.assert_array_equal(first, view_angles("random", 16, 2, seed=7))
    assert not np.allclose(first, view_angles("random", 16, 2, seed=8))


@pytest.mark.parametrize("schedule", ["bit-reversal", "golden-angle", "linear", "interlaced"])
def test_deterministic_schedules_ignore_the_seed(schedule):
    np.testing.assert_array_equal(view_angles(schedule, 10, 2, seed=0), view_angles(schedule, 10, 2, seed=5))


@pytest.mark.parametrize(
    "args, message",
    [
        (("spiral", 8), "unknown schedule"),
        (("linear", 0), "frames"),
        (("linear", 8, 0), "views_per_frame"),
        (("linear", 2.5), "frames"),
    ],
)
def test_angle_errors(args, message):
    with pytest.raises(ValueError, match=message):
        view_angles(*args)


@pytest.mark.parametrize("pattern", MASK_PATTERNS)
@pytest.mark.parametrize(
    "height, width, lines, centre", [(32, 32, 8, 4), (33, 20, 7, 3), (16, 8, 16, 4), (16, 16, 3, 0)]
)
def test_mask_lines_per_frame_and_centre(pattern, height, width, lines, centre):
    frames = 6
    mask = kt_mask(pattern, frames, (height, width), lines, center_lines=centre, seed=1)
    assert mask.shape == (frames, height, width) and mask.dtype == bool
    # Whole rows: every column of a frame is identical.
    assert np.all(mask == mask[:, :, :1])
    rows = mask[:, :, 0]
    np.testing.assert_array_equal(rows.sum(axis=1), lines)
    assert np.all(rows[:, center_rows(height, centre)])


def test_centre_rows_surround_dc():
    np.testing.assert_array_equal(center_rows(32, 4), [14, 15, 16, 17])
    np.testing.assert_array_equal(center_rows(33, 3), [15, 16, 17])
    assert center_rows(8, 0).size == 0


@pytest.mark.parametrize("pattern", MASK_PATTERNS)
def test_masks_change_over_time_and_cover_k_space(pattern):
    mask = kt_mask(pattern, 16, (32, 8), 8, center_lines=4, seed=0)
    rows = mask[:, :, 0]
    assert not np.array_equal(rows[0], rows[1])
    # Over the frames the outer rows get visited (variable density: most of them).
    assert rows.any(axis=0).mean() > 0.8


def test_equispaced_mask_is_a_sheared_lattice():
    height, lines, centre = 36, 8, 4
    mask = kt_mask("equispaced", 8, (height, 4), lines, center_lines=centre)
    outer = np.setdiff1d(np.arange(height), center_rows(height, centre))
    positions = [np.flatnonzero(mask[p, outer, 0]) for p in range(8)]
    # Step 32 / 4 = 8 rows among the outer rows; the offset grows by one per frame.
    for p, pos in enumerate(positions):
        np.testing.assert_array_equal(pos, np.arange(4) * 8 + p)


def test_golden_ratio_mask_follows_the_golden_sequence():
    height, lines = 64, 4
    mask = kt_mask("golden-ratio", 3, (height, 2), lines, center_lines=0)
    inverse_phi = (math.sqrt(5) - 1) / 2
    expected = np.floor(np.mod(np.arange(12) * inverse_phi, 1.0) * height).astype(int)
    for p in range(3):
        np.testing.assert_array_equal(np.flatnonzero(mask[p, :, 0]), np.sort(expected[4 * p : 4 * p + 4]))


def test_variable_density_prefers_the_centre_and_is_seeded():
    height = 64
    mask = kt_mask("variable-density", 400, (height, 2), 12, center_lines=4, seed=2)
    frequency = mask[:, :, 0].mean(axis=0)
    distance = np.abs(np.arange(height) - height // 2)
    assert frequency[(distance > 2) & (distance < 10)].mean() > 2 * frequency[distance > 24].mean()
    np.testing.assert_array_equal(mask, kt_mask("variable-density", 400, (height, 2), 12, center_lines=4, seed=2))
    assert not np.array_equal(mask, kt_mask("variable-density", 400, (height, 2), 12, center_lines=4, seed=3))


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("radial", 4, (16, 16), 4), {}, "unknown mask pattern"),
        (("equispaced", 4, (16, 16), 17), {}, "cannot exceed the 16 rows"),
        (("equispaced", 4, (16, 16), 3), {"center_lines": 4}, "center_lines"),
        (("equispaced", 4, (16, 16), 0), {"center_lines": 0}, "lines_per_frame"),
        (("equispaced", 0, (16, 16), 4), {}, "frames"),
        (("equispaced", 4, (16,), 4), {}, "shape"),
        (("equispaced", 4, (16, 16), 4), {"center_lines": -1}, "center_lines"),
    ],
)
def test_mask_errors(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        kt_mask(*args, **kwargs)
