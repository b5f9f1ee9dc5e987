"""Invariants easier to state than examples, checked on generated inputs (hypothesis).

- pad-to-square keeps the image's pixels and aspect and centres it;
- the split is stable when images are added: no image ever changes side;
- an archive member name is either refused or stays inside the folder it would be extracted to.
"""

from __future__ import annotations

import posixpath

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from animegen.data.archive import check_member_name
from animegen.data.resize import pad_to_square
from animegen.data.split import split_ids
from animegen.io import Rejected

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(h=st.integers(1, 40), w=st.integers(1, 40), channels=st.sampled_from([None, 1, 3, 4]), seed=st.integers(0, 2**32 - 1))
def test_pad_to_square_keeps_the_pixels_and_centres_them(h, w, channels, seed):
    shape = (h, w) if channels is None else (h, w, channels)
    arr = np.random.default_rng(seed).integers(1, 256, shape, dtype=np.uint8)  # no black pixel of its own
    out, px, py = pad_to_square(arr)
    s = max(h, w)
    assert out.shape == (s, s) + shape[2:] and out.dtype == arr.dtype
    np.testing.assert_array_equal(out[py : py + h, px : px + w], arr)  # every pixel, unscaled: aspect kept
    assert int((out != 0).any(axis=tuple(range(2, out.ndim))).sum()) == h * w  # the rest is black padding
    left, right, top, bottom = px, s - w - px, py, s - h - py
    assert min(left, right, top, bottom) >= 0 and abs(left - right) <= 1 and abs(top - bottom) <= 1
    assert left <= right and top <= bottom  # the odd pixel of padding goes right / down, always the same way


ids = st.text(alphabet="0123456789abcdef", min_size=1, max_size=16)


@SETTINGS
@given(base=st.sets(ids, min_size=1, max_size=200), added=st.sets(ids, max_size=200), seed=st.integers(0, 10**6),
       fraction=st.floats(0.01, 0.99))  # fmt: skip
def test_adding_images_never_moves_an_image_to_the_other_side(base, added, seed, fraction):
    before = split_ids(base, fraction, seed)
    after = split_ids(base | added, fraction, seed)
    assert set(before["test"]) <= set(after["test"]) and set(before["train"]) <= set(after["train"])
    assert sorted(before["train"] + before["test"]) == sorted(base)


names = st.lists(st.sampled_from(["a", "b.png", "..", ".", "", "C:", "c:x", "\\", "/", "a..b", "~", " "]), min_size=1, max_size=8)


@SETTINGS
@given(parts=names, seps=st.lists(st.sampled_from(["/", "\\"]), min_size=8, max_size=8))
def test_an_archive_member_name_is_refused_or_stays_inside(parts, seps):
    name = "".join(p + s for p, s in zip(parts, seps))[:-1]
    try:
        check_member_name(name)
    except Rejected as e:
        assert e.reason == "unsafe_path"
        return
    # what an extractor on either system would do with it: backslashes are separators on Windows
    target = posixpath.normpath(posixpath.join("/root/out", name.replace("\\", "/")))
    assert target == "/root/out" or target.startswith("/root/out/"), (name, target)
    assert ":" not in name.replace("\\", "/").split("/")[0][1:2]  # no drive letter survives
