"""The parameter descriptions front ends build their inputs from (``Solver.describe_params``)."""

import dataclasses

import pytest

from imaging.solvers import METHODS, get_solver
from imaging.solvers.base import PARAM_METADATA, Solver, SolverParams, param


@pytest.mark.parametrize("method", list(METHODS))
def test_defaults_and_presets_lie_within_the_declared_bounds_and_choices(method):
    solver = get_solver(method)
    described = {entry["name"]: entry for entry in solver.describe_params()}
    for values in [{name: entry["default"] for name, entry in described.items()}, *solver.presets.values()]:
        for name, value in values.items():
            entry = described[name]
            assert entry["minimum"] is None or value >= entry["minimum"], (method, name, value)
            assert entry["maximum"] is None or value <= entry["maximum"], (method, name, value)
            assert entry["choices"] is None or value in entry["choices"], (method, name, value)
    for entry in described.values():
        assert set(entry) == {"name", "default", "help", *PARAM_METADATA}
        assert entry["help"] and entry["label"]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_declared_choice_is_accepted_by_the_method(method):
    solver = get_solver(method)
    for entry in solver.describe_params():
        for choice in entry["choices"] or ():
            assert getattr(solver.make_params(**{entry["name"]: choice}), entry["name"]) == choice


def test_every_method_has_a_basic_iterations_row_where_it_iterates():
    for method in METHODS:
        described = {entry["name"]: entry for entry in get_solver(method).describe_params()}
        assert described["max_iter"]["label"] == "iterations" and described["max_iter"]["basic"]
        assert described["max_iter"]["applies"] == (method != "fbp-window")
        assert described["seed"]["applies"] == (method != "fbp-window")


def test_a_redeclared_parameter_keeps_what_it_does_not_say_again():
    @dataclasses.dataclass
    class Longer(SolverParams):
        max_iter: int = param(50, "more iterations")

    class LongerSolver(Solver):
        Params = Longer

    [max_iter, _seed] = LongerSolver.describe_params()
    assert max_iter["default"] == 50 and max_iter["help"] == "more iterations"
    assert max_iter["minimum"] == 1 and max_iter["label"] == "iterations" and max_iter["basic"]


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"default": -1, "minimum": 0}, "outside"),
        ({"default": 5, "maximum": 4}, "outside"),
        ({"default": "x", "choices": ("a", "b")}, "not one of the choices"),
    ],
)
def test_param_refuses_a_default_outside_its_own_description(arguments, message):
    with pytest.raises(ValueError, match=message):
        param(help="h", **arguments)
