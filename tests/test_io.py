"""Measurement and reconstruction files (imaging.io): round trips, refusals, atomic writes."""

import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import tifffile

from imaging.io import (
    FileFormatError,
    load_measurements,
    load_reconstruction,
    save_measurements,
    save_reconstruction,
)
from imaging.io.safe import read_npy_header
from imaging.measurements import MeasurementError, Measurements
from imaging.results import ReconstructionResult

RNG = np.random.default_rng(0)


def tomography(with_optional=True):
    frames, views, size = 4, 2, 8
    optional = {}
    if with_optional:
        optional = {
            "ground_truth": RNG.random((frames, size, size)).astype(np.float32),
            "noise_std": 0.01,
            "detector_spacing": 0.75,
        }
    return Measurements(
        modality="tomography",
        image_shape=(size, size),
        sinogram=RNG.standard_normal((frames, views, 11)).astype(np.float32),
        angles=RNG.uniform(0, np.pi, (frames, views)),
        **optional,
    )


def mri(with_optional=True):
    frames, coils, height, width = 3, 2, 8, 6
    mask = RNG.random((frames, height, width)) < 0.5
    kspace = (RNG.standard_normal((frames, coils, height, width)) + 1j).astype(np.complex64) * mask[:, None]
    coil_maps = RNG.standard_normal((coils, height, width)).astype(np.complex64)
    optional = {"ground_truth": RNG.random((frames, height, width)).astype(np.float32), "noise_std": 0.5}
    if not with_optional:
        kspace, coil_maps, optional = kspace[:, :1], None, {}
    return Measurements(
        modality="mri", image_shape=(height, width), kspace=kspace, mask=mask, coil_maps=coil_maps, **optional
    )


def assert_same(loaded, original):
    assert loaded.modality == original.modality
    assert loaded.image_shape == original.image_shape
    loaded_values = loaded.to_dict()
    assert set(loaded_values) == set(original.to_dict())
    for key, value in original.to_dict().items():
        got = loaded_values[key]
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype, key
            np.testing.assert_array_equal(got, value, err_msg=key)
        else:
            assert got == value, key


def contract_arrays(measurements):
    """The measurement as the plain dict of arrays a file holds (for writing bad files)."""
    arrays = {k: np.asarray(v) for k, v in measurements.to_dict().items()}
    arrays["modality"] = np.array(measurements.modality)
    return arrays


def write_npz(path, arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)
    return path


def write_h5(path, arrays):
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            if np.asarray(value).dtype.kind == "U":
                handle.create_dataset(key, data=str(value), dtype=h5py.string_dtype())
            else:
                handle.create_dataset(key, data=value)
    return path


WRITERS = {".npz": write_npz, ".h5": write_h5}


