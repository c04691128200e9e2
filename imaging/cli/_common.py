"""What every command of the ``imaging`` command line shares: the error type, exit
codes, parameter parsing (``--config``, ``--set``) and the progress bar."""

from __future__ import annotations

import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean bad input (one line on stderr, exit status 2)."""
    from ..io import FileFormatError
    from ..measurements import MeasurementError
    from ..solvers import ParameterError

    # ValueError covers impossible parameters raised by the library (schedules, phantoms, simulate).
    return (CommandError, FileFormatError, MeasurementError, ParameterError, FileNotFoundError, IsADirectoryError, ValueError)


def read_config(path) -> dict:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise CommandError(f"cannot read config {path}: {exc.strerror}") from None
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise CommandError(f"config {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise CommandError(f"config {path} must be a mapping of parameter names to values")
    return config



def parse_overrides(pairs) -> dict:
    import yaml

    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CommandError(f"--set expects NAME=VALUE, got {pair!r}")
        overrides[name.strip().replace("-", "_")] = yaml.safe_load(value)
    return overrides



def progress_callback(max_iter: int, label: str):
    """A tqdm bar on stderr (terminals only) and the runner callback that advances it.

    The bar counts outer iterations over all slices of a volume, so its remaining-time
    estimate covers the whole run; it is an upper bound, since a method's stopping rule
    may end a slice before ``max_iter``.
    """
    from tqdm import tqdm

    bar = tqdm(total=max_iter, desc=label, unit="it", disable=not sys.stderr.isatty(), leave=True)

    def callback(info):
        bar.total = info.max_iter * info.n_slices
        bar.n = info.slice_index * info.max_iter + info.iteration
        postfix = {"residual": f"{info.entry.get('data_residual', float('nan')):.3g}"}
        if "psnr" in info.entry:
            postfix["psnr"] = f"{info.entry['psnr']:.2f}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    return bar, callback
