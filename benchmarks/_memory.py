"""Peak and current resident memory of this process, for the benchmark scripts.

``resource.getrusage(...).ru_maxrss`` is not the process's own peak on Linux: it is kept
across ``fork`` and ``execve``, so a child started by a parent that held more memory
reports the parent's peak. ``VmHWM`` in ``/proc/self/status`` belongs to the process's
own address space (reset by ``execve``) and is used where it exists.
"""

from __future__ import annotations

import os
import resource
import sys


def peak_rss_bytes() -> int:
    """The peak resident set size of this process since it started (execve), bytes."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def rss_bytes() -> int:
    """The current resident set size of this process, bytes."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss
