"""Fixtures of the napari plugin tests.

``landweber`` registers a small iterative solver for the duration of a test: the
plugin's job, cancel and error paths are exercised on a method whose iterations are
cheap and deterministic, independently of how long the library's own solvers take.
"""

import dataclasses
import time

import numpy as np
import pytest
import torch

from imaging.solvers import METHODS, register
from imaging.solvers.base import ParameterError, Solver, SolverParams, param


@dataclasses.dataclass
class LandweberParams(SolverParams):
    max_iter: int = param(200, "maximum number of outer iterations")
    relaxation: float = param(1.0, "step size times ||A||^2, in (0, 2)")
    step_delay: float = param(0.0, "seconds each iteration sleeps, to emulate a slow solver")

    def validate(self) -> None:
        super().validate()
        if not 0.0 < self.relaxation < 2.0:
            raise ParameterError(f"relaxation must be in (0, 2), got {self.relaxation}")


class Landweber(Solver):
    """Gradient descent on ||A f - g||^2 / 2 from zero (tomography only)."""

    name = "test-landweber"
    Params = LandweberParams
    presets = {"quick": {"max_iter": 3}}
    modalities = ("tomography",)
    #: The most recently created solver, so a test can see how far a worker thread got.
    latest = None

    def __init__(self, measurements, params, device="cpu"):
        super().__init__(measurements, params, device)
        Landweber.latest = self
        self.operator = measurements.operator(device)
        self.data = torch.from_numpy(measurements.sinogram).to(device)
        self.step_size = params.relaxation / self.operator.norm(n_iter=20) ** 2
        self.frames = torch.zeros((measurements.n_frames, *measurements.image_shape), device=device)

    def step(self):
        time.sleep(self.params.step_delay)
        with torch.no_grad():
            residual = self.operator.forward(self.frames) - self.data
            self.frames -= self.step_size * self.operator.adjoint(residual)
        return {"data_residual": float(residual.norm() / self.data.norm())}

    def estimate(self):
        return self.frames.cpu().numpy().copy()


@pytest.fixture
def landweber():
    """Register ``test-landweber`` in ``METHODS`` for one test; yields the solver class."""
    register(Landweber)
    yield Landweber
    METHODS.pop(Landweber.name, None)
    Landweber.latest = None


@pytest.fixture
def nothreads(monkeypatch):
    """Run plugin jobs synchronously (the plugin's test switch)."""
    monkeypatch.setenv("IMAGING_NAPARI_NOTHREADS", "1")


@pytest.fixture
def moving_disk():
    """A bright disk moving across 8 frames of 32x32 pixels, float32 in [0, 1]."""
    frames, size = 8, 32
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    centres = np.linspace(-5, 5, frames)
    return np.stack([(np.hypot(y, x - c) < 7).astype(np.float32) for c in centres])


@pytest.fixture
def tomography_measurements(moving_disk):
    """Two views per frame of :func:`moving_disk`, 1% noise."""
    from imaging.simulate import simulate_tomography

    angles = np.linspace(0, np.pi, 16, endpoint=False).reshape(8, 2)
    return simulate_tomography(moving_disk, angles, noise=0.01, seed=0)


@pytest.fixture
def tomography_volume():
    """A walnut volume of 16 frames x 2 slices of 16x16, two views per frame, 1% noise."""
    from imaging.simulate import simulate_volume

    return simulate_volume("walnut", frames=16, size=16, slices=2, views_per_frame=2, noise=0.01)


@pytest.fixture
def mri_volume():
    """A cardiac volume of 8 frames x 2 slices of 16x16, 6 k-space lines per frame, 2 coils."""
    from imaging.simulate import simulate_volume

    return simulate_volume("cardiac", frames=8, size=16, slices=2, lines_per_frame=6, coils=2, noise=0.01)


@pytest.fixture
def notifications():
    """A function returning the messages of napari notifications dispatched since the test began."""
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    return lambda: [str(record.message) for record in notification_manager.records[start:]]
