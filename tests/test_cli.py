"""End-to-end tests of the ``imaging`` command line on tiny problems."""

import json

import numpy as np
import pytest

from imaging import load_measurements, load_reconstruction, save_measurements
from imaging.cli import EXIT_BAD_INPUT, main
from imaging.metrics import psnr


@pytest.fixture(scope="module")
def tiny_walnut(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "walnut.npz"
    status = main(["simulate", "--phantom", "walnut", "--frames", "8", "--size", "32", "--seed", "3", "-o", str(path)])
    assert status == 0
    return path


def test_simulate_writes_a_valid_measurement_file(tiny_walnut):
    m = load_measurements(tiny_walnut)
    assert m.modality == "tomography"
    assert m.sinogram.shape == (8, 1, 32)
    assert m.angles.shape == (8, 1)
    assert m.ground_truth.shape == (8, 32, 32)


def test_simulate_mri(tmp_path):
    path = tmp_path / "cardiac.h5"
    args = ["simulate", "--phantom", "cardiac", "--frames", "4", "--size", "32", "--lines-per-frame", "6"]
    assert main([*args, "--coils", "2", "-o", str(path)]) == 0
    m = load_measurements(path)
    assert m.modality == "mri"
    assert m.kspace.shape == (4, 2, 32, 32)
    assert m.mask.sum(axis=(1, 2)).tolist() == [6 * 32] * 4


def test_simulate_fine_grid_protocol(tmp_path, capsys):
    path = tmp_path / "walnut-fine.npz"
    args = ["simulate", "--phantom", "walnut", "--frames", "4", "--size", "16", "--protocol", "fine-grid"]
    assert main([*args, "-o", str(path)]) == 0
    assert "fine-grid protocol" in capsys.readouterr().out
    m = load_measurements(path)
    assert m.sinogram.shape == (4, 1, 16) and m.ground_truth.shape == (4, 16, 16)


def test_reconstruct_then_evaluate(tiny_walnut, tmp_path, capsys):
    out = tmp_path / "fbp.npz"
    assert main(["reconstruct", str(tiny_walnut), "--method", "fbp-window", "-o", str(out)]) == 0
    result = load_reconstruction(out)
    assert result.reconstruction.shape == (8, 32, 32)
    assert result.method == "fbp-window"
    assert not (tmp_path / "fbp.npz.ckpt").exists()
    capsys.readouterr()
    report = tmp_path / "metrics.json"
    assert main(["evaluate", str(out), "--reference", str(tiny_walnut), "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert "psnr" in table.lower()
    metrics = json.loads(report.read_text())[str(out)]
    truth = load_measurements(tiny_walnut).ground_truth
    zero_psnr = 20 * np.log10((truth.max() - truth.min()) / np.sqrt(np.mean(truth**2)))
    assert metrics["psnr"] > zero_psnr


def test_reconstruct_tif_export(tiny_walnut, tmp_path):
    import tifffile

    out = tmp_path / "fbp.tif"
    assert main(["reconstruct", str(tiny_walnut), "--method", "fbp-window", "-o", str(out)]) == 0
    assert tifffile.imread(out).shape == (8, 32, 32)


def _assert_one_line_error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error" in err[0], err
    return err[0]


def test_missing_input_file(tmp_path, capsys):
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(tmp_path / "nope.npz"), "--method", "fbp-window", "-o", str(out)]) == EXIT_BAD_INPUT
    _assert_one_line_error(capsys)
    assert not out.exists()


def test_corrupt_input_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip file")
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(bad), "--method", "fbp-window", "-o", str(out)]) == EXIT_BAD_INPUT
    _assert_one_line_error(capsys)
    assert list(tmp_path.iterdir()) == [bad]


def test_nan_in_sinogram(tiny_walnut, tmp_path, capsys):
    m = load_measurements(tiny_walnut)
    sinogram = m.sinogram.copy()
    sinogram[2, 0, 5] = np.nan
    path = tmp_path / "nan.npz"
    np.savez(path, modality="tomography", sinogram=sinogram, angles=m.angles, image_shape=np.array([32, 32]))
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(path), "--method", "fbp-window", "-o", str(out)]) == EXIT_BAD_INPUT
    assert "nan" in _assert_one_line_error(capsys).lower()
    assert not out.exists()


@pytest.mark.parametrize(
    "keys, fragment",
    [
        ({"geometry": "cone", "source_origin": 100.0, "origin_detector": 50.0}, "'geometry' 'cone' is not supported"),
        ({"cone_angle": 0.1}, "unknown key(s) 'cone_angle'"),
    ],
)
def test_unknown_physics_is_refused_not_reconstructed(tiny_walnut, tmp_path, capsys, keys, fragment):
    """A file describing physics the toolkit does not model exits 2 instead of a wrong image."""
    with np.load(tiny_walnut) as data:
        arrays = {**dict(data), **{k: np.array(v) for k, v in keys.items()}}
    path = tmp_path / "other-physics.npz"
    np.savez(path, **arrays)
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(path), "--method", "fbp-window", "-o", str(out)]) == EXIT_BAD_INPUT
    assert fragment in _assert_one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--method", "no-such-method"], "unknown method"),
        (["--method", "fbp-window", "--max-iter", "0"], "max_iter"),
        (["--method", "fbp-window", "--set", "no_such_parameter=3"], "no_such_parameter"),
        (["--method", "fbp-window", "--preset", "no-such-preset"], "preset"),
    ],
)
def test_impossible_parameters(tiny_walnut, tmp_path, capsys, extra, fragment):
    out = tmp_path / "out.npz"
    assert main(["reconstruct", str(tiny_walnut), *extra, "-o", str(out)]) == EXIT_BAD_INPUT
    assert fragment in _assert_one_line_error(capsys)
    assert not out.exists()


