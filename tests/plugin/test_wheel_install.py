"""The wheel carries everything an installed copy needs: RED-PSM runs from it outside the repository.

The test builds the wheel from a copy of the sources, installs it into a fresh virtual
environment (``--system-site-packages``, so the heavy dependencies such as torch are
not downloaded again) and runs the command-line tool from a directory outside the
repository, with ``PYTHONPATH`` cleared, so that nothing of the repository can be
imported: the shipped denoiser weights, the napari manifest and the plugin must come
from the wheel.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from imaging.denoisers.weights import SHIPPED_DENOISERS

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(command, cwd, env, timeout=600):
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, f"{command} failed:\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


def _clean_environment() -> dict:
    """The current environment without anything that points Python at the repository."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.update(OMP_NUM_THREADS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def _build_wheel(tmp_path: Path, env: dict) -> Path:
    """Build the wheel from a copy of the packaging inputs (the checkout stays untouched)."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for name in ("imaging", "plugins"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)]
    if importlib.util.find_spec("setuptools") is not None:  # build with it: no build environment to fetch
        command.insert(4, "--no-build-isolation")
    _run(command, cwd=tmp_path, env=env)
    [wheel] = (tmp_path / "dist").glob("imaging_redpsm-*.whl")
    return wheel


def test_red_psm_runs_from_an_installed_wheel(tmp_path):
    env = _clean_environment()
    wheel = _build_wheel(tmp_path, env)
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        *(f"imaging/data/denoiser/{name}" for name in SHIPPED_DENOISERS.values()),
        *(f"imaging/data/denoiser/{Path(name).with_suffix('.json')}" for name in SHIPPED_DENOISERS.values()),
        "imaging_napari/napari.yaml",
    } <= names
    assert not any(name.startswith(("tests/", "data/")) for name in names)

    environment = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(environment)
    python = environment / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], cwd=tmp_path, env=env)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = _run(
        [str(python), "-c", "import imaging, imaging_napari; print(imaging.__file__); print(imaging_napari.__file__)"],
        cwd=outside,
        env=env,
    )
    for line in where.split():
        assert Path(line).resolve().is_relative_to(environment.resolve()), f"imported from {line}, not the wheel"

    imaging = str(environment / "bin" / "imaging")
    assert _run([imaging, "--version"], cwd=outside, env=env).strip().startswith("imaging ")
    _run(
        [imaging, "simulate", "--phantom", "walnut", "--frames", "8", "--size", "16", "--noise", "0", "-o", "tiny.npz"],
        cwd=outside,
        env=env,
    )
    _run(
        [imaging, "reconstruct", "tiny.npz", "--method", "red-psm", "--max-iter", "1",
         "--set", "order=2", "--set", "knots=4", "-o", "out.npz"],
        cwd=outside,
        env=env,
    )
    check = (
        "import numpy as np, imaging, npe2\n"
        "result = imaging.load_reconstruction('out.npz')\n"
        "assert result.method == 'red-psm' and result.reconstruction.shape == (8, 16, 16)\n"
        "assert np.isfinite(result.reconstruction).all() and np.abs(result.reconstruction).max() > 0\n"
        "manifest = npe2.PluginManifest.from_distribution('imaging-redpsm')\n"
        "assert manifest.name == 'imaging-redpsm'\n"
        "print('ok')\n"
    )
    assert _run([str(python), "-c", check], cwd=outside, env=env).strip() == "ok"
