"""Regression tests of the adversarial run (issue 14), one section per attack class of
docs/security.md. Every hostile input is generated here, small."""

import zipfile

import h5py
import numpy as np
import pytest
import torch

from imaging import Measurements, load_measurements, load_reconstruction, save_measurements, save_reconstruction
from imaging.io import FileFormatError
from imaging.io.safe import load_npy, load_torch_file
from imaging.measurements import MeasurementError
from imaging.operators import DynamicTomography
from imaging.results import ReconstructionResult


def tomography(frames=4, size=8, views=1):
    rng = np.random.default_rng(0)
    return Measurements(
        modality="tomography",
        image_shape=(size, size),
        sinogram=rng.random((frames, views, size)).astype(np.float32),
        angles=rng.uniform(0, np.pi, (frames, views)),
        ground_truth=rng.random((frames, size, size)).astype(np.float32),
    )


def file_arrays(measurements):
    arrays = {k: np.asarray(v) for k, v in measurements.to_dict().items()}
    arrays["modality"] = np.array(measurements.modality)
    return arrays


def write_h5(path, arrays, **options):
    """Each array as a top-level dataset (text as a scalar string); ``options`` for the arrays."""
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            if value.dtype.kind == "U":
                handle.create_dataset(name, data=str(value))
            else:
                handle.create_dataset(name, data=value, **(options if value.ndim else {}))
    return path


def write_npz(path, arrays, compress=False):
    with open(path, "wb") as handle:
        (np.savez_compressed if compress else np.savez)(handle, **arrays)
    return path


# -- 1. hangs in native code ------------------------------------------------------------------


@pytest.mark.parametrize("angle", [2e8, 1e9, -5e7 * 40, 1e300])
def test_huge_angles_are_refused_before_astra(angle):
    m = tomography()
    with pytest.raises(MeasurementError, match=r"'angles' must lie within \+-1e\+06 rad"):
        Measurements(modality="tomography", image_shape=(8, 8), sinogram=m.sinogram, angles=m.angles * 0 + angle)
    with pytest.raises(ValueError, match="within"):
        DynamicTomography(np.full((4, 1), angle), (8, 8))


def test_angles_are_reduced_modulo_two_pi_for_astra():
    angles = np.random.default_rng(1).uniform(0, np.pi, (4, 2))
    x = torch.rand(4, 16, 16)
    near = DynamicTomography(angles, (16, 16)).forward(x)
    far = DynamicTomography(angles + 2 * np.pi * 150_000, (16, 16)).forward(x)
    torch.testing.assert_close(far, near, atol=1e-5 * float(near.abs().max()), rtol=0)


@pytest.mark.parametrize("spacing", [1e-300, 1e-9, 1e9, 1e300])
def test_detector_spacing_outside_astras_range_is_refused(spacing):
    m = tomography()
    with pytest.raises(MeasurementError, match="'detector_spacing' must be between"):
        Measurements(modality="tomography", image_shape=(8, 8), sinogram=m.sinogram, angles=m.angles,
                     detector_spacing=spacing)


# -- 3. files that allocate far more than their size --------------------------------------------


@pytest.fixture
def small_memory(monkeypatch):
    """The machine has 1 MiB to spare: every read limit derives from that."""
    monkeypatch.setenv("IMAGING_MEMORY_LIMIT", "1MiB")


def test_int8_arrays_are_counted_at_the_float32_they_become(tmp_path):
    arrays = file_arrays(tomography(frames=40, size=50))
    arrays["sinogram"] = np.ones((40, 1, 5000), np.int8)  # 200 kB stored, 1 MB as float32
    path = write_npz(tmp_path / "int8.npz", arrays)
    with pytest.raises(FileFormatError, match="'sinogram' declares shape \\(40, 1, 5000\\) of int8 .*over"):
        load_measurements(path, max_bytes=900_000)


