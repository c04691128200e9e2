"""The npe2 manifest: valid, installed, and pointing at importable objects."""

import importlib
import subprocess
from pathlib import Path

import pytest
from npe2 import PluginManager, PluginManifest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "plugins" / "imaging_napari" / "napari.yaml"


@pytest.fixture(scope="module")
def manifest():
    return PluginManifest.from_file(MANIFEST)


def test_manifest_validates_and_names_the_distribution(manifest):
    assert manifest.name == "imaging-redpsm"
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'name = "imaging-redpsm"' in pyproject
    assert 'imaging-redpsm = "imaging_napari:napari.yaml"' in pyproject


def test_there_is_one_manifest_and_any_copy_is_identical():
    # The package's manifest is a plain file (the wheel carries it); a copy elsewhere in
    # the repository, e.g. for a plugin index, must not drift from it.
    assert MANIFEST.is_file() and not MANIFEST.is_symlink()
    tracked = subprocess.run(
        ["git", "ls-files", "--", "*napari.yaml"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    copies = [ROOT / name for name in tracked.stdout.split()] if tracked.returncode == 0 else []
    copies += [path for path in ROOT.glob("*napari.yaml") if path not in copies]
    for copy in copies:
        assert copy.read_bytes() == MANIFEST.read_bytes(), f"{copy} differs from {MANIFEST}"


def test_every_command_points_at_an_existing_callable(manifest):
    for command in manifest.contributions.commands:
        module_name, _, attribute = command.python_name.partition(":")
        target = getattr(importlib.import_module(module_name), attribute)
        assert callable(target), command.id


def test_contributions_cover_widgets_samples_reader_writer(manifest):
    contributions = manifest.contributions
    assert [w.display_name for w in contributions.widgets] == [
        "Simulate acquisition",
        "Reconstruct",
        "Compare reconstructions",
    ]
    assert {s.key for s in contributions.sample_data} == {
        "walnut",
        "shepp_logan",
        "material",
        "cardiac",
        "walnut_volume",
        "tomography_measurement",
        "mri_measurement",
    }
    assert set(contributions.readers[0].filename_patterns) == {"*.npz", "*.h5", "*.hdf5"}
    writers = {writer.display_name: set(writer.filename_extensions) for writer in contributions.writers}
    assert writers == {
        "measurement or reconstruction file, everything kept": {".npz"},
        "measurement file (HDF5), everything kept": {".h5", ".hdf5"},
        "TIFF stack, pixels and run parameters only": {".tif", ".tiff"},
    }
    assert {writer.command for writer in contributions.writers} == {"imaging-redpsm.write_layer"}


def test_installed_plugin_is_discovered_by_npe2():
    manager = PluginManager.instance()
    manager.discover()
    names = [m.name for m in manager.iter_manifests()]
    assert "imaging-redpsm" in names, "the plugin is not installed: run `pip install -e .` at the repository root"
    readers = [r.plugin_name for r in manager.iter_compatible_readers(["measurements.npz"])]
    assert "imaging-redpsm" in readers
    writer, _ = manager.get_writer("reconstruction.npz", ["image"], plugin_name="imaging-redpsm")
    assert writer is not None and writer.command == "imaging-redpsm.write_layer"
