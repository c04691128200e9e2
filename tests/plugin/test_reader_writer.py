"""Reader and writer commands, called the way napari calls them (no viewer needed)."""

import json

import numpy as np
import pytest

from imaging import ReconstructionResult
from imaging_napari import _io
from imaging_napari._layers import MEASUREMENTS_KEY, RESULT_KEY, measurement_layer, reconstruction_layer


def _write(path, layer_data):
    data, meta, _ = layer_data
    return _io.write_layer(str(path), data, meta)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_measurement_layer_round_trip(tmp_path, tomography_measurements, suffix):
    path = tmp_path / f"scan{suffix}"
    assert _write(path, measurement_layer(tomography_measurements, "scan sinogram")) == [str(path)]
    reader = _io.get_reader(str(path))
    assert reader is _io.read_measurement_file
    (data, meta, kind), (marker, marker_meta, marker_kind), (truth, truth_meta, _) = reader(str(path))
    loaded = meta["metadata"][MEASUREMENTS_KEY]
    assert marker_kind == "vectors" and marker.shape == (2 * 8, 2, 3) and marker_meta["metadata"]["kind"] == "frame marker"
    assert kind == "image" and meta["name"] == "scan sinogram"
    np.testing.assert_array_equal(loaded.sinogram, tomography_measurements.sinogram)
    np.testing.assert_array_equal(loaded.angles, tomography_measurements.angles)
    assert data.shape == (8, 64) and truth_meta["name"] == "scan ground truth"
    np.testing.assert_array_equal(truth, tomography_measurements.ground_truth)


def _result(frames):
    history = [{"iteration": 1, "data_residual": 0.5}, {"iteration": 2, "data_residual": 0.25}]
    extras = {"temporal_bases": np.ones((8, 4))}
    return ReconstructionResult(frames, "psm", {"rank": 3}, history, 1.5, "max_iter", extras)


def test_reconstruction_layer_round_trip_keeps_history_and_edits(tmp_path, moving_disk):
    data, meta, _ = reconstruction_layer(_result(moving_disk), "psm 2 it")
    edited = data.copy()
    edited[0] = 0.5  # the layer's current pixels are what gets saved
    path = tmp_path / "recon.npz"
    assert _io.write_layer(str(path), edited, meta) == [str(path)]
    reader = _io.get_reader([str(path)])
    assert reader is _io.read_reconstruction_file
    [(loaded, loaded_meta, _)] = reader(str(path))
    result = loaded_meta["metadata"][RESULT_KEY]
    np.testing.assert_array_equal(loaded, edited)
    assert loaded_meta["name"] == "recon (psm)" and result.params == {"rank": 3}
    assert [h["data_residual"] for h in result.history] == [0.5, 0.25]
    np.testing.assert_array_equal(result.extras["temporal_bases"], np.ones((8, 4)))


def test_any_image_stack_saves_as_reconstruction_and_tiff(tmp_path, moving_disk):
    import tifffile

    meta = {"name": "walnut phantom", "metadata": {}}
    _io.write_layer(str(tmp_path / "phantom.npz"), moving_disk, meta)
    with np.load(tmp_path / "phantom.npz") as archive:
        assert str(archive["method"]) == "napari layer"
        assert json.loads(str(archive["params"])) == {"layer": "walnut phantom"}
        np.testing.assert_array_equal(archive["reconstruction"], moving_disk)
    _io.write_layer(str(tmp_path / "phantom.tif"), moving_disk, meta)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "phantom.tif"), moving_disk)


def test_measurement_layer_saves_its_picture_as_tiff_with_a_warning(tmp_path, tomography_measurements, notifications):
    import tifffile

    data, meta, _ = measurement_layer(tomography_measurements, "scan")
    _io.write_layer(str(tmp_path / "scan.tif"), data, meta)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "scan.tif"), data)
    assert [p.name for p in tmp_path.iterdir()] == ["scan.tif"]  # no temporary left behind
    [warning] = notifications()
    assert warning.startswith("Saved only the picture of measurement layer 'scan'") and ".npz or .h5" in warning


def test_tiff_of_a_result_warns_that_its_factors_are_left_out(tmp_path, moving_disk, notifications):
    from imaging import load_reconstruction

    data, meta, _ = reconstruction_layer(_result(moving_disk), "psm 2 it")
    _io.write_layer(str(tmp_path / "psm.tif"), data, meta)
    loaded = load_reconstruction(tmp_path / "psm.tif")
    assert loaded.params == {"rank": 3} and len(loaded.history) == 2 and not loaded.extras
    [warning] = notifications()
    assert "without its temporal_bases" in warning and "Save as .npz" in warning
    _io.write_layer(str(tmp_path / "psm.npz"), data, meta)  # the complete format: nothing to warn about
    assert len(notifications()) == 1


def test_writer_refuses_a_reconstruction_as_hdf5(tmp_path, moving_disk):
    with pytest.raises(ValueError, match="HDF5 holds measurement files only; save a reconstruction"):
        _io.write_layer(str(tmp_path / "x.h5"), moving_disk, {"name": "x", "metadata": {}})
    assert not any(tmp_path.iterdir())