def test_deflated_npz_member_is_checked_against_the_memory_available(tmp_path, small_memory):
    arrays = file_arrays(tomography())
    arrays["ground_truth"] = np.zeros((4, 8, 8), np.float32)
    arrays["sinogram"] = np.zeros((4, 1, 8), np.float32)
    arrays["image_shape"] = np.array([8, 8])
    path = write_npz(tmp_path / "ok.npz", arrays, compress=True)
    assert load_measurements(path).sinogram.shape == (4, 1, 8)
    arrays["ground_truth"] = np.zeros((4, 256, 256), np.float32)  # 1 MiB of zeros: 3 kB deflated
    arrays["image_shape"] = np.array([256, 256])
    path = write_npz(tmp_path / "bomb.npz", arrays, compress=True)
    assert path.stat().st_size < 20_000
    with pytest.raises(FileFormatError, match="'ground_truth' .* over the 1.0 MiB of memory available"):
        load_measurements(path)


def _set_zip_flags(path, flag_bits=None, method=None):
    """Rewrite the general-purpose flags or the compression method of every member."""
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            if flag_bits is not None:
                data[start + flag_offset : start + flag_offset + 2] = flag_bits.to_bytes(2, "little")
            if method is not None:
                data[start + flag_offset + 2 : start + flag_offset + 4] = method.to_bytes(2, "little")
            start += 4
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "flags, method, message",
    [(1, None, "is encrypted"), (None, 99, "compression method 99"), (None, zipfile.ZIP_BZIP2, "method 12")],
)
def test_encrypted_or_oddly_compressed_npz_members_are_refused(tmp_path, flags, method, message):
    path = write_npz(tmp_path / "odd.npz", file_arrays(tomography()))
    _set_zip_flags(path, flags, method)
    with pytest.raises(FileFormatError, match=message):
        load_measurements(path)


def test_npz_member_smaller_than_its_declared_array_is_refused_before_reading(tmp_path):
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("sinogram.npy", "w") as member:
            header = {"descr": "<f4", "fortran_order": False, "shape": (4, 1, 8000)}
            np.lib.format.write_array_header_1_0(member, header)
            member.write(b"\0" * 64)
        for name, value in file_arrays(tomography()).items():
            if name != "sinogram":
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, value)
    with pytest.raises(FileFormatError, match="holds .* bytes but declares an array of 128000"):
        load_measurements(path)


def h5_with_dataset(path, name, **dataset):
    """A tomography HDF5 file whose ``name`` is an empty dataset made with ``dataset`` options."""
    arrays = file_arrays(tomography())
    del arrays[name]
    write_h5(path, arrays)
    with h5py.File(path, "a") as handle:
        handle.create_dataset(name, **dataset)
    return path


def test_unwritten_hdf5_datasets_are_refused(tmp_path):
    # 12 kB on disk, 400 MB of fill values once read.
    path = h5_with_dataset(tmp_path / "fill.h5", "ground_truth", shape=(4, 5000, 5000), dtype="f4",
                           chunks=(1, 100, 100), fillvalue=1)
    with pytest.raises(FileFormatError, match="'ground_truth' has 0 of its 10000 chunks written"):
        load_measurements(path)
    path = h5_with_dataset(tmp_path / "contiguous.h5", "ground_truth", shape=(4, 8, 8), dtype="f4")
    with pytest.raises(FileFormatError, match="'ground_truth' was never written"):
        load_measurements(path)


def test_long_fixed_length_strings_are_refused(tmp_path):
    path = h5_with_dataset(tmp_path / "text.h5", "modality", shape=(), dtype="S1500000000")
    assert path.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match="text 'modality' declares 1500000000 bytes"):
        load_measurements(path)


def test_gzip_hdf5_is_checked_against_the_memory_available(tmp_path, small_memory):
    arrays = file_arrays(tomography())
    arrays["ground_truth"] = np.zeros((4, 256, 256), np.float32)
    arrays["image_shape"] = np.array([256, 256])
    path = write_h5(tmp_path / "gzip.h5", arrays, compression="gzip")
    with pytest.raises(FileFormatError, match="'ground_truth' .* over the 1.0 MiB of memory available"):
        load_measurements(path)


