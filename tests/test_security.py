"""Regression tests of the adversarial run (issue 14), one section per attack class of
docs/security.md. Every hostile input is generated here, small."""

import zipfile

import h5py
import numpy as np
import pytest
import torch

from imaging import Measurements, load_measurements, load_reconstruction, save_measurements
from imaging.io import FileFormatError
from imaging.io.safe import load_npy, load_torch_file
from imaging.measurements import MeasurementError
from imaging.operators import DynamicTomography


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


def test_unwritten_hdf5_datasets_are_refused(tmp_path):
    arrays = file_arrays(tomography())
    del arrays["ground_truth"]
    path = tmp_path / "fill.h5"
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=str(value) if value.dtype.kind == "U" else value)
        # 12 kB on disk, 400 MB of fill values once read.
        handle.create_dataset("ground_truth", shape=(4, 5000, 5000), dtype="f4", chunks=(1, 100, 100), fillvalue=1)
    with pytest.raises(FileFormatError, match="'ground_truth' has 0 of its 10000 chunks written"):
        load_measurements(path)
    with h5py.File(path, "a") as handle:
        del handle["ground_truth"]
        handle.create_dataset("ground_truth", shape=(4, 8, 8), dtype="f4")  # contiguous, never written
    with pytest.raises(FileFormatError, match="'ground_truth' was never written"):
        load_measurements(path)


def test_long_fixed_length_strings_are_refused(tmp_path):
    arrays = file_arrays(tomography())
    del arrays["modality"]
    path = tmp_path / "text.h5"
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=value)
        handle.create_dataset("modality", shape=(), dtype="S1500000000")
    assert path.stat().st_size < 100_000
    with pytest.raises(FileFormatError, match="text 'modality' declares 1500000000 bytes"):
        load_measurements(path)


def test_gzip_hdf5_is_checked_against_the_memory_available(tmp_path, small_memory):
    arrays = file_arrays(tomography())
    arrays["ground_truth"] = np.zeros((4, 256, 256), np.float32)
    arrays["image_shape"] = np.array([256, 256])
    path = tmp_path / "gzip.h5"
    with h5py.File(path, "w") as handle:
        for name, value in arrays.items():
            data = str(value) if value.dtype.kind == "U" else value
            options = {"compression": "gzip"} if value.ndim else {}
            handle.create_dataset(name, data=data, **options)
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
