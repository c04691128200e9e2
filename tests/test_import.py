"""Raw CT imports (imaging.io.raw and its readers, ``imaging import``): every format, the
pre-processing against a hand computation, frames, and refusals of bad input."""

import math

import h5py
import numpy as np
import pytest
import tifffile

from imaging import load_measurements
from imaging.cli import EXIT_BAD_INPUT, main
from imaging.io import FileFormatError, import_raw
from imaging.io import raw as raw_module
from imaging.io.dxchange import write_dxchange
from imaging.io.nxtomo import write_nxtomo
from imaging.io.raw import RawDataError, group_frames
from imaging.io.tiffstack import write_tiff_stack

N_PROJ, ROWS, COLS = 12, 4, 10


def acquisition(seed=0):
    """Counts of a smooth absorbing object on a detector with uneven column gain."""
    rng = np.random.default_rng(seed)
    gain = rng.uniform(0.9, 1.1, COLS)
    dark = np.full((2, ROWS, COLS), 50.0) + rng.integers(0, 3, (2, ROWS, COLS))
    flats = 1000.0 * gain + rng.integers(-5, 6, (3, ROWS, COLS)) + 50
    line_integrals = rng.uniform(0.1, 2.0, (N_PROJ, ROWS, COLS))
    counts = np.round(1000.0 * gain * np.exp(-line_integrals)) + 50
    angles = np.linspace(0.0, 180.0, N_PROJ, endpoint=False)
    return counts.astype(np.uint16), flats.astype(np.uint16), dark.astype(np.uint16), angles


