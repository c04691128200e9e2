"""Deprecation aliases for public names that moved (docs/design.md, "Moved names")."""

from __future__ import annotations

import functools
import importlib
import warnings


def moved_attribute(old_module: str, moves: dict[str, str]):
    """A module ``__getattr__`` that serves ``moves[name]`` ("package.module:attr") with a warning.

    Use as ``__getattr__ = moved_attribute(__name__, {...})`` in the module whose names
    moved; the new home is imported only when an old name is used. ``attr`` may be
    dotted ("module:Class.method": a function that became a method).
    """

    def __getattr__(name: str):
        target = moves.get(name)
        if target is None:
            raise AttributeError(f"module {old_module!r} has no attribute {name!r}")
        module_name, _, attribute = target.partition(":")
        warnings.warn(
            f"{old_module}.{name} moved to {module_name}.{attribute}; the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return functools.reduce(getattr, attribute.split("."), importlib.import_module(module_name))

    return __getattr__
