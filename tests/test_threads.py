"""One thread budget per run: PyTorch's threads and the tomography pool follow it."""

import os
import subprocess
import sys

import pytest
import torch

import imaging
from imaging.run import threads as run_threads
from imaging.simulate import simulate


@pytest.fixture(scope="module")
def tiny():
    return simulate("walnut", frames=16, size=16, seed=3)


def test_requested_threads_are_bounded_by_the_usable_cores():
    cores = run_threads.usable_cores()
    assert run_threads.choose_threads(1) == 1
    assert run_threads.choose_threads(cores + 7) == cores


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_impossible_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        run_threads.choose_threads(bad)


def test_default_budget_follows_the_idle_cores(monkeypatch):
    monkeypatch.setattr(run_threads, "usable_cores", lambda: 8)
    monkeypatch.setattr(run_threads, "idle_cores", lambda: 2.6)
    assert run_threads.choose_threads() == 3
    monkeypatch.setattr(run_threads, "idle_cores", lambda: 0.2)
    assert run_threads.choose_threads() == 1  # a fully loaded machine still gets one thread


def test_idle_cores_is_within_the_usable_cores():
    assert 0.0 <= run_threads.idle_cores(window=0.02) <= run_threads.usable_cores()


def test_cores_used_by_others_are_the_busy_cores_less_this_process(monkeypatch):
    monkeypatch.setattr(run_threads.os, "cpu_count", lambda: 4)
    before = run_threads.CpuSample(wall=10.0, machine=(1000, 4000), own_cpu=5.0)
    # 2 s on 4 CPUs: 800 jiffies, 200 of them idle -> 3 busy cores; this process used 1.5 cores.
    after = run_threads.CpuSample(wall=12.0, machine=(1200, 4800), own_cpu=8.0)
    assert run_threads.cores_used_by_others(before, after) == pytest.approx(1.5)
    # Never below zero (counters of the process and the machine are read at slightly different times).
    busy_self = run_threads.CpuSample(wall=12.0, machine=(1200, 4800), own_cpu=13.0)
    assert run_threads.cores_used_by_others(before, busy_self) == 0.0
    assert run_threads.cores_used_by_others(before._replace(machine=None), after) is None


def test_default_budget_follows_the_other_processes_between_iterations(monkeypatch):
    monkeypatch.setattr(run_threads.os, "cpu_count", lambda: 4)
    monkeypatch.setattr(run_threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(run_threads, "idle_cores", lambda: 4.0)
    monkeypatch.setattr(run_threads, "RECHECK_SECONDS", 0.0)
    loads = iter([0.1, 1.2, 2.9, 3.8, 0.4])
    monkeypatch.setattr(run_threads, "cores_used_by_others", lambda before, after: next(loads))
    budget = run_threads.ThreadBudget()
    with run_threads.thread_budget(budget.threads):
        seen = []
        for _ in range(5):
            seen.append((budget.update(), torch.get_num_threads()))
    assert seen == [(4, 4), (3, 3), (1, 1), (1, 1), (4, 4)]
    # A process bound to 2 of 8 CPUs keeps its 2 threads while the others' work fits the other 6.
    monkeypatch.setattr(run_threads.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(run_threads, "usable_cores", lambda: 2)
    loads = iter([5.0, 6.8])
    bound = run_threads.ThreadBudget()
    with run_threads.thread_budget(bound.threads):
        assert [bound.update(), bound.update()] == [2, 1]
    # A requested number stays, whatever the load.
    monkeypatch.setattr(run_threads, "cores_used_by_others", lambda before, after: 3.8)
    fixed = run_threads.ThreadBudget(2)
    assert [fixed.update() for _ in range(3)] == [2, 2, 2]


def test_the_budget_is_rechecked_at_most_once_per_interval(monkeypatch):
    monkeypatch.setattr(run_threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(run_threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(run_threads, "idle_cores", lambda: 2.0)
    checks = []
    monkeypatch.setattr(run_threads, "cores_used_by_others", lambda before, after: checks.append(1) or 1.0)
    budget = run_threads.ThreadBudget()
    with run_threads.thread_budget(budget.threads):
        budget.update()  # well within RECHECK_SECONDS of the start: no check
        assert not checks and budget.threads == 2
        budget._since = budget._since._replace(wall=budget._since.wall - run_threads.RECHECK_SECONDS)
        assert budget.update() == 1 and checks == [1]


def test_a_run_rechecks_its_default_budget_between_iterations(tiny, monkeypatch):
    if run_threads.usable_cores() < 2:
        pytest.skip("needs two usable cores")
    monkeypatch.setattr(run_threads, "idle_cores", lambda window=0.05: 1.0)
    monkeypatch.setattr(run_threads, "RECHECK_SECONDS", 0.0)
    monkeypatch.setattr(run_threads, "cores_used_by_others", lambda before, after: 0.0)  # the others left
    before = torch.get_num_threads()
    seen = []
    imaging.reconstruct(tiny, "psm", callback=lambda info: seen.append(torch.get_num_threads()), max_iter=2,
                        knots=6, order=5)
    assert seen == [run_threads.usable_cores()] * 2
    assert torch.get_num_threads() == before


def test_a_run_keeps_to_its_budget_and_restores_torch_threads(tiny):
    before = torch.get_num_threads()
    seen = []

    def record(info):
        seen.append(torch.get_num_threads())

    imaging.reconstruct(tiny, "psm", callback=record, threads=1, max_iter=2, knots=6, order=5)
    assert seen and all(count == 1 for count in seen)
    assert torch.get_num_threads() == before


def test_the_tomography_pool_follows_torch_threads():
    import threading

    from imaging.operators._pool import run_on_threads

    for budget in (1, 2):
        used = set()
        with run_threads.thread_budget(budget):
            run_on_threads(lambda block: used.add(threading.get_ident()), list(range(16)))
        assert len(used) <= budget


def test_openmp_threads_wait_passively_unless_the_user_chose(tmp_path):
    code = "import os, imaging; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"


def test_cli_takes_threads(tmp_path, tiny):
    from imaging.cli import main

    source = tmp_path / "m.npz"
    imaging.save_measurements(source, tiny)
    assert main(["reconstruct", str(source), "--method", "fbp-window", "--threads", "1", "-o", str(tmp_path / "r.npz")]) == 0
    assert main(["reconstruct", str(source), "--method", "fbp-window", "--threads", "0", "-o", str(tmp_path / "r.npz")]) == 2
