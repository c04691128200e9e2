"""The thread pool on which the tomography operators apply their frame blocks.

SciPy's sparse products and ASTRA's CPU projections release the GIL, so a pool of
threads runs them in parallel. One pool per thread count is kept for the process.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

Item = TypeVar("Item")

_EXECUTORS: dict[int, ThreadPoolExecutor] = {}
# A forked child inherits the executors but not their threads: it must make its own.
os.register_at_fork(after_in_child=_EXECUTORS.clear)


def run_on_threads(job: Callable[[Item], None], items: Sequence[Item]) -> None:
    """Call ``job(item)`` for every item, on ``torch.get_num_threads()`` threads.

    Items are handed out one at a time, so a thread that other processes slow down
    takes fewer of them. Jobs must write disjoint outputs.
    """
    n_workers = min(torch.get_num_threads(), len(items))
    if n_workers <= 1:
        for item in items:
            job(item)
        return
    executor = _EXECUTORS.get(n_workers)
    if executor is None:
        executor = _EXECUTORS[n_workers] = ThreadPoolExecutor(n_workers, thread_name_prefix="tomography")
    for _ in executor.map(job, items):
        pass
