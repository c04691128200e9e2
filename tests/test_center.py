"""Rotation-axis offset estimation (imaging.center) on small moving phantoms, without ground truth."""

import math

import numpy as np
import pytest

from imaging import load_measurements
from imaging.center import estimate_center_offset
from imaging.cli import main
from imaging.io.dxchange import write_dxchange
from imaging.measurements import MeasurementError
from imaging.simulate import simulate, simulate_raw_tomography


@pytest.mark.parametrize("offset", [-3.3, 2.75])
@pytest.mark.parametrize(
    "geometry, method",
    [
        ({}, "moments"),
        ({"views_per_frame": 3, "frames": 22, "schedule": "golden-angle"}, "moments"),
        ({"arc": 2 * math.pi}, "opposing"),
        ({"geometry": "fan"}, "opposing"),
        ({"geometry": "fan", "schedule": "golden-angle"}, "opposing"),
    ],
    ids=["parallel-moments", "golden-3-views-moments", "full-circle-opposing", "fan-opposing", "fan-golden-opposing"],
)
def test_offset_of_a_moving_phantom_within_a_quarter_bin(geometry, method, offset):
    options = {"frames": 64, **geometry}
    m = simulate("walnut", size=32, seed=2, center_offset=offset, **options)
    estimate = estimate_center_offset(m, method)
    assert estimate.method == method
    assert estimate.offset == pytest.approx(offset, abs=0.25)
    auto = estimate_center_offset(m)  # auto picks by geometry
    assert auto.method == ("opposing" if geometry.get("geometry") == "fan" else "moments")


def test_volume_rows_share_the_axis():
    m = simulate("material", frames=48, size=24, slices=3, center_offset=-1.75, seed=1)
    assert estimate_center_offset(m).offset == pytest.approx(-1.75, abs=0.25)


def test_methods_refuse_acquisitions_they_cannot_use():
    half_turn = simulate("walnut", frames=32, size=24, seed=1)
    with pytest.raises(MeasurementError, match="no pairs of views half a turn apart"):
        estimate_center_offset(half_turn, "opposing")
    fan = simulate("walnut", frames=32, size=24, geometry="fan", seed=1)
    with pytest.raises(MeasurementError, match="parallel beam only"):
        estimate_center_offset(fan, "moments")
    with pytest.raises(ValueError, match="center method must be one of"):
        estimate_center_offset(half_turn, "guess")
    with pytest.raises(MeasurementError, match="belongs to tomography"):
        estimate_center_offset(simulate("cardiac", frames=4, size=16))


def test_import_with_center_auto_estimates_and_stores_the_offset(tmp_path, capsys):
    raw = simulate_raw_tomography("walnut", frames=64, size=32, seed=3, center_offset=3.5)
    source = write_dxchange(tmp_path / "raw.h5", raw.counts, raw.flats, raw.darks, np.rad2deg(raw.angles.ravel()))
    out = tmp_path / "m.npz"
    assert main(["import", str(source), "-o", str(out), "--center", "auto"]) == 0
    assert "estimated by moments" in capsys.readouterr().out
    assert load_measurements(out).center_offset == pytest.approx(3.5, abs=0.25)
