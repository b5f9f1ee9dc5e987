"""Stage ``collect``: gather one dataset's raw images from its sources.

Reads:  ``params.yaml`` sections ``datasets.<name>.sources`` and ``collect``; local inputs under
        ``data/sources/<name>/``.
Writes: ``data/raw/<name>/`` with ``images/<id>.png`` (decoded, normalised to RGB or RGBA; an input
        PNG or JPEG that needs no normalisation is kept as it is, a JPEG as ``images/<id>.jpg``),
        ``manifest.csv`` (one row per kept image: id, source, origin, licence, credit, pixel SHA-256,
        sizes, original mode, hashes, ...), ``rejects.csv`` (one row per refused input with a named
        reason) and ``report.json`` (counts).
Guarantees: the folder appears complete or not at all; a dataset where nothing survives is an error;
the outputs are byte-identical for any ``collect.workers`` (decoding, checks, hashes and PNG encoding
run in worker processes, the duplicate check in order in this one).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tqdm import tqdm

from animegen import paths
from animegen.artifacts.images import ImageSetWriter, start
from animegen.data.archive import ArchiveCaps
from animegen.data.clean import DuplicateIndex, Filters
from animegen.data.collect import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    Kept,
    collect_items,
    iter_archive_source,
    iter_folder,
    iter_synthetic,
    iter_url_list,
)  # fmt: skip
from animegen.data.fetch import FetchPolicy
from animegen.io import atomic_dir
from animegen.parallel import OrderedPool, resolve_workers
from animegen.recipes import dataset_section, overridden
from animegen.stages import require_kept


def _clarity(value):
    """params' parts_clarity: null, a number, or [lo, hi] (the generator takes a tuple for a range)."""
    if isinstance(value, list):  # lo <= hi is checked with params.yaml
        return (float(value[0]), float(value[1]))
    return value


def iter_sources(specs: list[dict], src_root: Path, c: dict):
    caps = ArchiveCaps(**c["archive"])
    u = dict(c["urls"])
    workers = u.pop("workers")
    policy = FetchPolicy(**u)
    for spec in specs:
        t = spec["type"]
        lic = {"license": spec.get("license", ""), "credit": spec.get("credit", "")}
        if t == "synthetic":
            yield from iter_synthetic(spec["kind"], spec["style"], spec["variant"], spec["n"], spec["seed"],
                                      _clarity(spec.get("parts_clarity")), spec.get("hazard"))  # fmt: skip
        elif t == "folder":
            yield from iter_folder(src_root / spec["path"], f"folder:{spec['path']}", **lic)
        elif t == "archive":
            yield from iter_archive_source(src_root / spec["path"], f"archive:{spec['path']}", caps, **lic)
        elif t == "urls":
            yield from iter_url_list(src_root / spec["path"], f"urls:{spec['path']}", policy, workers, **lic)
        else:  # the schema makes this unreachable
            raise ValueError(f"unknown source type {t!r}")


def run(params: dict, dataset: str, root: Path, workers: int | None = None) -> dict:
    ds = params["datasets"][dataset]
    c = dataset_section(params, dataset, "collect")
    filters = Filters(c["min_side"], c["max_aspect_ratio"], c["min_colours"])
    nd = c["near_duplicate"]
    index = DuplicateIndex(nd["phash_max_distance"], nd["colorhash_max_distance"])
    kept_by_source = Counter()
    with atomic_dir(root / paths.RAW.format(dataset=dataset)) as tmp:
        start(tmp)
        # the workers fork here, before the URL fetcher's threads start (iter_sources is lazy)
        with OrderedPool(resolve_workers(c["workers"] if workers is None else workers)) as pool, \
                ImageSetWriter(tmp, dataset, MANIFEST_COLUMNS, REJECT_COLUMNS) as out:  # fmt: skip
            items = iter_sources(ds["sources"], root / paths.SOURCES.format(dataset=dataset), c)
            for r in tqdm(collect_items(items, filters, index, c["max_pixels"], pool), desc=f"collect {dataset}", unit="img", disable=None):
                if isinstance(r, Kept):
                    (tmp / r.row["file"]).write_bytes(r.data)
                    out.keep(r.row)
                    kept_by_source[r.row["source"]] += 1
                else:
                    out.reject(r)
            require_kept("collect", dataset, out.kept, out.rejects, root)
            report = out.finish(kept_by_source=dict(sorted(kept_by_source.items())), recipe=overridden(params, dataset, "collect"))
    return report