def expected_sinogram(counts, flats, darks, binning=1):
    """-log of the flat/dark-corrected counts, binned, as a user would compute it by hand."""
    dark = darks.astype(np.float64).mean(axis=0)
    flat = flats.astype(np.float64).mean(axis=0)
    transmission = (counts.astype(np.float64) - dark) / (flat - dark)
    n, rows, cols = transmission.shape
    rows, cols = rows // binning * binning, cols // binning * binning
    binned = transmission[:, :rows, :cols].reshape(n, rows // binning, binning, cols // binning, binning).mean(axis=(2, 4))
    return -np.log(binned)


def write(fmt, directory, counts, flats, darks, angles_degrees, timestamps=None):
    """The acquisition in ``fmt``; returns (source, reader options)."""
    if fmt == "dxchange":
        return write_dxchange(directory / "scan.h5", counts, flats, darks, angles_degrees), {}
    if fmt == "nxtomo":
        return write_nxtomo(directory / "scan.nx", counts, flats, darks, angles_degrees), {}
    table = angles_degrees[:, None] if timestamps is None else np.stack([angles_degrees, timestamps], axis=1)
    np.savetxt(directory / "angles.txt", table, header="angle [degrees] time [s]")
    options = {"angles": directory / "angles.txt", "angle_unit": "degrees"}
    if fmt == "tiff-folder":
        for name, images in (("proj", counts), ("flat", flats), ("dark", darks)):
            (directory / name).mkdir()
            for index, image in enumerate(images):
                tifffile.imwrite(directory / name / f"{name}_{index}.tif", image)
        return directory / "proj", {**options, "flats": directory / "flat", "darks": directory / "dark"}
    write_tiff_stack(directory / "flats.tif", flats)
    write_tiff_stack(directory / "darks.tif", darks)
    return write_tiff_stack(directory / "proj.tif", counts), {
        **options,
        "flats": directory / "flats.tif",
        "darks": directory / "darks.tif",
    }


FORMATS = ["dxchange", "nxtomo", "tiff-folder", "tiff-multipage"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_imports_to_the_hand_computed_line_integrals(tmp_path, fmt):
    counts, flats, darks, angles = acquisition()
    source, options = write(fmt, tmp_path, counts, flats, darks, angles)
    result = import_raw(source, **options)
    m = result.measurements
    assert m.sinogram.shape == (N_PROJ, 1, ROWS, COLS) and m.image_shape == (ROWS, COLS, COLS)
    np.testing.assert_allclose(m.sinogram[:, 0], expected_sinogram(counts, flats, darks), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.angles[:, 0], np.deg2rad(angles))
    assert result.report.clipped == 0 and result.report.projections == N_PROJ
    assert (result.report.flats, result.report.darks) == (3, 2)


@pytest.mark.parametrize("binning", [2, 3])
def test_rows_crop_and_binning(tmp_path, binning):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    m = import_raw(source, rows="1:4", columns="1:10", binning=binning).measurements
    expected = expected_sinogram(counts[:, 1:4, 1:10], flats[:, 1:4, 1:10], darks[:, 1:4, 1:10], binning)
    assert m.sinogram.shape == (N_PROJ, 1, 9 // binning)  # 3 rows make one binned row: a single slice
    np.testing.assert_allclose(m.sinogram.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)


def test_one_row_gives_a_single_slice(tmp_path):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    m = import_raw(source, rows="2:3", image_size=8).measurements
    assert m.sinogram.shape == (N_PROJ, 1, COLS) and m.image_shape == (8, 8)
    np.testing.assert_allclose(m.sinogram[:, 0], expected_sinogram(counts, flats, darks)[:, 2], rtol=1e-5)


def test_values_at_or_below_the_dark_level_are_clipped_and_counted(tmp_path):
    counts, flats, darks, angles = acquisition()
    counts[3, 1, 4] = 0  # below the dark level: an opaque pixel with read noise
    counts[5, 2, 7] = 51
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    result = import_raw(source)
    dark = darks.astype(np.float64).mean(axis=0)
    beam = flats.astype(np.float64).mean(axis=0) - dark
    assert result.report.clipped == 1 + int(51 <= dark[2, 7])
    assert result.measurements.sinogram[3, 0, 1, 4] == pytest.approx(-np.log(0.5 / beam[1, 4]), rel=1e-6)
    assert "clipped" in " ".join(result.report.lines())


def test_an_import_larger_than_the_memory_is_refused_before_reading(tmp_path, monkeypatch):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    monkeypatch.setenv("IMAGING_MEMORY_LIMIT", "1MB")  # less than a chunk's work arrays
    with pytest.raises(ValueError, match="importing 12 projections of 4 x 10 bins needs about.*--rows"):
        import_raw(source)


def test_streaming_in_chunks_gives_the_same_result(tmp_path, monkeypatch):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    whole = import_raw(source).measurements.sinogram
    monkeypatch.setattr(raw_module, "CHUNK_BYTES", 8 * ROWS * COLS)  # one frame per chunk
    np.testing.assert_array_equal(import_raw(source).measurements.sinogram, whole)


# -- frames ---------------------------------------------------------------------------------


def test_views_per_frame_group_consecutive_projections(tmp_path):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    result = import_raw(source, rows="0:1", views_per_frame=5)
    m = result.measurements
    assert m.sinogram.shape == (2, 5, COLS) and result.report.dropped_projections == 2
    np.testing.assert_allclose(m.angles.ravel(), np.deg2rad(angles[:10]))


def test_time_stamps_order_the_projections_and_make_frames(tmp_path):
    counts, flats, darks, angles = acquisition()
    timestamps = np.random.default_rng(1).permutation(N_PROJ) * 0.5  # stored out of time order
    source, options = write("tiff-multipage", tmp_path, counts, flats, darks, angles, timestamps)
    result = import_raw(source, frame_time=1.5, **options)
    m, order = result.measurements, np.argsort(timestamps)
    assert m.sinogram.shape == (4, 3, ROWS, COLS) and result.report.time_ordered
    np.testing.assert_allclose(m.angles.ravel(), np.deg2rad(angles[order]))
    np.testing.assert_allclose(m.sinogram.reshape(N_PROJ, ROWS, COLS), expected_sinogram(counts, flats, darks)[order], rtol=1e-5)
    with pytest.raises(RawDataError, match="different numbers of projections"):
        group_frames(N_PROJ, timestamps, frame_time=1.25)
    with pytest.raises(ValueError, match="need time stamps"):
        group_frames(N_PROJ, None, frame_time=1.0)


def test_golden_angle_acquisition_keeps_every_angle(tmp_path):
    counts, flats, darks, _ = acquisition()
    golden = np.mod(np.arange(N_PROJ) * 111.246117975, 180.0)
    source, _ = write("nxtomo", tmp_path, counts, flats, darks, golden)
    m = import_raw(source, rows="0:1", views_per_frame=2).measurements
    np.testing.assert_allclose(m.angles.ravel(), np.deg2rad(golden), atol=1e-9)


def test_continuous_interlaced_rotation_keeps_its_angles_modulo_a_turn(tmp_path):
    counts, flats, darks, _ = acquisition()
    # 3 sweeps of 4 views, logged as the stage's unwrapped rotation (degrees beyond 360)
    unwrapped = np.array([0, 45, 90, 135, 202.5, 247.5, 292.5, 337.5, 382.5, 427.5, 472.5, 517.5]) + 720.0
    source, _ = write("dxchange", tmp_path, counts, flats, darks, unwrapped)
    m = import_raw(source, rows="0:1", views_per_frame=4).measurements
    assert m.sinogram.shape == (3, 4, COLS)
    np.testing.assert_allclose(m.angles.ravel(), np.mod(np.deg2rad(unwrapped), 2 * np.pi), atol=1e-12)


def test_fan_beam_import_states_the_geometry_in_image_pixels(tmp_path):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles * 2)
    m = import_raw(
        source, rows="1:3", binning=2, geometry="fan", pixel_size=0.1, source_origin=30.0, origin_detector=15.0
    ).measurements
    # magnification 1.5; an image pixel is one 0.2 mm bin at the axis: 0.2 / 1.5 mm
    assert (m.geometry, m.detector_spacing) == ("fan", pytest.approx(1.5))
    assert m.source_origin == pytest.approx(30.0 / (0.2 / 1.5)) and m.origin_detector == pytest.approx(15.0 / (0.2 / 1.5))
    with pytest.raises(ValueError, match="must select one detector row"):
        import_raw(source, geometry="fan", pixel_size=0.1, source_origin=30.0, origin_detector=15.0)


# -- refusals -----------------------------------------------------------------------------------


def _broken(change):
    counts, flats, darks, angles = acquisition()
    arrays = {"counts": counts, "flats": flats, "darks": darks, "angles": angles}
    change(arrays)
    return arrays


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a["flats"].__setitem__((slice(None), 2, 3), 0), r"flat field is not above the dark field at 1 pixel.*row 2, column 3"),
        (lambda a: a.update(flats=a["flats"] // 3), "above 1.5 times the flat field"),
        (lambda a: a.update(darks=a["darks"] * 0 + 900), "at or below the dark level.*darks"),
        (lambda a: a.update(angles=a["angles"][:-1]), "11 angles for 12 projections"),
        (lambda a: a.update(angles=np.deg2rad(a["angles"])), "look like radians.*--angle-unit"),
        (lambda a: a["angles"].__setitem__(4, np.nan), "NaN"),
    ],
    ids=["flat-zero", "counts-above-flat", "negative-after-dark", "angle-count", "ambiguous-units", "nan-angle"],
)
def test_bad_raw_data_is_refused(tmp_path, change, message):
    a = _broken(change)
    source = tmp_path / "scan.h5"
    write_dxchange(source, a["counts"], a["flats"], a["darks"], a["angles"])
    with pytest.raises(RawDataError, match=message):
        import_raw(source)


def test_tiff_angles_need_a_stated_unit(tmp_path):
    counts, flats, darks, angles = acquisition()
    source, options = write("tiff-multipage", tmp_path, counts, flats, darks, angles)
    with pytest.raises(RawDataError, match="ambiguous: state it with --angle-unit"):
        import_raw(source, **{**options, "angle_unit": None})
    radians = import_raw(source, **{**options, "angle_unit": "radians"}).measurements  # stated: taken as is
    np.testing.assert_allclose(radians.angles[:, 0], np.mod(angles, 2 * np.pi))


def test_corrupt_and_truncated_files_are_refused(tmp_path):
    counts, flats, darks, angles = acquisition()
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(FileFormatError):
        import_raw(corrupt, "dxchange")
    source = write_dxchange(tmp_path / "whole.h5", counts, flats, darks, angles, chunks=None)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(FileFormatError):
        import_raw(truncated, "dxchange")
    tiff = write_tiff_stack(tmp_path / "proj.tif", counts)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(tiff.read_bytes()[: tiff.stat().st_size // 2])
    np.savetxt(tmp_path / "angles.txt", angles)
    with pytest.raises(FileFormatError):
        import_raw(cut, flats=write_tiff_stack(tmp_path / "f.tif", flats), angles=tmp_path / "angles.txt", angle_unit="degrees")
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle.create_dataset("exchange/data", data=np.ones((3, 4), np.uint16))
        handle.create_dataset("exchange/data_white", data=np.ones((1, 4, 4), np.uint16))
        handle.create_dataset("exchange/theta", data=np.zeros(3))
    with pytest.raises(RawDataError, match=r"must be a stack of images \(n, rows, cols\)"):
        import_raw(tmp_path / "other.h5")


# -- command line -------------------------------------------------------------------------------


def test_import_command_writes_the_measurements_and_reports(tmp_path, capsys):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    out = tmp_path / "m.npz"
    assert main(["import", str(source), "-o", str(out), "--rows", "1:2", "--views-per-frame", "2", "--center", "-1.25"]) == 0
    m = load_measurements(out)
    assert m.sinogram.shape == (6, 2, COLS) and m.center_offset == -1.25
    printed = capsys.readouterr().out
    assert "12 projections" in printed and "center_offset -1.250" in printed


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--rows", "3:9"], "rows of the detector 3:9 is outside"),
        (["--center", "middle"], "--center must be 'auto' or a number"),
        (["--center", "40"], "rotation axis outside the detector"),
        (["--angles", "a.txt"], "describe a TIFF stack"),
        (["--bin", "0"], "binning must be a positive integer"),
    ],
)
def test_import_command_refuses_bad_requests_with_nothing_written(tmp_path, capsys, extra, fragment):
    counts, flats, darks, angles = acquisition()
    source, _ = write("dxchange", tmp_path, counts, flats, darks, angles)
    out = tmp_path / "m.npz"
    assert main(["import", str(source), "-o", str(out), *extra]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert not out.exists()


def test_import_command_refuses_bad_data_with_nothing_written(tmp_path, capsys):
    counts, flats, darks, angles = acquisition()
    source = write_dxchange(tmp_path / "scan.h5", counts, flats // 3, darks, angles)
    out = tmp_path / "m.npz"
    assert main(["import", str(source), "-o", str(out)]) == EXIT_BAD_INPUT
    assert "above 1.5 times the flat" in capsys.readouterr().err
    assert not out.exists()


def test_ring_filter_suppresses_a_stripe(tmp_path):
    pytest.importorskip("algotom")
    rng = np.random.default_rng(3)
    n, cols = 90, 40
    x = np.arange(cols) - cols / 2
    angles = np.linspace(0, 180, n, endpoint=False)
    centres = 6 * np.cos(np.deg2rad(angles))
    line_integrals = 1.5 * np.exp(-((x[None] - centres[:, None]) ** 2) / 40.0)
    counts = 1e4 * np.exp(-line_integrals)[:, None, :] * np.ones((1, 2, 1))
    counts[:, :, 25] *= 0.9  # a column that responds less in the scan than in the flats: a ring
    counts = rng.poisson(counts).astype(np.uint32)
    flats = rng.poisson(np.full((10, 2, cols), 1e4)).astype(np.uint32)
    source = write_dxchange(tmp_path / "ring.h5", counts, flats, None, angles)
    plain = import_raw(source, rows="0:1").measurements.sinogram[:, 0]
    filtered = import_raw(source, rows="0:1", ring_filter=11).measurements.sinogram[:, 0]
    truth = line_integrals

    def stripe(sinogram):
        return abs(float(np.mean(sinogram[:, 25] - truth[:, 25])))

    assert stripe(plain) > 0.08
    assert stripe(filtered) < 0.3 * stripe(plain)
    assert math.isclose(filtered.mean(), plain.mean(), rel_tol=0.05)