# ---------------------------------------------------------------------------------------
# Round trips


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".hdf5"])
@pytest.mark.parametrize("make", [tomography, mri])
@pytest.mark.parametrize("with_optional", [True, False])
def test_measurement_round_trip(tmp_path, suffix, make, with_optional):
    original = make(with_optional)
    path = save_measurements(tmp_path / f"data{suffix}", original)
    loaded = load_measurements(path)
    assert_same(loaded, original)
    if not with_optional:
        assert loaded.ground_truth is None and loaded.noise_std is None
        if make is tomography:
            assert loaded.detector_spacing == 1.0


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_volume_round_trip(tmp_path, suffix):
    frames, views, slices, size = 3, 1, 2, 6
    volume = Measurements(
        modality="tomography",
        image_shape=(slices, size, size),
        sinogram=RNG.standard_normal((frames, views, slices, size)).astype(np.float32),
        angles=RNG.uniform(0, np.pi, (frames, views)),
        ground_truth=RNG.random((frames, slices, size, size)).astype(np.float32),
    )
    loaded = load_measurements(save_measurements(tmp_path / f"volume{suffix}", volume))
    assert loaded.is_volume and loaded.n_slices == slices
    assert_same(loaded, volume)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_file_layout_uses_plain_types(tmp_path, suffix):
    path = save_measurements(tmp_path / f"data{suffix}", tomography())
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            assert data["modality"].dtype.kind == "U" and data["modality"].shape == ()
            assert data["noise_std"].shape == () and data["detector_spacing"].shape == ()
            assert data["image_shape"].tolist() == [8, 8]
            assert data["sinogram"].dtype == np.float32 and data["angles"].dtype == np.float64
    else:
        with h5py.File(path) as data:
            assert data["modality"].asstr()[()] == "tomography"
            assert data["noise_std"].shape == ()
            assert data["sinogram"].dtype == np.float32


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_unknown_keys_are_refused_by_name_without_being_read(tmp_path, suffix):
    # Entries outside the contract are refused by their names only: a pickled object
    # array, a huge declared array, an HDF5 link or dataset of fill values is never read.
    arrays = contract_arrays(tomography())
    arrays["comment"] = np.array("acquired on a Tuesday")
    path = tmp_path / f"data{suffix}"
    if suffix == ".npz":
        arrays["payload"] = np.array([{"a": 1}, None], dtype=object)
        np.savez(path, **arrays)
        with zipfile.ZipFile(path, "a") as archive, archive.open("huge.npy", "w") as member:
            header = {"descr": "<f8", "fortran_order": False, "shape": (10**7, 10**7)}
            np.lib.format.write_array_header_1_0(member, header)
        unknown = "'comment', 'huge', 'payload'"
    else:
        write_h5(path, arrays)
        with h5py.File(path, "a") as handle:
            handle.create_dataset("huge", shape=(10**7, 10**7), dtype="f8", chunks=(1000, 1000), fillvalue=1.0)
            handle["elsewhere"] = h5py.ExternalLink("/etc/passwd", "/x")
            handle.create_dataset("payload", (2,), dtype=h5py.vlen_dtype(np.int32))
        unknown = "'comment', 'elsewhere', 'huge', 'payload'"
    with pytest.raises(FileFormatError, match=f"unknown key\\(s\\) {unknown} in a tomography measurement file"):
        load_measurements(path)


def test_unknown_hdf5_group_is_refused(tmp_path):
    path = write_h5(tmp_path / "data.h5", contract_arrays(tomography()))
    with h5py.File(path, "a") as handle:
        handle.create_group("instrument").create_dataset("energy", data=20.0)
    with pytest.raises(FileFormatError, match="unknown key.*'instrument'"):
        load_measurements(path)


def fan_beam(offset=1.25):
    return Measurements(
        modality="tomography",
        image_shape=(8, 8),
        sinogram=RNG.standard_normal((4, 1, 15)).astype(np.float32),
        angles=RNG.uniform(0, 2 * np.pi, (4, 1)),
        detector_spacing=1.5,
        geometry="fan",
        center_offset=offset,
        source_origin=20.0,
        origin_detector=10.0,
    )


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_geometry_keys_round_trip(tmp_path, suffix):
    original = fan_beam()
    loaded = load_measurements(save_measurements(tmp_path / f"fan{suffix}", original))
    assert_same(loaded, original)
    assert (loaded.geometry, loaded.center_offset, loaded.source_origin, loaded.origin_detector) == ("fan", 1.25, 20.0, 10.0)
    parallel = load_measurements(save_measurements(tmp_path / f"parallel{suffix}", tomography()))
    assert (parallel.geometry, parallel.center_offset, parallel.source_origin) == ("parallel", 0.0, None)


