"""Raw-data readers: ISMRMRD (written here with the ismrmrd package) and fastMRI-style HDF5."""

import h5py
import ismrmrd
import ismrmrd.xsd as xsd
import numpy as np
import pytest

from imaging.io import FileFormatError
from imaging.io.fastmri import read_fastmri
from imaging.io.ismrmrd import read_ismrmrd
from imaging.simulate import simulate


def _header(height, width, frames, counter="repetition", trajectory=None, slices=1):
    space = xsd.encodingSpaceType(
        matrixSize=xsd.matrixSizeType(x=width, y=height, z=1),
        fieldOfView_mm=xsd.fieldOfViewMm(x=300.0, y=300.0, z=8.0),
    )
    limits = {
        "kspace_encoding_step_1": xsd.limitType(minimum=0, maximum=height - 1, center=height // 2),
        counter: xsd.limitType(minimum=0, maximum=frames - 1, center=0),
        "slice": xsd.limitType(minimum=0, maximum=slices - 1, center=0),
    }
    encoding = xsd.encodingType(
        encodedSpace=space,
        reconSpace=space,
        encodingLimits=xsd.encodingLimitsType(**limits),
        trajectory=trajectory or xsd.trajectoryType.CARTESIAN,
    )
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=63_500_000), encoding=[encoding]
    )
    return xsd.ToXML(header)


def _acquisition(readout, row, frame, counter="repetition", centre=None, flags=(), slice_index=0):
    acquisition = ismrmrd.Acquisition.from_array(np.ascontiguousarray(readout, dtype=np.complex64))
    acquisition.idx.kspace_encode_step_1 = int(row)
    setattr(acquisition.idx, counter, int(frame))
    acquisition.idx.slice = slice_index
    acquisition.center_sample = readout.shape[1] // 2 if centre is None else centre
    for flag in flags:
        acquisition.set_flag(flag)
    return acquisition


def _write(path, header, acquisitions):
    dataset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dataset.write_xml_header(header)
    for acquisition in acquisitions:
        dataset.append_acquisition(acquisition)
    dataset.close()


@pytest.fixture(scope="module")
def cartesian():
    return simulate("cardiac", frames=5, size=16, lines_per_frame=6, coils=3, seed=2)


def _lines(m, counter="repetition"):
    for frame in range(m.n_frames):
        for row in np.nonzero(m.mask[frame, :, 0])[0]:
            yield _acquisition(m.kspace[frame, :, row, :], row, frame, counter)


@pytest.mark.parametrize("counter", ["repetition", "phase"])
def test_ismrmrd_round_trip_gives_the_same_kspace_and_mask(cartesian, tmp_path, counter):
    path = tmp_path / "cine.h5"
    _, _, height, width = cartesian.kspace.shape
    noise = np.random.default_rng(0).standard_normal((3, width)).astype(np.complex64)
    extra = [
        _acquisition(noise, 0, 0, counter, flags=[ismrmrd.ACQ_IS_NOISE_MEASUREMENT]),  # skipped
        _acquisition(noise, 3, 1, counter, flags=[ismrmrd.ACQ_IS_PARALLEL_CALIBRATION]),  # skipped
    ]
    _write(path, _header(height, width, cartesian.n_frames, counter), [*extra, *_lines(cartesian, counter)])
    read = read_ismrmrd(path)
    np.testing.assert_array_equal(read.mask, cartesian.mask)
    np.testing.assert_array_equal(read.kspace, cartesian.kspace)
    assert read.coil_maps is None and read.needs_coil_maps and read.image_shape == (16, 16)
    assert read_ismrmrd(path, frames=counter).n_frames == cartesian.n_frames


def test_ismrmrd_averages_asymmetric_echoes_and_slices(tmp_path):
    height, width, coils = 8, 10, 2
    rng = np.random.default_rng(1)
    first, second = (rng.standard_normal((coils, 6)) + 1j * rng.standard_normal((coils, 6)) for _ in range(2))
    acquisitions = [
        # Two averages of one line of an asymmetric echo: 6 samples, the centre at sample 1.
        _acquisition(first, 4, 0, centre=1),
        _acquisition(second, 4, 0, centre=1),
        _acquisition(first, 2, 1, slice_index=1, centre=1),
    ]
    path = tmp_path / "partial.h5"
    _write(path, _header(height, width, 2, slices=2), acquisitions)
    read = read_ismrmrd(path)
    assert read.is_volume and read.kspace.shape == (2, 2, coils, height, width)
    # Sample 1 (the echo centre) lands on column W // 2 = 5: columns 4..9.
    np.testing.assert_allclose(read.kspace[0, 0, :, 4, 4:10], (first + second) / 2, rtol=1e-6)
    assert read.mask[0, 0, 4].tolist() == [False] * 4 + [True] * 6
    np.testing.assert_allclose(read.kspace[1, 1, :, 2, 4:10], first, rtol=1e-6)
    assert read.mask.sum() == 12