def test_compressed_tiff_reconstruction_is_checked_before_decoding(tmp_path, small_memory):
    import tifffile

    path = tmp_path / "zeros.tif"
    tifffile.imwrite(path, np.zeros((4, 512, 512), np.uint8), compression="zlib")  # 1 MiB, 4 MiB as float32
    with pytest.raises(FileFormatError, match="'reconstruction' .* over the 1.0 MiB of memory available"):
        load_reconstruction(path)


def test_npy_reference_is_size_checked(tmp_path, small_memory):
    path = tmp_path / "big.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
    with pytest.raises(FileFormatError, match="'array' declares shape \\(1000000000,\\) of float64"):
        load_npy(path)
    np.save(tmp_path / "small.npy", np.arange(10.0))
    np.testing.assert_array_equal(load_npy(tmp_path / "small.npy"), np.arange(10.0))
    np.save(tmp_path / "pickled.npy", np.array([{}], dtype=object), allow_pickle=True)
    with pytest.raises(FileFormatError, match="pickled"):
        load_npy(tmp_path / "pickled.npy")


def test_deflated_torch_archive_is_checked_before_inflating(tmp_path, small_memory):
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(512, 1024)}, plain)  # 2 MiB of zeros
    deflated = tmp_path / "deflated.pt"
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    assert deflated.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match="unpacks to 2.0 MiB, which takes the file over the 1.0 MiB"):
        load_torch_file(deflated, what="checkpoint")


# -- helpers for the command line ---------------------------------------------------------------


def run_cli(capsys, *args):
    """``imaging ARGS`` in process: (exit status, stderr lines)."""
    from imaging.cli import main

    capsys.readouterr()
    status = main([str(a) for a in args])
    return status, capsys.readouterr().err.strip().splitlines()