def test_files_without_geometry_keys_are_centred_parallel_beam(tmp_path):
    arrays = contract_arrays(tomography())
    for key in ("geometry", "center_offset"):
        arrays.pop(key)
    loaded = load_measurements(write_npz(tmp_path / "old.npz", arrays))
    assert (loaded.geometry, loaded.center_offset) == ("parallel", 0.0)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(geometry=np.array("cone")), "'geometry' 'cone' is not supported"),
        (lambda a: a.update(geometry=np.array("helical")), "'geometry' 'helical' is not supported"),
        (lambda a: a.update(geometry=np.array(2.0)), "'geometry' must be a string"),
        (lambda a: a.pop("source_origin"), "fan-beam geometry needs source_origin and origin_detector"),
        (lambda a: a.update(geometry=np.array("parallel")), "describe a fan beam; the geometry is 'parallel'"),
        (lambda a: a.update(source_origin=np.array(4.0)), "source inside the 8 x 8 reconstruction grid"),
        (lambda a: a.update(origin_detector=np.array(-1.0)), "origin_detector must be a finite distance >= 0"),
        (lambda a: a.update(center_offset=np.array(9.0)), "rotation axis outside the detector"),
        (lambda a: a.update(center_offset=np.array(np.nan)), "'center_offset' must be a finite number"),
        (lambda a: a.update(center_offset=np.array([1.0, 2.0])), "'center_offset' must be a single real number"),
    ],
)
def test_unsupported_geometry_is_refused(tmp_path, suffix, change, message):
    arrays = contract_arrays(fan_beam())
    change(arrays)
    path = WRITERS[suffix](tmp_path / f"bad{suffix}", arrays)
    with pytest.raises((FileFormatError, MeasurementError), match=message) as caught:
        load_measurements(path)
    assert str(path) in str(caught.value)


def test_geometry_keys_in_an_mri_file_are_refused(tmp_path):
    arrays = contract_arrays(mri())
    arrays["geometry"] = np.array("parallel")
    arrays["center_offset"] = np.array(0.0)
    with pytest.raises(FileFormatError, match="unknown key.*'center_offset'"):
        load_measurements(write_npz(tmp_path / "mri.npz", arrays))
    with pytest.raises(MeasurementError, match="'center_offset' describe.*tomography"):
        Measurements(**{**mri().to_dict(), "center_offset": 2.0})


def test_fan_beam_volume_is_refused():
    with pytest.raises(MeasurementError, match="fan-beam volumes are not supported.*central row"):
        Measurements(
            modality="tomography",
            image_shape=(2, 8, 8),
            sinogram=np.zeros((3, 1, 2, 12), np.float32),
            angles=np.zeros((3, 1)),
            geometry="fan",
            source_origin=20.0,
            origin_detector=10.0,
        )


def test_raw_data_exchange_file_gets_a_hint_to_import_it(tmp_path):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("exchange/data", data=np.ones((2, 3, 4), np.uint16))
    with pytest.raises(FileFormatError, match="missing required key 'modality'.*Data Exchange.*imaging import"):
        load_measurements(path)


def test_integer_and_bool_like_inputs_are_normalised(tmp_path):
    arrays = contract_arrays(mri(False))
    arrays["mask"] = arrays["mask"].astype(np.uint8)
    loaded = load_measurements(write_npz(tmp_path / "data.npz", arrays))
    assert loaded.mask.dtype == bool


