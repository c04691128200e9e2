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
    format_summary,
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


# -- a method whose checkpoint shows whose data it has seen --------------------------------
@dataclasses.dataclass
class SumParams(SolverParams):
    marker: str = param("", "file whose presence makes every iteration after the first fail")


class SumSolver(Solver):
    """Test-only: adds the mean of the data at every iteration; the image is that sum.

    A run resumed from another input's checkpoint therefore gives another image than a
    fresh run (mean A + mean B instead of 2 x mean B).
    """

    name = "test-sum"
    Params = SumParams

    def __init__(self, measurements, params, device="cpu"):
        super().__init__(measurements, params, device)
        self.total = 0.0

    def step(self):
        if self.iteration >= 1 and Path(self.params.marker).is_file():
            raise ValueError("stopped by the marker file")
        self.total += float(self.measurements.sinogram.mean())
        return {"data_residual": 1.0}

    def estimate(self):
        return np.full((self.measurements.n_frames, *self.measurements.image_shape), self.total, dtype=np.float32)

    def state_dict(self):
        return {**super().state_dict(), "total": self.total}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.total = float(state["total"])


# -- a method whose reconstruction is exact on an empty scan (an infinite PSNR) -------------
class ZeroSolver(Solver):
    """Test-only: reconstructs zeros (solvers never see the ground truth, so an exact
    reconstruction needs a scan of nothing)."""

    name = "test-zero"

    def step(self):
        return {"data_residual": 0.0}

    def estimate(self):
        return np.zeros((self.measurements.n_frames, *self.measurements.image_shape), dtype=np.float32)


TEST_SOLVERS = (CrashOnceSolver, SumSolver, ZeroSolver)


class RegisterTestSolvers(distributed.WorkerPlugin):
    """Registers the test methods in every worker process (also in restarted ones)."""

    def setup(self, worker):
        for solver in TEST_SOLVERS:
            register(solver)


@pytest.fixture(scope="module")
def cluster():
    with make_local_cluster(n_workers=2) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def client(cluster):
    for solver in TEST_SOLVERS:
        register(solver)
    with distributed.Client(cluster) as dask_client:
        dask_client.register_plugin(RegisterTestSolvers())
        yield dask_client
    for solver in TEST_SOLVERS:
        METHODS.pop(solver.name)


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


# -- hardening (issue 14): one bad item, lost inputs, another scan's work files, the summary --
def tamper_zip(source, target, *, flag_bits=0, compression=None):
    """Copy a .npz (zip) file, setting general-purpose flag bits (0x1: encrypted) or the
    compression method of every member in both its local and central headers."""
    import struct
    import zipfile

    data = bytearray(Path(source).read_bytes())
    with zipfile.ZipFile(source) as archive:
        infos, position = archive.infolist(), archive.start_dir
    for info in infos:
        for flags_at in (info.header_offset + 6, position + 8):  # local header, central directory entry
            data[flags_at:flags_at + 2] = struct.pack("<H", info.flag_bits | flag_bits)
            if compression is not None:
                data[flags_at + 2:flags_at + 4] = struct.pack("<H", compression)
        assert data[position:position + 4] == b"PK\x01\x02"
        name_length, extra_length, comment_length = struct.unpack("<HHH", data[position + 28:position + 34])
        position += 46 + name_length + extra_length + comment_length
    Path(target).write_bytes(bytes(data))


def write_deeply_nested_output(path, depth=200_000):
    """A reconstruction file whose params JSON nests ``depth`` lists (json.loads: RecursionError)."""
    np.savez(path, reconstruction=np.zeros((FRAMES, SIZE, SIZE), np.float32), method=np.array(METHOD),
             params=np.array("[" * depth + "]" * depth), history=np.array("[]"), elapsed_seconds=np.float64(0.0))


def test_one_bad_item_never_stops_the_batch(scans, tmp_path, capsys):
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    for scan in scans.iterdir():
        (inputs / scan.name).write_bytes(scan.read_bytes())
    tamper_zip(scans / "scan0.npz", inputs / "encrypted.npz", flag_bits=0x1)
    tamper_zip(scans / "scan0.npz", inputs / "unknown-compression.npz", compression=99)
    write_deeply_nested_output(out / "scan1.npz")  # an earlier output that cannot be parsed
    with pytest.raises((RecursionError, ValueError)):
        load_reconstruction(out / "scan1.npz")
    status = main(["batch", str(inputs), "-o", str(out), "--method", METHOD, "--workers", "1"])
    assert status == 1
    rows = read_summary(out)
    assert rows["encrypted.npz"]["status"] == rows["unknown-compression.npz"]["status"] == "failed"
    assert "encrypted" in rows["encrypted.npz"]["error"]
    assert "compression" in rows["unknown-compression.npz"]["error"]
    assert rows["scan0.npz"]["status"] == rows["scan1.npz"]["status"] == "ok"  # scan1 recomputed
    assert load_reconstruction(out / "scan1.npz").reconstruction.shape == (FRAMES, SIZE, SIZE)
    assert "2 ok, 0 skipped, 2 failed" in capsys.readouterr().out