def assert_one_line_error(capsys, *args, match=None):
    import re

    status, lines = run_cli(capsys, *args)
    assert status == 2, lines
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"imaging {args[0]}: error: "), lines
    if match is not None:
        assert re.search(match, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def walnut(tmp_path_factory):
    from imaging.simulate import simulate

    folder = tmp_path_factory.mktemp("walnut")
    path = save_measurements(folder / "walnut.npz", simulate("walnut", frames=8, size=16, seed=1))
    return path


SMALL_PSM = ("--set", "order=3", "--set", "knots=4")


# -- 2. problem size against the memory available -------------------------------------------------


@pytest.mark.parametrize("n", [8192, 10**5, 2**31, 10**9])
def test_image_shape_beyond_the_memory_available_is_refused_before_allocating(tmp_path, capsys, n, monkeypatch):
    monkeypatch.setenv("IMAGING_MEMORY_LIMIT", "4GiB")
    arrays = file_arrays(tomography())
    del arrays["ground_truth"]
    arrays["image_shape"] = np.array([n, n])
    path = write_npz(tmp_path / "huge.npz", arrays)
    assert_one_line_error(capsys, "reconstruct", path, "--method", "red-psm", "-o", tmp_path / "out.npz",
                          match=rf"red-psm on 4 frames of {n}x{n} needs about .* of memory but only .* is available; "
                                rf".* \(the largest image size that fits with 4 frames: \d+x\d+\)")
    assert not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("option, value", [("--size", 100_000), ("--frames", 100_000_000)])
def test_simulations_beyond_the_memory_available_are_refused(tmp_path, capsys, option, value):
    assert_one_line_error(capsys, "simulate", "--phantom", "walnut", option, value, "-o", tmp_path / "s.npz",
                          match="needs about .* of memory")
    assert not (tmp_path / "s.npz").exists()


# -- 5. checkpoints of another problem --------------------------------------------------------------


def test_checkpoint_of_another_measurement_is_refused(tmp_path, capsys, walnut):
    from imaging.simulate import simulate

    other = save_measurements(tmp_path / "other.npz", simulate("walnut", frames=8, size=16, seed=2))
    out = tmp_path / "out.npz"
    run_cli(capsys, "reconstruct", walnut, "--method", "psm", *SMALL_PSM, "--max-iter", 2, "-o", out)
    checkpoint = tmp_path / "out.npz.ckpt"
    # A checkpoint left by an interrupted run of walnut.npz, resumed for other.npz.
    m = load_measurements(walnut)
    imaging_reconstruct(m, checkpoint, max_iter=1)
    assert_one_line_error(capsys, "reconstruct", other, "--method", "psm", *SMALL_PSM, "--max-iter", 2, "--resume",
                          "-o", out, match="was written for another measurement.*remove it to start afresh")
    assert run_cli(capsys, "reconstruct", walnut, "--method", "psm", *SMALL_PSM, "--max-iter", 2, "--resume",
                   "-o", out)[0] == 0


def imaging_reconstruct(measurements, checkpoint, max_iter=1, method="psm"):
    import imaging

    return imaging.reconstruct(measurements, method, order=3, knots=4, max_iter=max_iter, checkpoint=checkpoint)


# -- 6. outputs onto inputs -------------------------------------------------------------------------


def test_reconstruct_refuses_to_overwrite_its_input(tmp_path, capsys, walnut):
    import shutil

    path = shutil.copy(walnut, tmp_path / "a.npz")
    before = (tmp_path / "a.npz").read_bytes()
    assert_one_line_error(capsys, "reconstruct", path, "--method", "fbp-window", "-o", path,
                          match="is the input .*--overwrite-input")
    (tmp_path / "link.npz").symlink_to(path)
    assert_one_line_error(capsys, "reconstruct", path, "--method", "fbp-window", "-o", tmp_path / "link.npz")
    assert (tmp_path / "a.npz").read_bytes() == before
    status, _ = run_cli(capsys, "reconstruct", path, "--method", "fbp-window", "-o", path, "--overwrite-input")
    assert status == 0 and load_reconstruction(path).method == "fbp-window"


def test_evaluate_json_refuses_to_overwrite_an_input(tmp_path, capsys, walnut):
    out = tmp_path / "fbp.npz"
    assert run_cli(capsys, "reconstruct", walnut, "--method", "fbp-window", "-o", out)[0] == 0
    before = walnut.read_bytes()
    for target in (walnut, out):
        assert_one_line_error(capsys, "evaluate", out, "--reference", walnut, "--json", target, match="is the input")
    assert walnut.read_bytes() == before


# -- 7. diverging runs ------------------------------------------------------------------------------


def test_nan_results_stop_the_run_naming_the_parameter(tmp_path, capsys, walnut):
    arrays = file_arrays(load_measurements(walnut))
    del arrays["ground_truth"]
    path = write_npz(tmp_path / "nogt.npz", arrays)
    out = tmp_path / "out.npz"
    assert_one_line_error(capsys, "reconstruct", path, "--method", "red-psm", *SMALL_PSM, "--max-iter", 2,
                          "--set", "lam=1e308", "-o", out, match=r"diverged at iteration 1 .*lam=1e\+308")
    assert not out.exists() and not (tmp_path / "out.npz.ckpt").exists()


# -- 10. one line and exit 2: tampered checkpoints ---------------------------------------------------


def _nan_in_f(payload):
    payload["solver"]["f"][0, 0, 0] = float("nan")


def _set(key, value):
    return lambda payload: payload.__setitem__(key, value)


def _set_solver(key, value):
    return lambda payload: payload["solver"].__setitem__(key, value)


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda payload: [1, 2, 3], "holds a list, not a checkpoint"),
        (lambda payload: payload.pop("solver"), "no valid 'solver' entry"),
        (lambda payload: payload.pop("measurement"), "no valid 'measurement' entry"),
        (_set("format", 1), "has format 1"),
        (_set("torch_rng", torch.zeros(10, dtype=torch.uint8)), "damaged random-number state"),
        (_set("torch_rng", torch.zeros(5056)), "damaged random-number state"),
        (_set("history", "[{"), "damaged parameters or history"),
        (_set("history", "[" * 100_000 + "]" * 100_000), "damaged parameters or history"),
        (_set("elapsed", "abc"), "no valid 'elapsed' entry"),
        (_set("elapsed", float("inf")), "impossible elapsed time"),
        (_set("params", '{"lam": 1}'), "other settings"),
        (_set_solver("iteration", 7), "records iteration 7 but a history of 1"),
        (_set_solver("f", torch.zeros(3, 3)), "solver state .* does not fit this run"),
        (_set_solver("f", torch.zeros(8, 16, 16, dtype=torch.float64)), "does not fit this run"),
        (_set_solver("dual", "text"), "does not fit this run"),
        (_set_solver("spatial", torch.zeros(2, 16, 16)), "does not fit this run"),
        (_nan_in_f, "NaN or infinite values in solver.f"),
    ],
)
def test_tampered_checkpoints_give_one_line(tmp_path, capsys, walnut, tamper, message):
    out = tmp_path / "out.npz"
    checkpoint = tmp_path / "out.npz.ckpt"
    imaging_reconstruct(load_measurements(walnut), checkpoint, max_iter=1, method="red-psm")
    payload = torch.load(checkpoint, weights_only=True)
    replaced = tamper(payload)
    torch.save(replaced if isinstance(replaced, list) else payload, checkpoint)
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "red-psm", *SMALL_PSM, "--max-iter", 2,
                          "--resume", "-o", out, match=message)
    assert not out.exists()