# ---------------------------------------------------------------------------------------
# Refused measurement files


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize(
    "make, change, error, message",
    [
        (tomography, lambda a: a.pop("sinogram"), FileFormatError, "missing required key.*sinogram"),
        (tomography, lambda a: a.pop("modality"), FileFormatError, "missing required key 'modality'"),
        (mri, lambda a: a.pop("mask"), FileFormatError, "missing required key.*mask"),
        (tomography, lambda a: a.update(modality=np.array("ultrasound")), FileFormatError, "unknown modality"),
        (tomography, lambda a: a.update(modality=np.array(3)), FileFormatError, "'modality' must be a string"),
        (tomography, lambda a: a.update(sinogram=a["sinogram"][0]), MeasurementError, "sinogram.*shape"),
        (tomography, lambda a: a.update(angles=a["angles"][:3]), MeasurementError, "angles.*frames"),
        (
            tomography,
            lambda a: a.update(sinogram=np.where(a["sinogram"] > 0, np.nan, a["sinogram"]).astype(np.float32)),
            MeasurementError,
            "NaN",
        ),
        (tomography, lambda a: a.update(angles=np.full_like(a["angles"], np.inf)), MeasurementError, "infinite"),
        (
            tomography,
            lambda a: a.update(sinogram=a["sinogram"].astype(np.complex64)),
            MeasurementError,
            "sinogram.*real-valued",
        ),
        (tomography, lambda a: a.update(image_shape=np.array([8.0, 8.0])), FileFormatError, "integers"),
        (tomography, lambda a: a.update(noise_std=np.array([0.1, 0.2])), FileFormatError, "noise_std"),
        (tomography, lambda a: a.update(ground_truth=a["ground_truth"][:, :4]), MeasurementError, "ground_truth"),
        (mri, lambda a: a.update(image_shape=np.array([8, 8])), MeasurementError, "image_shape"),
        (mri, lambda a: a.update(mask=a["mask"][:2]), MeasurementError, "mask"),
        (mri, lambda a: a.update(kspace=a["kspace"].real.astype(np.int16)), MeasurementError, "complex"),
        (mri, lambda a: a.update(sinogram=np.array("text")), FileFormatError, "unknown key.*'sinogram'"),
    ],
)
def test_bad_measurement_files(tmp_path, suffix, make, change, error, message):
    arrays = contract_arrays(make())
    change(arrays)
    path = WRITERS[suffix](tmp_path / f"bad{suffix}", arrays)
    with pytest.raises(error, match=message) as caught:
        load_measurements(path)
    assert str(path) in str(caught.value)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path, monkeypatch):
    arrays = contract_arrays(tomography())
    arrays["ground_truth"] = np.array([{"a": 1}, None], dtype=object)
    path = tmp_path / "pickled.npz"
    np.savez(path, **arrays)
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("the loader must never unpickle")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    with pytest.raises(FileFormatError, match="file carries pickled Python objects; refusing to load"):
        load_measurements(path)


@pytest.mark.parametrize(
    "make_dataset",
    [
        lambda f: f.create_dataset("ground_truth", (2,), dtype=h5py.vlen_dtype(np.int32)),
        lambda f: f.create_dataset("ground_truth", data=[f["sinogram"].ref], dtype=h5py.ref_dtype),
        lambda f: f.create_dataset("ground_truth", data=np.zeros(2, dtype=[("x", "f4"), ("y", "i4")])),
        lambda f: f.create_dataset("ground_truth", data=["a", "b"], dtype=h5py.string_dtype()),
    ],
    ids=["vlen", "reference", "compound", "string-array"],
)
def test_hdf5_object_like_datasets_are_refused(tmp_path, make_dataset):
    arrays = contract_arrays(tomography())
    del arrays["ground_truth"]
    path = write_h5(tmp_path / "data.h5", arrays)
    with h5py.File(path, "a") as handle:
        make_dataset(handle)
    with pytest.raises(FileFormatError, match="ground_truth"):
        load_measurements(path)


def test_hdf5_links_to_other_files_are_refused(tmp_path):
    other = write_h5(tmp_path / "other.h5", {"sinogram": np.zeros((4, 2, 11), np.float32)})
    arrays = contract_arrays(tomography())
    del arrays["sinogram"]
    path = write_h5(tmp_path / "data.h5", arrays)
    with h5py.File(path, "a") as handle:
        handle["sinogram"] = h5py.ExternalLink(str(other), "/sinogram")
    with pytest.raises(FileFormatError, match="link"):
        load_measurements(path)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_declared_size_is_checked_before_reading(tmp_path, suffix):
    path = save_measurements(tmp_path / f"data{suffix}", tomography())
    with pytest.raises(FileFormatError, match="declares shape .* over the limit of 200 bytes"):
        load_measurements(path, max_bytes=200)
    assert load_measurements(path, max_bytes=10_000).sinogram.shape == (4, 2, 11)


