"""Per-dataset recipes: a dataset may override keys of the data stages' sections.

``datasets.<name>.collect``, ``.cutout``, ``.resize`` and ``.split`` are partial copies of the
sections of the same name (``{}`` keeps them as they are).  The stage ``X@<name>`` reads
:func:`dataset_section` ``(params, name, "X")``: the section with the dataset's keys laid over it,
nested mappings merged key by key.  Study A trains on its icons as they are
(``cutout: {method: none}``, ``resize: {trim_to_foreground: false}``, ``split: {test: 0}``), study B's
baseline keeps its backgrounds while its proposed setting cuts out onto black, study C upscales 160 px
faces to 256 px (``resize: {allow_upscale: true}``): one params file holds each dataset's own recipe.

Both orchestrators track the dataset's key beside the section (``datasets.<name>.cutout`` and
``cutout``), so a dataset's override reruns that dataset's stage only.  The keys must be written (DVC
refuses a params dependency on a missing key), which is why an empty override is ``{}``.
"""

from __future__ import annotations

DATA_SECTIONS = ("collect", "cutout", "resize", "split")
NO_RECIPE = {section: {} for section in DATA_SECTIONS}  # a dataset that keeps every section as it is


def merge(base: dict, override: dict) -> dict:
    """``base`` with ``override``'s keys laid over it; mappings on both sides are merged recursively."""
    out = dict(base)
    for key, value in override.items():
        out[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def dataset_section(params: dict, dataset: str, section: str) -> dict:
    """The settings of data stage ``section`` for ``dataset``: its section with the dataset's overrides."""
    if section not in DATA_SECTIONS:
        raise ValueError(f"{section!r} is not a data stage section ({', '.join(DATA_SECTIONS)})")
    return merge(params[section], params["datasets"][dataset][section])


def overridden(params: dict, dataset: str, section: str) -> dict:
    """The dataset's own keys for ``section`` (what the report records as the recipe's changes)."""
    return dict(params["datasets"][dataset][section])