def test_complete_formats_are_the_ones_that_round_trip(tmp_path, tomography_measurements, moving_disk):
    measurement = measurement_layer(tomography_measurements, "scan")
    result = reconstruction_layer(_result(moving_disk), "psm 2 it")
    for layer_data in (measurement, result):
        data, meta, _ = layer_data
        formats = _io.complete_formats(meta["metadata"])
        assert all(".tif" not in suffixes for _, suffixes in formats)
        for _, suffixes in formats:
            path = tmp_path / f"layer{suffixes[0]}"
            _io.write_layer(str(path), data, meta)
            [(_, reopened, _), *_] = _io.get_reader(str(path))(str(path))
            key = MEASUREMENTS_KEY if MEASUREMENTS_KEY in meta["metadata"] else RESULT_KEY
            assert key in reopened["metadata"]


def test_foreign_files_are_left_to_other_readers(tmp_path):
    np.savez(tmp_path / "other.npz", image=np.zeros((4, 4)))
    (tmp_path / "notes.txt").write_text("hello")
    assert _io.get_reader(str(tmp_path / "other.npz")) is None
    assert _io.get_reader(str(tmp_path / "notes.txt")) is None
    assert _io.get_reader(str(tmp_path / "missing.npz")) is None
    assert _io.get_reader([str(tmp_path / "other.npz")] * 2) is None


@pytest.mark.parametrize(
    "content, message",
    [
        (b"this is not a zip archive", "not a readable NumPy .npz archive"),
        ("modality", "Cannot open measurement file bad.npz"),
    ],
)
def test_corrupt_file_gives_a_notification_and_no_layer(tmp_path, notifications, content, message):
    path = tmp_path / "bad.npz"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:  # our key, impossible content: a sinogram without angles
        np.savez(path, modality=np.array("tomography"), sinogram=np.zeros((2, 1, 8)), image_shape=np.array([8, 8]))
    layers = _io.get_reader(str(path))(str(path))
    assert layers == _io.NO_LAYERS
    assert any(message in text for text in notifications())


# -- volumes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
@pytest.mark.parametrize("modality", ["tomography", "mri"])
def test_volume_measurement_file_opens_as_volume_layers(tmp_path, tomography_volume, mri_volume, modality, suffix):
    from imaging import save_measurements

    measurements = tomography_volume if modality == "tomography" else mri_volume
    path = tmp_path / f"scan{suffix}"
    save_measurements(path, measurements)
    (data, meta, _), *markers, (truth, truth_meta, _) = _io.get_reader(str(path))(str(path))
    assert meta["metadata"][MEASUREMENTS_KEY].image_shape == measurements.image_shape
    # A sinogram picture holds the frames as rows: a vectors layer points at the current one.
    assert [kind for _, _, kind in markers] == (["vectors"] if modality == "tomography" else [])
    frames, n_slices = measurements.ground_truth.shape[:2]
    # Both pictures are shown on the viewer's (z, t, y, x) axes, like the volume ground truth.
    views = measurements.sinogram.shape[1] if modality == "tomography" else None
    expected = (n_slices, 1, frames, views * 16) if modality == "tomography" else (frames, n_slices, 16, 16)
    assert data.shape == expected and meta["axis_labels"] == ("z", "t", "y", "x")
    assert truth.shape == (frames, n_slices, 16, 16) and truth_meta["axis_labels"] == ("z", "t", "y", "x")
    np.testing.assert_array_equal(truth, measurements.ground_truth)


def _volume_result(frames):
    """A stopped two-slice run: slice 0 finished, slice 1 stopped after one iteration."""
    history = [{"slice": 0, "iteration": 1}, {"slice": 0, "iteration": 2}, {"slice": 1, "iteration": 1}]
    return ReconstructionResult(frames, "psm", {"rank": 3}, history, 1.5, "max_iter, stopped")


def test_volume_reconstruction_round_trips_as_one_4d_layer(tmp_path, tomography_volume):
    truth = tomography_volume.ground_truth  # (16, 2, 16, 16)
    data, meta, _ = reconstruction_layer(_volume_result(truth), "psm stopped")
    path = tmp_path / "volume.npz"
    assert _io.write_layer(str(path), data, meta) == [str(path)]
    [(loaded, loaded_meta, kind)] = _io.get_reader(str(path))(str(path))
    assert kind == "image" and loaded.shape == (16, 2, 16, 16)
    np.testing.assert_array_equal(loaded, truth)
    assert loaded_meta["axis_labels"] == ("z", "t", "y", "x") and loaded_meta["name"] == "volume (psm)"
    assert loaded_meta["metadata"]["slice_status"] == ("finished", "stopped")
    assert loaded_meta["metadata"][RESULT_KEY].history[-1] == {"slice": 1, "iteration": 1}


