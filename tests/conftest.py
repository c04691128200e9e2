"""Fixtures shared by the library's test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_torch_thread():
    """Tiny problems: one torch thread avoids thread start-up costs on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def one_default_thread(request, monkeypatch):
    """A run's default thread budget follows the cores idle when it starts, which other
    processes change between two runs of one test: runs compared bit for bit then differ
    (a fresh-clone CI run failed so while another job ran). Tests get one thread unless
    they ask for more (at the start and when the budget is re-checked between iterations);
    test_threads.py checks the real rule."""
    if request.module.__name__.rsplit(".", 1)[-1] == "test_threads":
        return
    from imaging.run import threads

    monkeypatch.setattr(threads, "idle_cores", lambda window=0.05: 1.0)
    # Others keep all of the machine's CPUs but one busy: the re-checked budget stays 1.
    monkeypatch.setattr(threads, "cores_used_by_others", lambda before, after: threads.machine_cpus() - 1.0)
