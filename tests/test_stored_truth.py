"""A measurement file's ground truth scored from the file (imaging.io.open_ground_truth)."""

import dataclasses

import numpy as np
import pytest

from imaging import load_measurements, load_reconstruction, reconstruct, save_measurements
from imaging.cli import EXIT_BAD_INPUT, main
from imaging.io import FileFormatError, StoredFrames, open_ground_truth
from imaging.measurements import MeasurementError
from imaging.run.runner import ReferenceScorer
from imaging.simulate import simulate, simulate_volume_tomography

FRAMES, SIZE = 20, 24


@pytest.fixture(scope="module")
def walnut():
    return simulate("walnut", frames=FRAMES, size=SIZE, seed=3)


@pytest.fixture(scope="module", params=[".npz", ".h5"])
def walnut_file(walnut, tmp_path_factory, request):
    path = tmp_path_factory.mktemp("stored") / f"walnut{request.param}"
    save_measurements(path, walnut)
    return path


def test_stored_frames_read_what_the_file_holds(walnut, walnut_file):
    truth = walnut.ground_truth
    with open_ground_truth(walnut_file, truth.shape) as stored:
        assert isinstance(stored, StoredFrames)
        assert stored.shape == truth.shape and stored.ndim == 3 and len(stored) == FRAMES
        np.testing.assert_array_equal(stored[3:19], truth[3:19])
        np.testing.assert_array_equal(stored[15:99], truth[15:])
        np.testing.assert_array_equal(stored[[0, 7, 19]], truth[[0, 7, 19]])
        np.testing.assert_array_equal(stored[-1], truth[-1])
        assert stored[5:5].shape == (0, SIZE, SIZE)
        assert all(part.dtype == np.float32 for part in (stored[0], stored[:2], stored[[1]]))
        with pytest.raises(IndexError):
            stored[FRAMES]
        with pytest.raises(IndexError, match="step 1"):
            stored[::2]


def test_volume_slices_and_other_stored_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.random((5, 3, 8, 8)).astype(np.float32)
    angles = np.linspace(0, np.pi, 5, endpoint=False).reshape(5, 1)
    measurements = simulate_volume_tomography(volume, angles, noise=0.0, seed=1)
    for suffix in (".npz", ".h5"):
        path = tmp_path / f"volume{suffix}"
        save_measurements(path, measurements)
        stored = open_ground_truth(path)
        for z in range(3):
            np.testing.assert_array_equal(stored.volume_slice(z)[1:4], volume[1:4, z])
            np.testing.assert_array_equal(stored.volume_slice(z)[[0, 4]], volume[[0, 4], z])
        stored.close()
    # A big-endian float64 member, as another program may write it: read as float32.
    fields = {key: np.asarray(value) for key, value in measurements.to_dict().items()}
    fields["ground_truth"] = volume.astype(">f8")
    np.savez(tmp_path / "big-endian.npz", **fields)
    stored = open_ground_truth(tmp_path / "big-endian.npz")
    assert stored.volume_slice(2)[:].dtype == np.float32
    np.testing.assert_array_equal(stored.volume_slice(2)[:], volume[:, 2])


def test_compressed_or_missing_ground_truth(walnut, tmp_path):
    fields = {key: np.asarray(value) for key, value in walnut.to_dict().items()}
    np.savez_compressed(tmp_path / "compressed.npz", **fields)
    loaded = open_ground_truth(tmp_path / "compressed.npz")  # cannot be read in pieces: loaded
    assert isinstance(loaded, np.ndarray) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, walnut.ground_truth)
    save_measurements(tmp_path / "no-truth.h5", dataclasses.replace(walnut, ground_truth=None))
    assert open_ground_truth(tmp_path / "no-truth.h5") is None
    assert load_measurements(tmp_path / "compressed.npz", ground_truth=False).ground_truth is None


def test_a_file_replaced_during_a_run_is_not_mixed_in(walnut, tmp_path):
    path = tmp_path / "walnut.npz"
    save_measurements(path, walnut)
    stored = open_ground_truth(path)
    save_measurements(path, dataclasses.replace(walnut, ground_truth=walnut.ground_truth + 1))  # atomic replace
    np.testing.assert_array_equal(stored[:], walnut.ground_truth)
    stored.close()


@pytest.mark.parametrize(
    "change, error, message",
    [
        (lambda truth: np.where(truth > 0.5, np.nan, truth), FileFormatError, "NaN"),
        (lambda truth: truth.astype(np.float64) * 1e300, FileFormatError, "too large for float32"),
        (lambda truth: truth[:, :-1], MeasurementError, "must have shape"),
        (lambda truth: np.asfortranarray(truth), FileFormatError, "Fortran order"),
        (lambda truth: truth.astype(np.complex64), FileFormatError, "real-valued"),
    ],
)
def test_bad_ground_truth_is_refused(walnut, tmp_path, change, error, message):
    fields = {key: np.asarray(value) for key, value in walnut.to_dict().items()}
    fields["ground_truth"] = change(walnut.ground_truth)
    np.savez(tmp_path / "bad.npz", **fields)
    with pytest.raises(error, match=message):
        open_ground_truth(tmp_path / "bad.npz", walnut.ground_truth.shape)


def test_scores_from_the_file_equal_scores_in_memory(walnut, walnut_file):
    in_memory = reconstruct(walnut, "red-psm", preset="fast", max_iter=4, threads=1, metrics_every=2)
    measurements = load_measurements(walnut_file, ground_truth=False)
    assert measurements.ground_truth is None
    with open_ground_truth(walnut_file) as stored:
        from_file = reconstruct(measurements, "red-psm", preset="fast", max_iter=4, threads=1, metrics_every=2,
                                ground_truth=stored)
    assert from_file.history[-1]["ssim_sampled"] > 0
    scores = ("psnr", "psnr_frame_mean", "ssim_sampled", "ssim_frames", "data_residual")
    for entry, other in zip(in_memory.history, from_file.history, strict=True):
        assert {k: entry.get(k) for k in scores} == {k: other.get(k) for k in scores}
    rng = np.random.default_rng(2)
    estimate = (walnut.ground_truth + 0.05 * rng.standard_normal(walnut.ground_truth.shape)).astype(np.float32)
    with open_ground_truth(walnut_file) as stored:
        assert ReferenceScorer(stored).score(estimate, True) == ReferenceScorer(walnut.ground_truth).score(estimate, True)


def test_a_volume_is_scored_slice_by_slice_from_the_file(tmp_path):
    rng = np.random.default_rng(1)
    volume = rng.random((4, 2, 8, 8)).astype(np.float32)
    angles = np.linspace(0, np.pi, 4, endpoint=False).reshape(4, 1)
    measurements = simulate_volume_tomography(volume, angles, noise=0.0, seed=1)
    save_measurements(tmp_path / "volume.npz", measurements)
    in_memory = reconstruct(measurements, "fbp-window")
    with open_ground_truth(tmp_path / "volume.npz") as stored:
        from_file = reconstruct(dataclasses.replace(measurements, ground_truth=None), "fbp-window", ground_truth=stored)
    assert [e["psnr"] for e in from_file.history] == [e["psnr"] for e in in_memory.history]
    with pytest.raises(MeasurementError, match="must have shape"):
        reconstruct(measurements, "fbp-window", ground_truth=volume[:, 0])


def test_cli_scores_against_the_file(walnut, walnut_file, tmp_path):
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(walnut_file), "--preset", "fast", "--set", "max_iter=3", "--threads", "1",
                 "-o", str(out)]) == 0
    expected = reconstruct(walnut, "red-psm", preset="fast", max_iter=3, threads=1)
    assert [e["psnr"] for e in load_reconstruction(out).history] == [e["psnr"] for e in expected.history]


def test_cli_refuses_a_bad_ground_truth_before_running(walnut, tmp_path, capsys):
    fields = {key: np.asarray(value) for key, value in walnut.to_dict().items()}
    fields["ground_truth"] = np.full_like(walnut.ground_truth, np.inf)
    np.savez(tmp_path / "inf.npz", **fields)
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(tmp_path / "inf.npz"), "--method", "fbp-window", "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "infinite" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inf.npz"]
