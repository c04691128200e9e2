"""The ``imaging`` command line (docs/design.md, "Command line"): argparse lives here only.

One module per command, each with ``add_parser(sub)`` and ``run(args)``; a command is a
thin caller of the library (:mod:`imaging.run`, :mod:`imaging.io`, ...). Every command
reports bad input (wrong file, key, shape, dtype, NaN, impossible parameter) as one line
on stderr and exits with status 2; outputs are written atomically, so a failed or
interrupted command leaves no half-written file behind.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from . import batch, demo, ensemble_denoiser, evaluate, import_, methods, reconstruct, simulate, train_denoiser
from ._common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, CommandError, one_line_warnings, user_errors

#: The sub-commands in the order ``imaging --help`` lists them.
COMMANDS = (simulate, import_, reconstruct, evaluate, methods, train_denoiser, ensemble_denoiser, demo, batch)


def build_parser() -> argparse.ArgumentParser:
    """The ``imaging`` argument parser with every sub-command."""
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="imaging",
        description="Dynamic tomography and dynamic MRI reconstruction with RED-PSM.",
    )
    parser.add_argument("--version", action="version", version=f"imaging {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _describe(exc: BaseException) -> str:
    """One line for an error the user can act on."""
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory; use a smaller problem or free memory"
    if isinstance(exc, OSError) and exc.strerror:  # a full disk, a name too long, no permission
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0, 2 for bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = one_line_warnings(args.command)
        try:
            return int(args.run(args) or 0)
        except (*user_errors(), OSError, MemoryError) as exc:
            print(f"imaging {args.command}: error: {_describe(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED


__all__ = ["CommandError", "EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "build_parser", "main"]