def test_unknown_phantom(tmp_path, capsys):
    out = tmp_path / "x.npz"
    assert main(["simulate", "--phantom", "teapot", "-o", str(out)]) == EXIT_BAD_INPUT
    assert "teapot" in _assert_one_line_error(capsys)
    assert not out.exists()


def test_evaluate_shape_mismatch(tiny_walnut, tmp_path, capsys):
    out = tmp_path / "fbp.npz"
    assert main(["reconstruct", str(tiny_walnut), "--method", "fbp-window", "-o", str(out)]) == 0
    other = tmp_path / "other.npz"
    m = load_measurements(tiny_walnut)
    m.ground_truth = np.zeros((8, 32, 32), np.float32)[:4]
    m.sinogram = m.sinogram[:4]
    m.angles = m.angles[:4]
    save_measurements(other, m)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--reference", str(other)]) == EXIT_BAD_INPUT
    assert "shape" in _assert_one_line_error(capsys)


def test_methods_lists_registered_methods(capsys):
    assert main(["methods"]) == 0
    assert "fbp-window" in capsys.readouterr().out
    assert main(["methods", "fbp-window"]) == 0
    assert "max_iter" in capsys.readouterr().out


def test_train_denoiser_writes_weights_that_load(tmp_path):
    from imaging.denoisers import load_denoiser

    out = tmp_path / "tiny.pt"
    args = ["train-denoiser", "-o", str(out), "--images", "6", "--size", "32", "--epochs", "1"]
    # Generated objects bring reconstruction pairs by default; two small dynamic objects here.
    pairs = ["--reconstruction-pairs", "2", "--pair-size", "32", "--pair-frames", "16"]
    assert main([*args, *pairs, "--depth", "3", "--width", "4", "--patch-size", "16", "--batch-size", "4"]) == 0
    assert out.exists() and out.with_suffix(".json").exists()
    model = load_denoiser(str(out))
    assert sum(p.numel() for p in model.parameters()) > 0
    provenance = json.loads(out.with_suffix(".json").read_text())
    assert provenance["data"]["pairs"]["n_objects"] == 2 and provenance["architecture"]["bias"] is False


def test_ensemble_denoiser_combines_shipped_denoisers(tmp_path, capsys):
    from imaging.denoisers import load_denoiser

    out = tmp_path / "pair.pt"
    assert main(["ensemble-denoiser", "dncnn-v3", "dncnn-v2", "-o", str(out)]) == 0
    assert "2 members" in capsys.readouterr().out
    assert load_denoiser(str(out)).architecture["members"] == 2
    assert [m["member"] for m in json.loads(out.with_suffix(".json").read_text())["members"]] == ["dncnn-v3", "dncnn-v2"]


@pytest.mark.parametrize("members", [["dncnn-v3"], ["dncnn-v3", "dncnn-v1"], ["dncnn-v3", "nowhere.pt"]])
def test_ensemble_denoiser_rejects_bad_members(tmp_path, capsys, members):
    assert main(["ensemble-denoiser", *members, "-o", str(tmp_path / "e.pt")]) == EXIT_BAD_INPUT
    _assert_one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_train_denoiser_rejects_bad_output_name(tmp_path, capsys):
    assert main(["train-denoiser", "-o", str(tmp_path / "w.bin")]) == EXIT_BAD_INPUT
    assert ".pt" in _assert_one_line_error(capsys)


def test_volume_simulate_and_reconstruct(tmp_path):
    path = tmp_path / "vol.npz"
    args = ["simulate", "--phantom", "material", "--frames", "4", "--size", "16", "--slices", "3"]
    assert main([*args, "-o", str(path)]) == 0
    m = load_measurements(path)
    assert m.is_volume and m.sinogram.shape == (4, 1, 3, 16)
    out = tmp_path / "vol-fbp.npz"
    assert main(["reconstruct", str(path), "--method", "fbp-window", "-o", str(out)]) == 0
    volume = load_reconstruction(out).reconstruction
    assert volume.shape == (4, 3, 16, 16)
    single = imaging_reconstruct(m.slice(1), "fbp-window").reconstruction
    np.testing.assert_allclose(volume[:, 1], single, rtol=1e-6, atol=1e-6)
    assert not list(tmp_path.glob("*.ckpt*"))
    scores = tmp_path / "scores.json"
    assert main(["evaluate", str(out), "--reference", str(path), "--json", str(scores)]) == 0
    volume_psnr = json.loads(scores.read_text())[str(out)]["psnr"]
    # PSNR is pointwise: the volume scores as the (P, Z*N, N) stack of its frames.
    assert volume_psnr == pytest.approx(psnr(volume.reshape(4, 48, 16), m.ground_truth.reshape(4, 48, 16)))


def imaging_reconstruct(measurements, method):
    from imaging import reconstruct

    return reconstruct(measurements, method)


def test_demo_writes_results_and_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--frames", "16", "--size", "32", "--max-iter", "2", "--output", str(out)]) == 0
    for name in ("measurements.npz", "fbp-window.npz", "red-psm.npz", "metrics.json", "comparison.png"):
        assert (out / name).stat().st_size > 0
    table = json.loads((out / "metrics.json").read_text())
    assert set(table) == {"fbp-window", "red-psm"}
    printed = capsys.readouterr().out
    assert "red-psm" in printed
    # The main job is honest by default: it says so.
    assert "fine-grid protocol" in printed and "no inverse crime" in printed
