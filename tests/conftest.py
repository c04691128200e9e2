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
