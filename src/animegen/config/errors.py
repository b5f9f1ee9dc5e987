"""The one error a bad ``params.yaml`` raises, and how keys and values are named in its message."""

from __future__ import annotations

from typing import Any

EXIT_PARAMS = 2  # the command line's exit code for a bad params.yaml or a bad argument


class ParamsError(Exception):
    """A bad ``params.yaml``; ``str(e)`` is one line naming the key path."""


def path_str(path) -> str:
    """A key path as written in messages: ``models.dcgan.net.lr``, ``datasets.x.sources[0]``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def describe(v: Any) -> str:
    """A value as a message names it: ``string '12'``, ``integer 3``, ``a mapping``."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {v!r}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"number {v}"
    if isinstance(v, str):
        return f"string {v!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__
