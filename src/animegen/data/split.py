"""Deterministic train/test split by image id.

Each id gets a uniform number in [0, 1) from SHA-256 of ``"<seed>:<id>"``.  With a fraction ``f`` an
image is in the test set when its number is below ``f``: its side never depends on which other images
exist, so adding or removing unrelated images moves nothing.  With a count ``n`` (study B's 2000/50)
the ``n`` lowest numbers are the test set: adding images changes at most as many test members as the
new images that rank below the current cut.  Ids are content hashes, so the split is also stable when
the same images are collected again in a different order.  A count of 0 holds nothing out (study A
trains and measures on every image).
"""

from __future__ import annotations

import hashlib
from typing import Iterable


def split_key(image_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_ids(ids: Iterable[str], test: float | int, seed: int) -> dict[str, list[str]]:
    """Return ``{"train": [...], "test": [...]}`` (each sorted); ``test`` is a fraction or a count."""
    ids = sorted(set(ids))
    if isinstance(test, bool) or not isinstance(test, (int, float)):
        raise ValueError(f"test must be a fraction or a count, got {test!r}")
    if isinstance(test, float):
        if not 0 < test < 1:
            raise ValueError(f"test fraction must be in (0, 1), got {test}")
        test_ids = {i for i in ids if split_key(i, seed) < test}
    else:
        if not 0 <= test < len(ids):
            raise ValueError(f"test count {test} needs at least {test + 1} images, have {len(ids)}")
        test_ids = set(sorted(ids, key=lambda i: (split_key(i, seed), i))[:test])
    return {"train": [i for i in ids if i not in test_ids], "test": sorted(test_ids)}
