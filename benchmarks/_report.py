"""The footer and the writing of a benchmark's markdown table (shared by the MRI benchmarks)."""

from __future__ import annotations

import datetime
import os
import platform
import sys
from pathlib import Path

import torch

from imaging.io import write_text_atomic


def write_report(lines: list[str], script: str, argv, load_before, output: Path) -> None:
    """Append the machine, load and command to ``lines``, print the table and write it atomically.

    Parameters
    ----------
    lines : list of str
        The table so far (markdown lines).
    script : str
        The benchmark's file name, for the command line it records.
    argv : list of str or None
        The arguments it ran with (None: ``sys.argv[1:]``).
    load_before : tuple of float
        ``os.getloadavg()`` when the measurements began.
    output : pathlib.Path
    """
    load_after = os.getloadavg()
    arguments = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        *lines,
        f"- {datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}; Python {platform.python_version()}, "
        f"torch {torch.__version__}",
        f"- load average before {load_before[0]:.2f}, after {load_after[0]:.2f}",
        f"- command: `{' '.join(['python', f'benchmarks/{script}', arguments]).strip()}`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    write_text_atomic(output, text)