def test_oversize_header_is_refused_without_allocating(tmp_path, monkeypatch):
    # A tiny file whose header claims a 10^12-element array.
    header = {"descr": "<f4", "fortran_order": False, "shape": (10**6, 10**6)}
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("sinogram.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(b"\0" * 64)
        with archive.open("modality.npy", "w") as member:
            np.lib.format.write_array(member, np.array("tomography"))
    read_array = np.lib.format.read_array

    def guarded(handle, **options):
        start = handle.tell()
        shape, _, _ = read_npy_header(handle)
        handle.seek(start)
        if np.prod(shape, dtype=float) > 10**6:
            pytest.fail("array read before size check")
        return read_array(handle, **options)

    monkeypatch.setattr(np.lib.format, "read_array", guarded)
    with pytest.raises(FileFormatError, match="'sinogram' declares shape .* over"):
        load_measurements(path)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("random.npz", os.urandom(256), "not a .npz file"),
        ("random.h5", os.urandom(256), "not an HDF5 file"),
        ("empty.npz", b"", "not a .npz file"),
    ],
)
def test_corrupt_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=message):
        load_measurements(path)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_truncated_files(tmp_path, suffix):
    path = save_measurements(tmp_path / f"data{suffix}", tomography())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FileFormatError, match="not"):
        load_measurements(path)


def test_npz_member_with_corrupt_payload(tmp_path):
    path = save_measurements(tmp_path / "data.npz", tomography())
    data = bytearray(path.read_bytes())
    # Keep the zip directory intact but damage the first member's .npy header.
    start = data.find(b"\x93NUMPY")
    data[start : start + 6] = b"garbag"
    path.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="not a readable .npz file"):
        load_measurements(path)


def test_unknown_extension_and_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match="unknown file extension '.txt'.*npz"):
        load_measurements(tmp_path / "data.txt")
    with pytest.raises(FileFormatError, match="unknown file extension"):
        save_measurements(tmp_path / "data.mat", tomography())
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_measurements(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="directory .* does not exist"):
        save_measurements(tmp_path / "no_such_dir" / "data.npz", tomography())
    assert not (tmp_path / "no_such_dir").exists()


# ---------------------------------------------------------------------------------------
# Atomic writes


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_failed_npz_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = save_measurements(tmp_path / "data.npz", tomography())
    before = path.read_bytes()

    def failing_savez(handle, **arrays):
        handle.write(b"PK partial content")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_measurements(path, mri())
    with pytest.raises(OSError, match="disk full"):
        save_measurements(tmp_path / "new.npz", mri())
    assert leftovers(tmp_path) == ["data.npz"]
    assert path.read_bytes() == before


def test_failed_h5_write_leaves_nothing(tmp_path, monkeypatch):
    path = save_measurements(tmp_path / "data.h5", tomography())
    before = path.read_bytes()

    def failing_create_dataset(self, name, **kwargs):
        raise KeyboardInterrupt  # an interrupted write, not only an error

    monkeypatch.setattr(h5py.Group, "create_dataset", failing_create_dataset)
    with pytest.raises(KeyboardInterrupt):
        save_measurements(path, mri())
    assert leftovers(tmp_path) == ["data.h5"]
    assert path.read_bytes() == before


def test_write_replaces_an_existing_file(tmp_path):
    path = save_measurements(tmp_path / "data.npz", tomography())
    save_measurements(path, mri())
    assert load_measurements(path).modality == "mri"
    assert leftovers(tmp_path) == ["data.npz"]


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_extra_entries_are_refused_before_writing(tmp_path, suffix):
    measurements = tomography()
    measurements.extra["payload"] = np.array([1.0, 2.0])
    with pytest.raises(ValueError, match="cannot save extra entries 'payload'.*only the keys of its contract"):
        save_measurements(tmp_path / f"data{suffix}", measurements)
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------
# Reconstruction files


def result():
    return ReconstructionResult(
        reconstruction=RNG.random((3, 8, 8)).astype(np.float32),
        method="red-psm",
        params={"rank": np.int64(5), "lam": np.float32(0.5), "device": "cpu", "knots": (1, 2)},
        history=[{"iteration": 1, "data_residual": 0.5, "elapsed_seconds": 0.1, "psnr": 20.0}],
        elapsed_seconds=1.5,
        stop_reason="converged",
        extras={"spatial_basis": RNG.random((8, 8, 2)).astype(np.float32), "temporal_basis": np.eye(3)},
    )


