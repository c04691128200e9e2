"""Dynamic phantoms: determinism, shapes, value range, support, motion, errors, volumes."""

import numpy as np
import pytest
from skimage.morphology import convex_hull_image

from imaging.operators import disk_mask
from imaging.phantoms import PHANTOMS, cardiac, get_phantom, material, shepp_logan, volume, walnut

NAMES = sorted(PHANTOMS)
TOMOGRAPHY = ["walnut", "shepp_logan", "material"]


def mean_abs(a, b):
    return float(np.mean(np.abs(a.astype(np.float64) - b)))


def test_registry_and_flat_namespace():
    assert PHANTOMS == {"walnut": walnut, "shepp_logan": shepp_logan, "material": material, "cardiac": cardiac}
    for name in NAMES:
        assert get_phantom(name) is PHANTOMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_the_same_frames(name):
    first = get_phantom(name)(frames=4, size=24, seed=3)
    second = get_phantom(name)(frames=4, size=24, seed=3)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_give_different_frames(name):
    # For walnut, material and cardiac the structure is random; for shepp_logan the motion.
    first = get_phantom(name)(frames=4, size=24, seed=0)
    second = get_phantom(name)(frames=4, size=24, seed=1)
    assert mean_abs(first, second) > 1e-3


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [8, 17, 32])
@pytest.mark.parametrize("frames", [1, 2, 7])
def test_shape_dtype_and_value_range(name, size, frames):
    images = get_phantom(name)(frames=frames, size=size, seed=0)
    assert images.shape == (frames, size, size)
    assert images.dtype == np.float32
    assert np.all(np.isfinite(images))
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.2  # the object is there (at N = 8 thin features are averaged away)


@pytest.mark.parametrize("name", NAMES)
def test_many_frames(name):
    images = get_phantom(name)(frames=256, size=16)
    assert images.shape == (256, 16, 16)
    assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.parametrize("name", TOMOGRAPHY)
@pytest.mark.parametrize("size", [17, 32, 33])
def test_tomography_phantoms_are_zero_outside_the_inscribed_circle(name, size):
    images = get_phantom(name)(frames=5, size=size, seed=2)
    assert np.all(images[:, ~disk_mask(size)] == 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_objects_move_smoothly(name):
    images = get_phantom(name)(frames=64, size=32, seed=0).astype(np.float64)
    step = np.mean(np.abs(np.diff(images, axis=0)))
    span = max(mean_abs(frame, images[0]) for frame in images)
    assert span > 0.01, "the object should move"
    assert step < 0.2 * span, "consecutive frames should differ much less than distant ones"
    # Continuous motion: with twice the frame rate, consecutive frames differ about half as much.
    finer = get_phantom(name)(frames=128, size=32, seed=0)
    assert np.mean(np.abs(np.diff(finer, axis=0))) < 0.7 * step


def test_walnut_has_shell_kernel_and_air_gaps():
    image = walnut(frames=1, size=64, seed=0)[0]
    nut = convex_hull_image(image > 0.5)

    def fraction(region):
        return np.sum(region & nut) / np.sum(nut)

    assert fraction(image > 0.8) > 0.05  # dense shell
    assert fraction((image > 0.35) & (image < 0.7)) > 0.3  # kernel
    assert fraction(image < 0.1) > 0.05  # air between shell and kernel and in the folds


def test_material_compresses_and_densifies_monotonically():
    images = material(frames=6, size=48, seed=0)
    rows_with_material = np.sum(np.any(images > 0.3, axis=2), axis=1)
    block_area = np.array([np.sum(convex_hull_image(frame > 0.3)) for frame in images])
    density = images.sum(axis=(1, 2)) / block_area
    assert np.all(np.diff(rows_with_material) <= 0) and rows_with_material[-1] < 0.9 * rows_with_material[0]
    assert np.all(np.diff(block_area) < 0)
    assert np.all(np.diff(density) > 0), "pores shrink, so the block gets denser"


def test_cardiac_blood_pool_beats_periodically():
    frames = 32
    images = cardiac(frames=frames, size=48, seed=0)
    bright_area = np.sum(images > 0.85, axis=(1, 2)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(bright_area - bright_area.mean()))
    assert np.argmax(spectrum[1:]) + 1 == 4, "four heartbeats over the frames"
    assert bright_area.max() > 1.2 * bright_area.min()
    # One beat (8 frames) apart the blood pool is about as large; half a beat apart it is not.
    one_beat = np.mean(np.abs(bright_area[8:] - bright_area[:-8]))
    half_beat = np.mean(np.abs(bright_area[4:] - bright_area[:-4]))
    assert one_beat < 0.6 * half_beat


@pytest.mark.parametrize("name", NAMES)
def test_volume_shape_and_slices(name):
    stack = volume(name, frames=3, size=24, slices=4, seed=1)
    assert stack.shape == (3, 4, 24, 24) and stack.dtype == np.float32
    assert stack.min() >= 0.0 and stack.max() <= 1.0
    for first, second in zip(range(3), range(1, 4)):
        assert mean_abs(stack[:, first], stack[:, second]) > 1e-3, "neighbouring slices differ"
    if name in TOMOGRAPHY:
        assert np.all(stack[:, :, ~disk_mask(24)] == 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_single_slice_volume_is_the_phantom(name):
    np.testing.assert_array_equal(volume(name, 3, 20, 1, seed=2)[:, 0], get_phantom(name)(3, 20, 2))


def test_volume_slices_share_the_motion():
    # The frame-to-frame change of the foam block's height is the same in every slice.
    stack = volume("material", frames=4, size=32, slices=3)
    heights = np.sum(np.any(stack > 0.05, axis=3), axis=2)  # (P, Z)
    np.testing.assert_array_equal(heights, np.repeat(heights[:, :1], 3, axis=1))
    assert np.all(np.diff(heights[:, 0]) < 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames": 0}, "frames must be an integer >= 1"),
        ({"size": 7}, "size must be an integer >= 8"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"frames": 2.5}, "frames must be an integer"),
        ({"size": True}, "size must be an integer"),
    ],
)
@pytest.mark.parametrize("name", NAMES)
def test_bad_arguments(name, kwargs, message):
    arguments = {"frames": 2, "size": 16, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        get_phantom(name)(**arguments)


def test_unknown_name_lists_the_valid_names():
    for call in (lambda: get_phantom("banana"), lambda: volume("banana", 2, 16, 2)):
        with pytest.raises(ValueError, match="unknown phantom 'banana'") as error:
            call()
        assert all(name in str(error.value) for name in NAMES)


def test_volume_rejects_bad_slice_counts():
    with pytest.raises(ValueError, match="slices must be an integer >= 1"):
        volume("walnut", 2, 16, 0)
    with pytest.raises(ValueError, match="frames must be an integer >= 1"):
        volume("walnut", 0, 16, 2)