def test_ismrmrd_refusals(cartesian, tmp_path):
    _, _, height, width = cartesian.kspace.shape
    lines = list(_lines(cartesian))

    def refused(header, acquisitions, message, **options):
        path = tmp_path / "refused.h5"
        path.unlink(missing_ok=True)
        _write(path, header, acquisitions)
        with pytest.raises(FileFormatError, match=message):
            read_ismrmrd(path, **options)

    refused(_header(height, width, 5, trajectory=xsd.trajectoryType.RADIAL), lines, "trajectory 'radial'")
    both = [*lines, _acquisition(cartesian.kspace[0, :, 8, :], 8, 1, counter="phase")]
    refused(_header(height, width, 5), both, "both the repetition and the phase counters vary")
    refused(_header(height, width, 5), both, "the phase counter varies too", frames="repetition")
    reverse = [_acquisition(cartesian.kspace[0, :, 8, :], 8, 0, flags=[ismrmrd.ACQ_IS_REVERSE])]
    refused(_header(height, width, 5), reverse, "reversed readouts")
    refused(_header(height // 2, width, 5), lines, "outside the 8 rows")
    wide = [_acquisition(np.ones((3, 2 * width), np.complex64), 8, 0)]
    refused(_header(height, width, 5), wide, "do not fit the 16 columns")
    with h5py.File(tmp_path / "plain.h5", "w") as handle:
        handle["kspace"] = np.zeros((2, 4, 4), np.complex64)
    with pytest.raises(FileFormatError, match="is it an ISMRMRD file"):
        read_ismrmrd(tmp_path / "plain.h5")
    with pytest.raises(FileFormatError, match="limit of 1000 bytes"):
        path = tmp_path / "large.h5"
        _write(path, _header(height, width, 5), lines)
        read_ismrmrd(path, max_bytes=1000)


def test_fastmri_style_file(cartesian, tmp_path):
    # fastMRI's layout: phase encoding along the last axis, the transpose of ours.
    fastmri_kspace = np.swapaxes(cartesian.kspace, -1, -2)
    path = tmp_path / "fastmri.h5"
    with h5py.File(path, "w") as handle:
        handle["kspace"] = fastmri_kspace
        handle["reconstruction_rss"] = np.zeros((5, 16, 16), np.float32)  # not read
    read = read_fastmri(path)
    np.testing.assert_array_equal(read.kspace, cartesian.kspace)
    np.testing.assert_array_equal(read.mask, cartesian.mask)
    # With a mask of acquired columns, shared by all frames.
    columns = np.zeros(16, bool)
    columns[[3, 8, 9]] = True
    with h5py.File(path, "w") as handle:
        handle["kspace"] = fastmri_kspace[:, 0]  # single coil (P, H, W)
        handle["mask"] = columns.astype(np.uint8)
    read = read_fastmri(path)
    assert read.kspace.shape == (5, 1, 16, 16)
    np.testing.assert_array_equal(read.mask[:, :, 0], np.broadcast_to(columns, (5, 16)))
    np.testing.assert_array_equal(read.kspace[:, 0, 8], cartesian.kspace[:, 0, 8])
    assert np.all(read.kspace[:, :, 4] == 0)
    with h5py.File(path, "w") as handle:
        handle["kspace"] = np.abs(fastmri_kspace)
    with pytest.raises(FileFormatError, match="'kspace' must be complex"):
        read_fastmri(path)
    with h5py.File(path, "w") as handle:
        handle["images"] = np.zeros((2, 4, 4), np.complex64)
    with pytest.raises(FileFormatError, match="no 'kspace' dataset"):
        read_fastmri(path)


def test_imaging_import_reads_ismrmrd_and_fastmri(cartesian, tmp_path, capsys):
    from imaging import load_measurements
    from imaging.cli import EXIT_BAD_INPUT, main

    _, _, height, width = cartesian.kspace.shape
    raw, out = tmp_path / "cine.h5", tmp_path / "cine.npz"
    _write(raw, _header(height, width, cartesian.n_frames, "phase"), list(_lines(cartesian, "phase")))
    assert main(["import", str(raw), "-o", str(out)]) == 0  # the format is detected
    imported = load_measurements(out)
    np.testing.assert_array_equal(imported.kspace, cartesian.kspace)
    assert "5 frames" in capsys.readouterr().out
    assert main(["import", str(raw), "--format", "ismrmrd", "--frames-from", "phase", "-o", str(out)]) == 0
    fastmri = tmp_path / "fastmri.h5"
    with h5py.File(fastmri, "w") as handle:
        handle["kspace"] = np.swapaxes(cartesian.kspace, -1, -2)
    assert main(["import", str(fastmri), "-o", str(out)]) == 0
    np.testing.assert_array_equal(load_measurements(out).mask, cartesian.mask)
    # CT options and the wrong counter are refused with one line.
    assert main(["import", str(raw), "--bin", "2", "-o", str(out)]) == EXIT_BAD_INPUT
    assert "--bin describe(s) a CT import" in capsys.readouterr().err
    assert main(["import", str(raw), "--frames-from", "repetition", "-o", str(out)]) == EXIT_BAD_INPUT
    assert "the phase counter varies too" in capsys.readouterr().err
