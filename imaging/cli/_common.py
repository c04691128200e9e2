"""What every command of the ``imaging`` command line shares: the error type, exit
codes, parameter parsing (``--config``, ``--set``) and the progress bar."""

from __future__ import annotations

import os
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

    # ValueError covers impossible parameters raised by the library (schedules, phantoms,
    # simulate), resource limits, damaged checkpoints and diverging runs.
    return (CommandError, FileFormatError, MeasurementError, ParameterError, FileNotFoundError, IsADirectoryError,
            ValueError)


#: Largest --config file read (bytes): parameters are a few lines.
_MAX_CONFIG_BYTES = 1 << 20


def _yaml_value(text: str, where: str):
    """``text`` parsed as safe YAML, or a one-line :class:`CommandError` naming ``where``."""
    import yaml

    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError) as exc:
        # PyYAML's messages span several lines (the offending text and a caret).
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        position = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise CommandError(f"{where} is not valid YAML: {problem}{position}") from None


def read_config(path) -> dict:
    """The parameter mapping of a YAML ``--config`` file."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read config {path}: {exc.strerror}") from None
    if len(data) > _MAX_CONFIG_BYTES:
        raise CommandError(f"config {path} is larger than {_MAX_CONFIG_BYTES} bytes; it should hold a few parameters")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError(f"config {path} is not UTF-8 text") from None
    config = _yaml_value(text, f"config {path}") or {}
    if not isinstance(config, dict) or not all(isinstance(key, str) for key in config):
        raise CommandError(f"config {path} must be a mapping of parameter names to values")
    return config


def parse_overrides(pairs) -> dict:
    """``--set NAME=VALUE`` pairs as a parameter mapping (each VALUE parsed as YAML)."""
    overrides = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--set expects NAME=VALUE, got {pair!r}")
        if not value.strip():
            raise CommandError(f"--set {name.strip()}= has no value")
        overrides[name.strip().replace("-", "_")] = _yaml_value(value, f"--set {pair}")
    return overrides


def method_parameters(args, reserved) -> dict:
    """Method parameters from ``--config`` then ``--set``; names in ``reserved`` (the
    command's own options, e.g. ``device``, ``resume``) are refused."""
    params = read_config(args.config) if args.config else {}
    params.update(parse_overrides(args.set))
    clash = sorted(set(params) & set(reserved))
    if clash:
        raise CommandError(f"{', '.join(clash)} cannot be set as method parameters; use the command's options")
    return params


def refuse_overwriting_inputs(output, inputs, *, flag: str | None = None) -> None:
    """Refuse to write ``output`` onto one of the ``inputs`` (the same file, also through
    links), unless ``flag`` names an option the user gave to allow it (checked by the caller)."""
    output = Path(output)
    for item in inputs:
        item = Path(item)
        same = output.exists() and item.exists() and os.path.samefile(output, item)
        if same or output.resolve() == item.resolve():
            allow = f" (pass {flag} to replace it anyway)" if flag else ""
            raise CommandError(f"output {output} is the input {item}; refusing to overwrite it{allow}")


def one_line_warnings(command: str):
    """Show every warning as one line on stderr: ``imaging COMMAND: warning: MESSAGE``."""

    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        print(f"imaging {command}: warning: {text}", file=sys.stderr)

    return show



def progress_callback(max_iter: int, label: str):
    """A tqdm bar on stderr (terminals only) and the runner callback that advances it.

    The bar counts outer iterations over all slices of a volume. Its ``left`` field is
    :class:`imaging.run.RemainingTime`'s bound on the time the run has left (a stopping
    rule may end it sooner), which also costs the finer grids of red-psm's coarse-to-fine
    start; tqdm's own rate-based estimate would promise a quick end during its cheap
    coarse iterations, so it is not shown.
    """
    from tqdm import tqdm

    from ..run.progress import RemainingTime, format_seconds

    bar = tqdm(
        total=max_iter, desc=label, unit="it", disable=not sys.stderr.isatty(), leave=True,
        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
    )
    remaining = RemainingTime()

    def callback(info):
        bar.total = info.max_iter * info.n_slices
        bar.n = info.slice_index * info.max_iter + info.iteration
        seconds_left = remaining.update(info)
        postfix = {"left": "..." if seconds_left is None else f"<= {format_seconds(seconds_left)}"}
        postfix["residual"] = f"{info.entry.get('data_residual', float('nan')):.3g}"
        if "grid_size" in info.entry:
            postfix["grid"] = f"{int(info.entry['grid_size'])}"
        if "psnr" in info.entry:
            postfix["psnr"] = f"{info.entry['psnr']:.2f}"
        bar.set_postfix(postfix, refresh=False)
        bar.refresh()

    return bar, callback