MEMORY_BOMB_SCRIPT = """
import json, resource, sys
import dask.utils, h5py, numpy  # everything the planning needs, imported before the limit
import imaging.metrics, imaging.run.batch, imaging.solvers
from imaging.run.batch import reconstruct_many

with open("/proc/self/status") as status:
    in_use = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (in_use + 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))
rows = reconstruct_many(sys.argv[1:-1], "fbp-window", output_dir=sys.argv[-1], progress=False)
print(json.dumps([row["status"] for row in rows]))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux (RLIMIT_AS, /proc)")
def test_an_item_too_large_for_memory_fails_alone(scans, tmp_path):
    import subprocess
    import sys

    import h5py

    bomb = tmp_path / "bomb.h5"  # 4 GiB of sinogram declared, never written: a few KB on disk
    with h5py.File(bomb, "w") as handle:
        handle["modality"] = "tomography"
        handle["image_shape"] = np.array([1024, 1024])
        handle["angles"] = np.zeros((1024, 1))
        handle.create_dataset("sinogram", shape=(1024, 1024, 1024), dtype=np.float32, chunks=(1, 64, 1024),
                              fillvalue=1.0)
    missing = tmp_path / "missing.npz"
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", MEMORY_BOMB_SCRIPT, str(bomb), str(missing), str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == ["failed", "failed"]
    rows = read_summary(out)
    assert rows["missing.npz"]["error"].startswith("cannot read")
    assert rows["bomb.h5"]["error"]


def test_summary_is_written_when_the_batch_stops(client, scans, tmp_path, monkeypatch):
    from imaging.run import batch

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        reconstruct_many([scans], METHOD, output_dir=tmp_path, client=client, progress=False)
    rows = read_summary(tmp_path)
    assert {row["status"] for row in rows.values()} == {"failed"}
    assert all(row["error"] == "not finished: the batch stopped (interrupted)" for row in rows.values())


def test_output_folder_holding_the_inputs_is_refused_unless_allowed(scans, tmp_path, capsys):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "scan0.npz").write_bytes((scans / "scan0.npz").read_bytes())
    before = (folder / "scan0.npz").read_bytes()
    for inputs in ([str(folder)], [str(folder / "scan0.npz")], [str(tmp_path / "link" / "scan0.npz")]):
        (tmp_path / "link").unlink(missing_ok=True)
        (tmp_path / "link").symlink_to(folder)
        assert main(["batch", *inputs, "-o", str(folder), "--method", METHOD]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and "holds 1 input file(s) (scan0.npz)" in error
        assert "outputs would replace the .npz inputs" in error and "--allow-output-in-input-folder" in error
    assert sorted(p.name for p in folder.iterdir()) == ["scan0.npz"] and (folder / "scan0.npz").read_bytes() == before
    h5_folder = tmp_path / "h5"
    h5_folder.mkdir()
    save_measurements(h5_folder / "scan.h5", simulate_tomography(moving_disk(), angles(), noise=1e-2, seed=1))
    assert main(["batch", str(h5_folder), "-o", str(h5_folder), "--method", METHOD]) == 2
    assert "would replace" not in capsys.readouterr().err
    assert main(["batch", str(h5_folder), "-o", str(h5_folder), "--method", METHOD, "--workers", "1",
                 "--allow-output-in-input-folder"]) == 0
    assert load_reconstruction(h5_folder / "scan.npz").reconstruction.shape == (FRAMES, SIZE, SIZE)


def test_work_files_and_outputs_of_another_input_with_the_same_name_are_not_used(client, tmp_path):
    first, second, out = tmp_path / "a" / "scan.npz", tmp_path / "b" / "scan.npz", tmp_path / "out"
    means = {}
    for path, brightness in ((first, 1.0), (second, 1.5)):
        path.parent.mkdir()
        measurements = simulate_tomography(brightness * moving_disk(), angles(), noise=1e-2, seed=1)
        save_measurements(path, measurements)
        means[path] = float(measurements.sinogram.mean())
    assert means[first] != pytest.approx(means[second], rel=0.1)
    marker = tmp_path / "stop"
    marker.touch()
    settings = dict(output_dir=out, client=client, progress=False, max_iter=2, checkpoint_every=1, marker=str(marker))
    # The first scan stops after its first iteration: its checkpoint stays in the work folder.
    assert reconstruct_many(first, "test-sum", **settings)[0]["status"] == "failed"
    assert len(list((out / WORK_DIR_NAME).glob("scan-*.ckpt"))) == 1
    marker.unlink()
    # Another scan of the same name and size starts afresh (resumed: mean A + mean B).
    assert reconstruct_many(second, "test-sum", **settings)[0]["status"] == "ok"
    np.testing.assert_allclose(load_reconstruction(out / "scan.npz").reconstruction, 2 * means[second], rtol=1e-6)
    assert not (out / WORK_DIR_NAME).exists()  # the first scan's stale checkpoint was dropped
    # The first scan again: the output of the second one is not taken for finished.
    rows = reconstruct_many(first, "test-sum", **settings)
    assert rows[0]["status"] == "ok" and rows[0]["input_sha256"] == file_digest(first)
    np.testing.assert_allclose(load_reconstruction(out / "scan.npz").reconstruction, 2 * means[first], rtol=1e-6)
    assert str(load_reconstruction(out / "scan.npz").extras["input_sha256"]) == file_digest(first)
    assert reconstruct_many(first, "test-sum", **settings)[0]["status"] == "skipped"


def test_finished_slices_of_another_volume_with_the_same_name_are_not_used(client, tmp_path):
    from imaging import load_measurements

    first, second, out = tmp_path / "a" / "volume.npz", tmp_path / "b" / "volume.npz", tmp_path / "out"
    first.parent.mkdir()
    second.parent.mkdir()
    write_volume(first)
    volume = np.stack([moving_disk(shift=2 - z) for z in range(SLICES)], axis=1)
    save_measurements(second, simulate_volume_tomography(volume, angles(), noise=1e-2, seed=3))
    work = out / WORK_DIR_NAME / work_name(first, file_digest(first))
    work.mkdir(parents=True)
    save_reconstruction(work / "slice-0001.npz", reconstruct(load_measurements(first).slice(1), METHOD))
    assert reconstruct_many(second, METHOD, output_dir=out, client=client, progress=False)[0]["status"] == "ok"
    expected = reconstruct(load_measurements(second), METHOD).reconstruction
    np.testing.assert_array_equal(load_reconstruction(out / "volume.npz").reconstruction, expected)
    assert not (out / WORK_DIR_NAME).exists()


def test_summary_is_strict_json_with_ordinary_permissions(client, tmp_path):
    empty = tmp_path / "empty.npz"
    save_measurements(empty, simulate_tomography(np.zeros_like(moving_disk()), angles(), noise=0.0))
    old_umask = os.umask(0o022)
    try:
        rows = reconstruct_many([empty], "test-zero", output_dir=tmp_path / "out", client=client, progress=False)
    finally:
        os.umask(old_umask)
    assert rows[0]["status"] == "ok" and rows[0]["metrics"]["psnr"] == float("inf")  # the Python rows keep inf
    summary = tmp_path / "out" / SUMMARY_NAME
    assert summary.stat().st_mode & 0o777 == 0o644

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    written = json.loads(summary.read_text(), parse_constant=refuse)
    assert written[0]["metrics"]["psnr"] is None and written[0]["metrics"]["ssim"] == pytest.approx(1.0)
    assert format_summary(written).splitlines()[2].split()[3] == "-"


def test_a_task_runs_on_its_share_of_the_cores(scans, tmp_path, monkeypatch):
    import imaging.run.runner as runner
    from imaging.run.batch.tasks import TaskSpec, run_task

    budgets = []
    original = runner.reconstruct

    def recording(*args, **kwargs):
        budgets.append(kwargs.get("threads"))
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "reconstruct", recording)
    spec = TaskSpec(
        name="a", input_path=str(scans / "scan0.npz"), output_path=str(tmp_path / "a.npz"),
        checkpoint_path=str(tmp_path / "a.ckpt"), method=METHOD, preset=None, params={}, device="cpu",
        checkpoint_every=5, score=False, torch_threads=2,
    )
    assert run_task(spec)["status"] == "ok"
    assert budgets == [2]


def test_memory_model_comes_from_the_solver_and_counts_a_volume_task_whole(tmp_path):
    from imaging import load_measurements
    from imaging.run.batch.memory import task_bytes
    from imaging.solvers.base import measurement_bytes

    volume = load_measurements(write_volume(tmp_path / "volume.npz"))
    one_slice = volume.slice(0)
    td_dip = get_solver("td-dip")
    with pytest.raises(ValueError, match="one slice"):
        td_dip.estimate_bytes(volume)
    wide, narrow = td_dip.make_params(channels=64), td_dip.make_params(channels=32)
    frames, (height, width) = volume.n_frames, volume.slice_shape
    from imaging.solvers.td_dip import ACTIVATION_BYTES

    assert td_dip.estimate_bytes(one_slice, wide) - td_dip.estimate_bytes(one_slice, narrow) == (
        ACTIVATION_BYTES * 32 * height * width
    )
    psm, fbp = get_solver("psm"), get_solver("fbp-window")
    assert psm.estimate_bytes(one_slice) > fbp.estimate_bytes(one_slice) > measurement_bytes(one_slice)
    fbp = get_solver("fbp-window")
    extra = task_bytes(volume, fbp, fbp.make_params()) - fbp.estimate_bytes(one_slice)
    assert extra == measurement_bytes(volume) + 4 * frames * height * width
    from imaging.run.batch import estimate_task_bytes

    with pytest.warns(DeprecationWarning, match="estimate_bytes"):
        deprecated = estimate_task_bytes(volume, "fbp-window")
    assert deprecated == fbp.estimate_bytes(one_slice)
