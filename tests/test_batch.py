"""Batch reconstruction on a local Dask cluster: failures, worker deaths, resume, volumes, memory."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from imaging import load_reconstruction, reconstruct, save_measurements, save_reconstruction  # noqa: E402
from imaging.run.batch import (  # noqa: E402
    SUMMARY_NAME,
    WORK_DIR_NAME,
    BatchError,
    collect_inputs,
    make_local_cluster,
    reconstruct_many,
)
from imaging.run.batch.inputs import file_digest  # noqa: E402
from imaging.run.batch.planning import work_name  # noqa: E402
from imaging.cli import main  # noqa: E402
from imaging.metrics import evaluate  # noqa: E402
from imaging.simulate import simulate_tomography  # noqa: E402
from imaging.solvers import METHODS, Solver, SolverParams, get_solver, param, register  # noqa: E402
from imaging.metrics import evaluate_volume  # noqa: E402
from imaging.run import reconstruct  # noqa: E402
from imaging.simulate import simulate_volume_tomography  # noqa: E402

FRAMES, SIZE, SLICES = 6, 24, 3
METHOD = "fbp-window"


def moving_disk(frames=FRAMES, size=SIZE, shift=0.0):
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    return np.stack([((xx - 0.6 * p - shift) ** 2 + yy**2 <= (0.25 * size) ** 2) for p in range(frames)]).astype(
        np.float32
    )


def angles(frames=FRAMES):
    return np.linspace(0, np.pi, frames, endpoint=False)[:, None]


def write_scan(path, shift=0.0):
    return save_measurements(path, simulate_tomography(moving_disk(shift=shift), angles(), noise=1e-2, seed=1))


def write_volume(path):
    volume = np.stack([moving_disk(shift=z) * (1 + 0.3 * z) for z in range(SLICES)], axis=1)
    return save_measurements(path, simulate_volume_tomography(volume, angles(), noise=1e-2, seed=2))


# -- a method that kills its worker process the first time it runs ------------------------
@dataclasses.dataclass
class CrashOnceParams(SolverParams):
    marker: str = param("", "file whose absence makes the solver kill its process (and create it)")


class CrashOnceSolver(Solver):
    """Test-only: exits the worker process on its first run, then returns zeros."""

    name = "test-crash-once"
    Params = CrashOnceParams

    def step(self):
        marker = Path(self.params.marker)
        if not marker.exists():
            marker.touch()
            os._exit(1)
        return {"data_residual": 1.0}

    def estimate(self):
        return np.zeros((self.measurements.n_frames, *self.measurements.image_shape), dtype=np.float32)


class RegisterCrashOnce(distributed.WorkerPlugin):
    """Registers the test method in every worker process (also in restarted ones)."""

    def setup(self, worker):
        register(CrashOnceSolver)


@pytest.fixture(scope="module")
def cluster():
    with make_local_cluster(n_workers=2) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def client(cluster):
    register(CrashOnceSolver)
    with distributed.Client(cluster) as dask_client:
        dask_client.register_plugin(RegisterCrashOnce())
        yield dask_client
    METHODS.pop(CrashOnceSolver.name)


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scans")
    for index in range(2):
        write_scan(folder / f"scan{index}.npz", shift=index)
    return folder


def read_summary(folder):
    return {Path(row["item"]).name: row for row in json.loads((Path(folder) / SUMMARY_NAME).read_text())}


def test_local_cluster_listens_on_loopback_only_without_dashboard(cluster, client):
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    workers = client.scheduler_info(n_workers=-1)["workers"]
    assert len(workers) == 2
    for address, info in workers.items():
        assert address.startswith("tcp://127.0.0.1:") and info["nanny"].startswith("tcp://127.0.0.1:")
        assert info["memory_limit"] > 0
    pids = [os.getpid(), *client.run(os.getpid).values()]
    listening = [
        conn.laddr for pid in pids for conn in psutil.Process(pid).net_connections("inet") if conn.status == "LISTEN"
    ]
    assert listening and {addr.ip for addr in listening} == {"127.0.0.1"}
    http_port = cluster.scheduler.http_server._sockets
    ports = {sock.getsockname()[1] for sock in http_port.values()}
    import urllib.error
    import urllib.request

    for port in ports:
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status == 200
        for page in ("/status", "/info/main/workers.html", "/metrics"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5)


def _malloc_trim_threshold():
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_cluster_workers_keep_glibc_adaptive_mmap_threshold(client):
    # Dask's default MALLOC_TRIM_THRESHOLD_ doubled the time of a RED-PSM slice.
    assert set(client.run(_malloc_trim_threshold).values()) == {None}


def test_corrupt_file_fails_alone_and_cli_exits_nonzero(scans, tmp_path, capsys):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for scan in scans.iterdir():
        (inputs / scan.name).write_bytes(scan.read_bytes())
    (inputs / "broken.npz").write_bytes(b"this is not a zip archive")
    out = tmp_path / "out"
    status = main(["batch", str(inputs), "-o", str(out), "--method", METHOD, "--workers", "1"])
    assert status == 1
    assert sorted(p.name for p in out.glob("*.npz")) == ["scan0.npz", "scan1.npz"]
    rows = read_summary(out)
    assert rows["broken.npz"]["status"] == "failed" and "not a .npz file" in rows["broken.npz"]["error"]
    assert rows["scan0.npz"]["status"] == rows["scan1.npz"]["status"] == "ok"
    assert np.isfinite(rows["scan0.npz"]["metrics"]["psnr"])
    table = capsys.readouterr().out
    assert "broken.npz" in table and "1 failed" in table and "2 ok" in table
    assert load_reconstruction(out / "scan0.npz").reconstruction.shape == (FRAMES, SIZE, SIZE)
    assert not (out / WORK_DIR_NAME).exists()


def test_worker_killed_mid_batch_is_retried(client, scans, tmp_path):
    marker = tmp_path / "crashed-once"
    rows = reconstruct_many([scans], "test-crash-once", output_dir=tmp_path / "out", client=client,
                            progress=False, marker=str(marker))
    assert marker.exists()  # a worker did die
    assert [row["status"] for row in rows] == ["ok", "ok"]
    assert all(Path(row["output"]).is_file() for row in rows)
    client.wait_for_workers(2, timeout=60)  # the nanny replaced the dead worker


def test_rerun_skips_finished_outputs_and_redoes_damaged_ones(client, scans, tmp_path):
    out = tmp_path / "out"
    first = reconstruct_many([scans], METHOD, output_dir=out, client=client, progress=False)
    assert [row["status"] for row in first] == ["ok", "ok"]
    untouched = (out / "scan1.npz").stat().st_mtime_ns
    (out / "scan0.npz").write_bytes((out / "scan0.npz").read_bytes()[:100])  # a damaged output
    second = reconstruct_many([scans], METHOD, output_dir=out, client=client, progress=False)
    assert [row["status"] for row in second] == ["ok", "skipped"]
    assert (out / "scan1.npz").stat().st_mtime_ns == untouched
    redone = load_reconstruction(out / "scan0.npz").reconstruction
    measurements = simulate_tomography(moving_disk(), angles(), noise=1e-2, seed=1)
    np.testing.assert_array_equal(redone, reconstruct(measurements, METHOD).reconstruction)
    assert second[0]["metrics"] == pytest.approx(evaluate(redone, measurements.ground_truth))
    assert second[1]["metrics"] == pytest.approx(first[1]["metrics"])  # scored again from the kept output
    other_settings = reconstruct_many([scans], METHOD, output_dir=out, client=client, progress=False, seed=7)
    assert [row["status"] for row in other_settings] == ["ok", "ok"]


def test_volume_slices_run_as_tasks_and_assemble(client, cluster, scans, tmp_path):
    volume_path = write_volume(tmp_path / "volume.h5")
    out = tmp_path / "out"
    status = main(["batch", str(volume_path), str(scans / "scan0.npz"), "-o", str(out), "--method", METHOD,
                   "--scheduler", cluster.scheduler_address])
    assert status == 0
    rows = read_summary(out)
    assert rows["volume.h5"]["status"] == "ok" and rows["volume.h5"]["slices"] == SLICES
    result = load_reconstruction(out / "volume.npz")
    assert result.reconstruction.shape == (FRAMES, SLICES, SIZE, SIZE)
    from imaging import load_measurements

    expected = reconstruct(load_measurements(volume_path), METHOD)
    np.testing.assert_array_equal(result.reconstruction, expected.reconstruction)
    assert sorted({entry["slice"] for entry in result.history}) == list(range(SLICES))
    assert rows["volume.h5"]["metrics"]["psnr"] == pytest.approx(
        evaluate_volume(result.reconstruction, load_measurements(volume_path).ground_truth)["psnr"]
    )
    assert not (out / WORK_DIR_NAME).exists()


def test_finished_partial_slices_are_reused(client, tmp_path):
    from imaging import load_measurements

    volume_path = write_volume(tmp_path / "volume.npz")
    out = tmp_path / "out"
    work = out / WORK_DIR_NAME / work_name(volume_path, file_digest(volume_path))
    work.mkdir(parents=True)
    # A slice finished by an interrupted earlier run (recognisable: scaled by 2).
    done = reconstruct(load_measurements(volume_path).slice(1), METHOD)
    done.reconstruction = 2 * done.reconstruction
    save_reconstruction(work / "slice-0001.npz", done)
    rows = reconstruct_many(volume_path, METHOD, output_dir=out, client=client, progress=False)
    assert rows[0]["status"] == "ok"
    assembled = load_reconstruction(out / "volume.npz").reconstruction
    np.testing.assert_array_equal(assembled[:, 1], done.reconstruction)
    assert not work.exists()


def test_memory_guard_refuses_an_item_that_cannot_fit(scans, tmp_path):
    from imaging import load_measurements

    small = load_measurements(scans / "scan0.npz")
    red_psm, fbp_window = get_solver("red-psm"), get_solver("fbp-window")
    assert red_psm.estimate_bytes(small) > fbp_window.estimate_bytes(small) > small.sinogram.nbytes
    rows = reconstruct_many([scans / "scan0.npz"], METHOD, output_dir=tmp_path, memory_limit="100MiB", progress=False)
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"].startswith("memory guard:") and "100.00 MiB" in rows[0]["error"]
    assert not (tmp_path / "scan0.npz").exists()


def test_collect_inputs_from_folders_globs_and_manifests(scans, tmp_path):
    scan0, scan1 = sorted(scans.glob("*.npz"))
    (tmp_path / "list.txt").write_text(f"# the study\n{scan1}\n\n{scans.name}/scan0.npz\n")
    (tmp_path / "list.yaml").write_text(f"inputs:\n  - {scans}/*.npz\n")
    (tmp_path / scans.name).symlink_to(scans)
    assert collect_inputs([scans]) == [scan0, scan1]
    assert collect_inputs([str(scans / "scan*.npz"), scan0]) == [scan0, scan1]
    assert collect_inputs([tmp_path / "list.txt"]) == [scan1, (tmp_path / scans.name / "scan0.npz").absolute()]
    assert collect_inputs([tmp_path / "list.yaml"]) == [scan0, scan1]
    with pytest.raises(BatchError, match="matches no measurement file"):
        collect_inputs([str(scans / "*.h5")])
    with pytest.raises(BatchError, match="not a measurement file"):
        collect_inputs([tmp_path / "notes.md"])
    (tmp_path / "nested.txt").write_text("list.txt\n")
    with pytest.raises(BatchError, match="lists another manifest"):
        collect_inputs([tmp_path / "nested.txt"])


def test_bad_batch_input_exits_with_status_2(scans, tmp_path, capsys):
    clash = tmp_path / "other"
    clash.mkdir()
    write_scan(clash / "scan0.npz")
    assert main(["batch", str(scans), str(clash), "-o", str(tmp_path / "out"), "--method", METHOD]) == 2
    assert "same output file" in capsys.readouterr().err
    assert main(["batch", str(scans), "-o", str(tmp_path / "out"), "--method", "no-such-method"]) == 2
    assert main(["batch", str(scans), "-o", str(tmp_path), "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"]) == 2
    assert "cannot change an existing one" in capsys.readouterr().err
