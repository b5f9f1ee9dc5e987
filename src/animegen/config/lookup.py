"""The one lookup of a declared entry by name, with the message a user needs when it is not there."""

from __future__ import annotations

from animegen.config.errors import ParamsError

NOUNS = {"datasets": "dataset", "models": "model", "compare.pairs": "pair", "cam_classifier": "classifier",
         "cam_select": "selection", "translators": "translator"}  # fmt: skip


def entry(params: dict, section: str, name: str) -> dict:
    """``params[a][b]...[name]`` for a dotted ``section`` (``datasets``, ``models``, ``compare.pairs``,
    ``cam_classifier``, ``cam_select``), or a :class:`ParamsError` naming the key and the declared names."""
    group = params
    for key in section.split("."):
        group = group[key]
    if name not in group:
        known = ", ".join(sorted(group)) or "none"
        raise ParamsError(f"{section}.{name}: no such {NOUNS.get(section, 'entry')} (declared: {known})")
    return group[name]