def test_checkpoint_of_another_size_is_refused(tmp_path, capsys, walnut):
    from imaging.simulate import simulate

    checkpoint = tmp_path / "out.npz.ckpt"
    imaging_reconstruct(simulate("walnut", frames=8, size=24, seed=1), checkpoint, method="red-psm")
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "red-psm", *SMALL_PSM, "--resume",
                          "-o", tmp_path / "out.npz", match="another measurement")


@pytest.mark.parametrize("content", [b"plain text, not a checkpoint\n", None], ids=["text", "truncated"])
def test_unreadable_checkpoints_give_one_line(tmp_path, capsys, walnut, content):
    checkpoint = tmp_path / "out.npz.ckpt"
    imaging_reconstruct(load_measurements(walnut), checkpoint, method="red-psm")
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(content if content is not None else data[: len(data) // 2])
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "red-psm", *SMALL_PSM, "--resume",
                          "-o", tmp_path / "out.npz", match="cannot resume: .*out.npz.ckpt")


# -- 8. denoiser weights: pinned digest, provenance --------------------------------------------------


def test_shipped_weights_are_checked_against_the_pinned_digest(monkeypatch):
    from imaging.denoisers import weights

    assert weights.file_sha256(weights.resolve_weights_path("default")) == weights.SHIPPED_SHA256["default"]
    monkeypatch.setitem(weights.SHIPPED_SHA256, "default", "0" * 64)
    with pytest.raises(ValueError, match="digest pinned for the shipped weights"):
        weights.load_denoiser("default")


def test_user_weights_without_provenance_load_with_a_one_line_warning(tmp_path, capsys, walnut):
    import shutil

    from imaging.denoisers import weights

    copy = shutil.copy(weights.resolve_weights_path("default"), tmp_path / "mine.pt")
    with pytest.warns(weights.UnverifiedWeightsWarning, match="no provenance file mine.json"):
        weights.load_denoiser(copy)
    status, lines = run_cli(capsys, "reconstruct", walnut, "--method", "red-psm", *SMALL_PSM, "--max-iter", 1,
                            "--set", f"denoiser={copy}", "-o", tmp_path / "out.npz")
    assert status == 0
    assert lines == [f"imaging reconstruct: warning: denoiser weights {copy} have no provenance file mine.json: "
                     "their origin and integrity are not verified"]


def _weights_payload(depth=3, width=4):
    from imaging.denoisers.dncnn import DnCNN

    model = DnCNN(depth, width)
    return {"format": "imaging-dncnn", "version": 1, "architecture": model.architecture,
            "state_dict": model.state_dict()}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p["architecture"].update(width=4000), "do not fit the recorded architecture"),
        (lambda p: p["architecture"].update(depth=10**9), "do not fit the recorded architecture"),
        (lambda p: p["architecture"].update(members=2), "do not fit the recorded architecture"),
        (lambda p: p["architecture"].update(members=10**6), "members must be an integer from 1"),
        (lambda p: p["architecture"].update(members=True), "invalid architecture record"),
        (lambda p: p["state_dict"]["net.0.weight"].fill_(float("nan")), "NaN or infinite"),
        (lambda p: p["state_dict"].update({"net.0.weight": p["state_dict"]["net.0.weight"].double()}), "do not fit"),
    ],
)
def test_weights_that_do_not_fit_their_architecture_are_refused_before_building(tmp_path, monkeypatch, change,
                                                                                 message):
    from imaging.denoisers import dncnn, load_denoiser

    payload = _weights_payload()
    change(payload)
    path = tmp_path / "w.pt"
    torch.save(payload, path)
    devices = []
    original = dncnn.DnCNN.__init__

    def recording(self, *args, **kwargs):
        devices.append(torch.get_default_device().type)
        original(self, *args, **kwargs)

    monkeypatch.setattr(dncnn.DnCNN, "__init__", recording)
    with pytest.raises(ValueError, match=message):
        load_denoiser(path)
    assert set(devices) <= {"meta"}  # at most a skeleton of shapes was built, nothing allocated