def test_any_4d_layer_saves_as_a_volume_reconstruction_and_tzyx_tiff(tmp_path, tomography_volume):
    import tifffile

    from imaging.io import load_reconstruction

    volume = tomography_volume.ground_truth
    meta = {"name": "walnut volume", "metadata": {}}
    _io.write_layer(str(tmp_path / "volume.npz"), volume, meta)
    _io.write_layer(str(tmp_path / "volume.tif"), volume, meta)
    for name in ("volume.npz", "volume.tif"):
        result = load_reconstruction(tmp_path / name)
        np.testing.assert_array_equal(result.reconstruction, volume)
        assert result.method == "napari layer"
    with tifffile.TiffFile(tmp_path / "volume.tif") as handle:
        assert handle.series[0].axes == "TZYX"


def test_writer_refuses_a_5d_layer_with_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"has shape \(2, 2, 2, 4, 4\); only \(T, Y, X\) stacks and \(T, Z, Y, X\)"):
        _io.write_layer(str(tmp_path / "x.npz"), np.zeros((2, 2, 2, 4, 4)), {"name": "x", "metadata": {}})
    assert not any(tmp_path.iterdir())


# -- hostile files: one notification, no layer, no exception ----------------------------------


def _patch_zip_headers(path, flag_bits=0, method=None):
    """Set bits of the general-purpose flag (and the compression method) in every zip header."""
    import struct

    data = bytearray(path.read_bytes())
    # (signature, offset of the flag in the header); the method follows the flag.
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start >= 0:
            flag = struct.unpack_from("<H", data, start + flag_offset)[0]
            struct.pack_into("<H", data, start + flag_offset, flag | flag_bits)
            if method is not None:
                struct.pack_into("<H", data, start + flag_offset + 2, method)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def _hostile_file(tmp_path, kind, tomography_measurements):
    from imaging import save_measurements

    path = tmp_path / f"{kind}.npz"
    shape = {"frames=0": (0, 1, 8), "views=0": (2, 0, 8), "bins=0": (2, 1, 0)}
    if kind in shape:
        sinogram = np.zeros(shape[kind], np.float32)
        angles = np.zeros(sinogram.shape[:2], np.float32)
        np.savez(path, modality=np.array("tomography"), sinogram=sinogram, angles=angles, image_shape=np.array([8, 8]))
    elif kind in ("encrypted", "compression"):
        save_measurements(path, tomography_measurements)
        if kind == "encrypted":
            _patch_zip_headers(path, flag_bits=0x1)
        else:
            _patch_zip_headers(path, method=99)
    elif kind == "deep-json":
        depth = 100_000
        np.savez(
            path,
            reconstruction=np.zeros((2, 4, 4), np.float32),
            method=np.array("psm"),
            params=np.array("[" * depth + "]" * depth),
            history=np.array("[]"),
            elapsed_seconds=np.float64(0.0),
            stop_reason=np.array("max_iter"),
        )
    elif kind == "huge":
        # A valid zip whose sinogram member declares 10^12 float32 values in its header.
        import zipfile

        header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 1, 1), np.float32))
        header["shape"] = (10**6, 1, 10**6)
        with zipfile.ZipFile(path, "w") as archive:
            with archive.open("sinogram.npy", "w") as member:
                np.lib.format.write_array_header_1_0(member, header)
            for name, value in (("modality", "tomography"), ("angles", np.zeros((10**6, 1))), ("image_shape", [8, 8])):
                with archive.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, np.asarray(value))
    return path


@pytest.mark.parametrize(
    "kind", ["frames=0", "views=0", "bins=0", "encrypted", "compression", "deep-json", "huge"]
)
def test_hostile_file_gives_one_notification_and_no_layer(tmp_path, notifications, tomography_measurements, kind):
    path = _hostile_file(tmp_path, kind, tomography_measurements)
    reader = _io.get_reader(str(path))
    assert reader is not None
    assert reader(str(path)) == _io.NO_LAYERS
    [message] = notifications()
    assert message.startswith("Cannot open") and path.name in message and "\n" not in message


def test_running_out_of_memory_while_reading_is_a_notification(tmp_path, notifications, tomography_measurements, monkeypatch):
    import imaging.io

    path = tmp_path / "scan.npz"
    imaging.io.save_measurements(path, tomography_measurements)

    def exhausted(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr(imaging.io, "load_measurements", exhausted)
    assert _io.get_reader(str(path))(str(path)) == _io.NO_LAYERS
    [message] = notifications()
    assert "not enough memory" in message and "scan.npz" in message


def test_a_file_larger_than_the_free_memory_allows_is_refused_before_reading(
    tmp_path, notifications, tomography_measurements, monkeypatch
):
    import imaging.io

    from imaging_napari import _logic

    path = tmp_path / "scan.npz"
    imaging.io.save_measurements(path, tomography_measurements)
    monkeypatch.setattr(_logic, "available_memory", lambda: 4 * 1024)  # 1 KiB for the file's arrays
    assert _io.read_budget() == 1024
    assert _io.get_reader(str(path))(str(path)) == _io.NO_LAYERS
    [message] = notifications()
    assert message.startswith("Cannot open measurement file scan.npz") and "over the limit of 1024 bytes" in message
    monkeypatch.setattr(_logic, "available_memory", lambda: None)  # where it cannot be asked: the library's limit
    assert _io.read_budget() == imaging.io.DEFAULT_MAX_BYTES