def test_reconstruction_npz_round_trip(tmp_path):
    original = result()
    path = save_reconstruction(tmp_path / "out.npz", original)
    loaded = load_reconstruction(path)
    np.testing.assert_array_equal(loaded.reconstruction, original.reconstruction)
    assert loaded.reconstruction.dtype == np.float32
    assert loaded.method == "red-psm" and loaded.stop_reason == "converged"
    assert loaded.params == {"rank": 5, "lam": 0.5, "device": "cpu", "knots": [1, 2]}
    assert loaded.history == original.history
    assert loaded.elapsed_seconds == 1.5
    assert set(loaded.extras) == {"spatial_basis", "temporal_basis"}
    np.testing.assert_array_equal(loaded.extras["temporal_basis"], np.eye(3))
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["params"]))["rank"] == 5
        assert data["method"].dtype.kind == "U" and data["elapsed_seconds"].shape == ()


@pytest.mark.parametrize("suffix", [".tif", ".tiff"])
def test_reconstruction_tiff_export(tmp_path, suffix):
    original = result()
    path = save_reconstruction(tmp_path / f"out{suffix}", original)
    with tifffile.TiffFile(path) as handle:
        assert handle.is_imagej and handle.series[0].axes == "TYX"
        np.testing.assert_array_equal(handle.series[0].asarray(), original.reconstruction)
    loaded = load_reconstruction(path)
    np.testing.assert_array_equal(loaded.reconstruction, original.reconstruction)
    assert loaded.method == "red-psm" and loaded.history == original.history and loaded.elapsed_seconds == 1.5


def test_foreign_tiff_loads_with_default_fields(tmp_path):
    stack = RNG.random((2, 5, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "foreign.tif", stack, imagej=True, metadata={"axes": "TYX", "Info": "hello"})
    loaded = load_reconstruction(tmp_path / "foreign.tif")
    np.testing.assert_array_equal(loaded.reconstruction, stack)
    assert loaded.method == "" and loaded.params == {} and loaded.history == []


def reconstruction_arrays():
    return {
        "reconstruction": np.zeros((2, 4, 4), np.float32),
        "method": np.array("psm"),
        "params": np.array("{}"),
        "history": np.array("[]"),
        "elapsed_seconds": np.array(0.5),
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("history"), "missing required key.*history"),
        (lambda a: a.update(params=np.array("{not json")), "'params' is not valid JSON"),
        (lambda a: a.update(history=np.array("{}")), "'history' must be a JSON list"),
        (lambda a: a.update(reconstruction=np.zeros((4, 4), np.float32)), r"\(P, N, N\)"),
        (lambda a: a.update(reconstruction=np.full((2, 4, 4), np.nan, np.float32)), "NaN"),
        (lambda a: a.update(elapsed_seconds=np.array("soon")), "elapsed_seconds"),
        (lambda a: a.update(method=np.array([1, 2], dtype=object)), "pickled"),
    ],
)
def test_bad_reconstruction_files(tmp_path, change, message):
    arrays = reconstruction_arrays()
    change(arrays)
    path = tmp_path / "out.npz"
    np.savez(path, **arrays)
    with pytest.raises(FileFormatError, match=message):
        load_reconstruction(path)


def test_reconstruction_errors(tmp_path, monkeypatch):
    with pytest.raises(FileFormatError, match="unknown file extension"):
        save_reconstruction(tmp_path / "out.h5", result())
    with pytest.raises(FileFormatError, match="unknown file extension"):
        load_reconstruction(tmp_path / "out.png")
    with pytest.raises(FileNotFoundError):
        load_reconstruction(tmp_path / "out.tif")
    bad = result()
    bad.reconstruction = np.zeros((4, 4))
    with pytest.raises(ValueError, match=r"\(P, N, N\)"):
        save_reconstruction(tmp_path / "out.npz", bad)
    save_reconstruction(tmp_path / "out.tif", result())
    with pytest.raises(FileFormatError, match="over the limit"):
        load_reconstruction(tmp_path / "out.tif", max_bytes=100)
    monkeypatch.setattr(tifffile, "imwrite", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    before = (tmp_path / "out.tif").read_bytes()
    with pytest.raises(OSError, match="disk full"):
        save_reconstruction(tmp_path / "out.tif", result())
    assert (tmp_path / "out.tif").read_bytes() == before
    assert leftovers(tmp_path) == ["out.tif"]