@pytest.mark.parametrize("content", ["text", "truncated"])
def test_unreadable_weights_give_one_line(tmp_path, capsys, walnut, content):
    path = tmp_path / "w.pt"
    torch.save(_weights_payload(), path)
    if content == "text":
        path.write_text("these are not weights\n")
    else:
        path.write_bytes(path.read_bytes()[:-200])
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "red-psm", *SMALL_PSM, "--set",
                          f"denoiser={path}", "-o", tmp_path / "out.npz", match="cannot load denoiser")


# -- 9. training on a folder -------------------------------------------------------------------------


TINY_TRAINING = ("--depth", 2, "--width", 2, "--epochs", 1, "--batch-size", 2, "--patch-size", 16, "--threads", 1,
                 "--reconstruction-pairs", 0)


def test_train_denoiser_on_a_folder_a_glob_and_a_file_list(tmp_path, capsys):
    from imaging.denoisers import load_denoiser
    from imaging.denoisers.training_data import generate_static_objects

    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(generate_static_objects(4, size=32, seed=3)):
        np.save(folder / f"image{index}.npy", image)
    for data in ([folder], [folder / "image*.npy"], [folder / "image0.npy", folder / "image1.npy"]):
        out = tmp_path / "w.pt"
        status, lines = run_cli(capsys, "train-denoiser", "--data", *data, *TINY_TRAINING, "-o", out)
        assert status == 0, lines
        assert load_denoiser(out).architecture["width"] == 2


def _png(width, height, idat=b""):
    import struct
    import zlib as zlib_module

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib_module.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "name, write, message",
    [
        ("bomb.png", lambda p: p.write_bytes(_png(20000, 20000)), "not a readable image|over"),
        ("corrupt.png", lambda p: p.write_bytes(_png(16, 16, b"not zlib data")), "not a readable image"),
        ("garbage.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nrubbish"), "not a readable image"),
        ("huge.npy", lambda p: p.write_bytes(_npy_header((10**6, 10**6))), "declares shape"),
        ("short.npy", lambda p: p.write_bytes(_npy_header((100, 100))), "truncated"),
        ("zeros.tif", lambda p: _zlib_tiff(p), "over the 1.0 MiB of memory available"),
        ("broken.tif", lambda p: p.write_bytes(b"II*\x00" + b"\xff" * 64), "not a readable TIFF|holds no image"),
    ],
)
def test_hostile_training_images_give_one_line(tmp_path, capsys, monkeypatch, name, write, message):
    monkeypatch.setenv("IMAGING_MEMORY_LIMIT", "1MiB")
    path = tmp_path / name
    write(path)
    assert_one_line_error(capsys, "train-denoiser", "--data", path, *TINY_TRAINING, "-o", tmp_path / "w.pt",
                          match=f"cannot read training image .*({message})")
    assert not (tmp_path / "w.pt").exists()


def _npy_header(shape):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _zlib_tiff(path):
    import tifffile

    tifffile.imwrite(path, np.zeros((2048, 2048), np.uint8), compression="zlib")  # 4 MiB, 32 MiB as float64


# -- 10. one line and exit 2: the rest -----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (("--set", "lam=[1,"), "not valid YAML: .*line 1"),
        (("--set", "lam=!!python/object/apply:os.system ['echo hacked']"), "not valid YAML"),
        (("--set", "max_iter=.inf"), "max_iter must be a finite number"),
        (("--set", "denoise_stride=.inf"), "denoise_stride must be a finite number"),
        (("--set", "lam=1" + "0" * 400), "lam must be a finite number"),
        (("--set", "denoiser=5"), "denoiser must be a shipped name, a path or a torch.nn.Module"),
        (("--set", "interpolation=[1, 2]"), "interpolation must be one of"),
        (("--set", "device=cpu"), "device cannot be set as method parameters"),
        (("--set", "resume=true"), "resume cannot be set"),
        (("--set", "metrics_every=abc"), "metrics_every cannot be set"),
        (("--device", "tpu"), "device must be 'cpu', 'cuda'"),
        (("--set", "lam="), "--set lam= has no value"),
        (("--set", "lam=true"), "lam must be a number, got True"),
        (("--set", "=3"), "expects NAME=VALUE"),
    ],
)
def test_bad_parameters_give_one_line(tmp_path, capsys, walnut, args, message):
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "red-psm", *SMALL_PSM, *args,
                          "-o", tmp_path / "out.npz", match=message)
    assert not (tmp_path / "out.npz").exists()


def test_bad_config_files_give_one_line(tmp_path, capsys, walnut):
    config = tmp_path / "c.yaml"
    for text, message in (("lam: [1,\n", "not valid YAML"), ("- 1\n- 2\n", "must be a mapping"),
                          ("lam: !!python/name:os.system\n", "not valid YAML")):
        config.write_text(text)
        assert_one_line_error(capsys, "reconstruct", walnut, "--config", config, "-o", tmp_path / "out.npz",
                              match=message)


def test_runner_settings_are_checked():
    import imaging

    m = tomography()
    for setting in ({"metrics_every": "abc"}, {"checkpoint_every": 0}, {"metrics_every": True}):
        with pytest.raises(imaging.ParameterError, match="must be an integer >= 1"):
            imaging.reconstruct(m, "fbp-window", **setting)


@pytest.mark.parametrize("frames, coils", [(0, 1), (3, 0)])
def test_mri_without_frames_or_coils_is_refused(frames, coils):
    with pytest.raises(MeasurementError, match="'kspace' needs at least one frame and one coil"):
        Measurements(modality="mri", image_shape=(8, 8), kspace=np.zeros((frames, coils, 8, 8), np.complex64),
                     mask=np.ones((frames, 8, 8), bool))


@pytest.mark.parametrize("shape", [(0, 1, 8), (4, 0, 8), (4, 1, 0)])
def test_tomography_without_frames_views_or_bins_is_refused(shape):
    with pytest.raises(MeasurementError, match="at least one frame, view and detector bin"):
        Measurements(modality="tomography", image_shape=(8, 8), sinogram=np.zeros(shape, np.float32),
                     angles=np.zeros(shape[:2]))


def test_a_legal_250_character_output_name_works(tmp_path, capsys, walnut):
    from imaging.io import write_text_atomic
    from imaging.simulate import simulate

    name = "r" * 246 + ".npz"
    status, lines = run_cli(capsys, "reconstruct", walnut, "--method", "psm", *SMALL_PSM, "--max-iter", 2,
                            "--checkpoint-every", 1, "-o", tmp_path / name)
    assert status == 0, lines
    assert load_reconstruction(tmp_path / name).method == "psm"
    volume = save_measurements(tmp_path / "volume.npz", simulate("walnut", frames=8, size=16, slices=2))
    status, lines = run_cli(capsys, "reconstruct", volume, "--method", "psm", *SMALL_PSM, "--max-iter", 1,
                            "-o", tmp_path / ("v" * 246 + ".npz"))
    assert status == 0, lines
    write_text_atomic(tmp_path / ("t" * 255), "the temporary name is shortened")
    assert (tmp_path / ("t" * 255)).read_text() == "the temporary name is shortened"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_full_disk_gives_one_line_and_keeps_the_old_output(tmp_path, capsys, walnut, monkeypatch):
    import errno

    out = tmp_path / "out.npz"
    assert run_cli(capsys, "reconstruct", walnut, "--method", "fbp-window", "-o", out)[0] == 0
    before = out.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "fbp-window", "-o", out,
                          match="No space left on device")
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


