"""Resource limits: how much memory this process may take, and sane ranges of inputs.

Every place that would allocate memory in proportion to untrusted input (a file's
declared array sizes, a requested image size or frame count, a run's estimated peak)
asks :func:`check_memory` first, so an oversized request ends with one clear
:class:`ResourceLimitError` (a ``ValueError``: exit status 2 on the command line) before
anything is allocated, instead of a ``MemoryError``, a native abort or the system
swapping. See docs/security.md.

The memory this process may use is the smallest of:

- ``MemAvailable`` of ``/proc/meminfo`` (or ``psutil``'s ``available`` elsewhere);
- the room left under a cgroup memory limit (containers, batch schedulers);
- the room left under ``RLIMIT_AS`` (``ulimit -v``);
- ``IMAGING_MEMORY_LIMIT`` from the environment, in bytes or with a unit (``512MiB``,
  ``4GiB``, ``2GB``), a cap a user or a test may set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: Largest |angle| (radians) a measurement may carry: about 160 000 turns. Angles are
#: reduced modulo 2 pi before they reach ASTRA (which loops forever on angles of about
#: 2e8 rad); at 1e6 rad a float64 still resolves 1.2e-10 rad, beyond that the reduction
#: would no longer give the angle that was meant.
MAX_ABS_ANGLE = 1e6

#: Accepted detector bin widths (image-pixel units). ASTRA computes in float32 and
#: refuses a width that rounds to zero (1e-300); a bin of a million pixels sees nothing.
DETECTOR_SPACING_RANGE = (1e-6, 1e6)

#: Environment variable that caps the memory this process may use.
MEMORY_LIMIT_VARIABLE = "IMAGING_MEMORY_LIMIT"

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


class ResourceLimitError(ValueError):
    """A request that would need more memory than this process may use."""


def parse_size(text: str) -> int:
    """Bytes of a size such as ``"512MiB"``, ``"4GiB"``, ``"2e9"`` or ``"100000"``."""
    match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"not a memory size: {text!r} (expected e.g. 512MiB, 4GiB or a number of bytes)")
    try:
        value = float(match.group(1)) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"not a memory size: {text!r} (expected e.g. 512MiB, 4GiB or a number of bytes)") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"not a memory size: {text!r}")
    return int(value)


def format_size(n_bytes: int | float) -> str:
    """A byte count for people: ``"1.5 GiB"``."""
    value = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(value) < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.3g} EiB"  # pragma: no cover - the loop returns at PiB


def _meminfo_available() -> int | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _psutil_available() -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _cgroup_room() -> int | None:
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        limit = _read_int(limit_file)
        # cgroup v1 reports "no limit" as a huge number (a page-rounded 2**63).
        if limit is not None and limit < 2**60:
            return max(0, limit - (_read_int(usage_file) or 0))
    return None


def _address_space_room() -> int | None:
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmSize:\s+(\d+)\s*kB", status, re.MULTILINE)
    used = int(match.group(1)) * 1024 if match else 0
    return max(0, soft - used)


def available_memory() -> int:
    """Bytes this process may still allocate (see the module docstring)."""
    candidates = [_meminfo_available()]
    if candidates[0] is None:
        candidates = [_psutil_available()]
    candidates += [_cgroup_room(), _address_space_room()]
    configured = os.environ.get(MEMORY_LIMIT_VARIABLE)
    if configured:
        candidates.append(parse_size(configured))
    known = [value for value in candidates if value is not None]
    return min(known) if known else 2**63


def check_memory(n_bytes: int, what: str, *, hint: str = "") -> None:
    """Raise :class:`ResourceLimitError` when ``what`` needs more than the available memory.

    Parameters
    ----------
    n_bytes : int
        The estimated peak memory of the request (bytes).
    what : str
        Names the request in the message, e.g. ``"reconstructing 'walnut.npz' with red-psm"``.
    hint : str
        What the user can do instead, appended to the message.
    """
    available = available_memory()
    if n_bytes > available:
        raise ResourceLimitError(
            f"{what} needs about {format_size(n_bytes)} of memory but only {format_size(available)} "
            f"is available{'; ' + hint if hint else ''}"
        )