# -- 11. minor --------------------------------------------------------------------------------------


def test_values_too_large_for_float32_are_named_as_such():
    m = tomography()
    sinogram = m.sinogram.astype(np.float64)
    sinogram[0, 0, 0] = 1e300
    with pytest.raises(MeasurementError, match="'sinogram' holds values too large for float32 .*1e\\+300"):
        Measurements(modality="tomography", image_shape=(8, 8), sinogram=sinogram, angles=m.angles)


def test_demo_checks_its_options_before_writing(tmp_path, capsys):
    assert_one_line_error(capsys, "demo", "--preset", "turbo", "--output", tmp_path / "demo", match="no preset 'turbo'")
    assert not (tmp_path / "demo").exists()
    assert_one_line_error(capsys, "demo", "--device", "tpu", "--output", tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_evaluate_reports_what_is_wrong_with_the_reference(tmp_path, capsys, walnut):
    out = tmp_path / "fbp.npz"
    assert run_cli(capsys, "reconstruct", walnut, "--method", "fbp-window", "-o", out)[0] == 0
    arrays = file_arrays(load_measurements(walnut))
    arrays["sinogram"][0, 0, 0] = np.nan
    nan_file = write_npz(tmp_path / "nan.npz", arrays)
    assert_one_line_error(capsys, "evaluate", out, "--reference", nan_file, match="'sinogram' contains NaN")
    bad_h5 = tmp_path / "bad.h5"
    bad_h5.write_bytes(b"not hdf5 at all")
    assert_one_line_error(capsys, "evaluate", out, "--reference", bad_h5, match="is not an HDF5 file")
    np.save(tmp_path / "ref.npy", np.full((8, 16, 16), np.inf, np.float32))
    assert_one_line_error(capsys, "evaluate", out, "--reference", tmp_path / "ref.npy", match="NaN or infinite")


def test_evaluate_json_is_strict_and_created_with_the_umask(tmp_path, capsys, walnut):
    import json
    import os

    report = tmp_path / "metrics.json"
    old = os.umask(0o022)
    try:
        # The reconstruction is the reference itself: PSNR is infinite.
        out = tmp_path / "perfect.npz"
        truth = load_measurements(walnut).ground_truth
        save_reconstruction(out, ReconstructionResult(reconstruction=truth, method="truth", params={}, history=[],
                                                      elapsed_seconds=0.0, stop_reason="max_iter"))
        status, lines = run_cli(capsys, "evaluate", out, "--reference", walnut, "--json", report)
    finally:
        os.umask(old)
    assert status == 0, lines
    assert report.stat().st_mode & 0o777 == 0o644

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    row = json.loads(report.read_text(), parse_constant=refuse)[str(out)]
    assert row["psnr"] is None and row["mae"] == 0.0


def test_seeds_beyond_torchs_range_are_refused(tmp_path, capsys, walnut):
    assert_one_line_error(capsys, "reconstruct", walnut, "--method", "fbp-window", "--seed", 10**30,
                          "-o", tmp_path / "out.npz", match=r"seed must be an integer in \[-2\*\*63, 2\*\*64\)")


def test_denoiser_training_beyond_the_memory_available_is_refused(tmp_path, capsys):
    assert_one_line_error(capsys, "train-denoiser", "--images", 4, "--size", 16, "--patch-size", 16, "--width", 10**5,
                          "--depth", 10**5, "-o", tmp_path / "w.pt", match="training a DnCNN of depth 100000 .* needs")
    status, lines = run_cli(capsys, "train-denoiser", "--images", 4, "--size", 16, *TINY_TRAINING, "-o",
                            tmp_path / "w.pt")
    assert status == 0, lines  # generated objects of the smallest size (16) train too
