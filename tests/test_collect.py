"""The collect stage on a mix of real sources: folder, zip, URL list on a local server, synthetic."""

from __future__ import annotations

import csv
import http.server
import io
import json
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import dump_yaml, load_yaml, without_study_c
from PIL import Image

from animegen.cli import main
from animegen.data.clean import DuplicateIndex, perceptual_hashes
from animegen.io import pixel_sha256
from animegen.recipes import NO_RECIPE


def picture(seed: int, size=(96, 80)) -> Image.Image:
    """A smooth random picture (blurred noise): realistic for perceptual hashes, many colours."""
    rng = np.random.default_rng(seed)
    small = rng.random((6, 6, 3)) * 255
    big = Image.fromarray(small.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(big).astype(np.int16) + rng.integers(-3, 4, (size[1], size[0], 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def encode(img, fmt, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802
        if self.path == "/broken":
            self.send_response(500)
            self.end_headers()
            return
        body = self.files.get(self.path)
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files = {"/u1.png": encode(picture(11), "PNG"), "/u2.jpg": encode(picture(12), "JPEG", quality=95)}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_collect_mixes_sources_with_provenance_and_named_rejects(workspace: Path, server: str):
    src = workspace / "data/sources/mix"
    (src / "folder/sub").mkdir(parents=True)
    picture(1).save(src / "folder/a.png")
    picture(1).save(src / "folder/sub/a_copy.bmp")  # same pixels, other container: exact duplicate
    picture(2).save(src / "folder/sub/b.jpg", quality=95)
    picture(2).resize((90, 75)).save(src / "folder/b_small.jpg", quality=70)  # near duplicate of b
    with zipfile.ZipFile(src / "pack.zip", "w") as zf:
        zf.writestr("z/c.png", encode(picture(3), "PNG"))
        zf.writestr("../evil.png", encode(picture(4), "PNG"))
    (src / "urls.csv").write_text(
        "url,license,credit\n"
        f"{server}/u1.png,CC-BY-4.0,Alice\n"
        f"{server}/missing.png,,\n"
        f"{server}/broken,,\n"
        "file:///etc/passwd,,\n"
        f"{server}/u2.jpg,CC0-1.0,Bob\n"
    )
    params = load_yaml(workspace / "params.yaml")
    params["models"], params["compare"]["pairs"] = {}, {}  # only the data stages here
    without_study_c(params)
    params["datasets"] = {"mix": {
        "sources": [
            {"type": "folder", "path": "folder", "license": "own work"},
            {"type": "archive", "path": "pack.zip"},
            {"type": "urls", "path": "urls.csv"},
            {"type": "synthetic", "kind": "face", "style": "b", "variant": "early", "n": 3, "seed": 9},
        ],
        "size": 32, "crop": "full", **NO_RECIPE,
    }}  # fmt: skip
    params["collect"]["urls"].update(allow_private=True, retries=1, backoff=0.0, timeout=5.0)
    dump_yaml(params, workspace / "params.yaml")

    assert main(["--params", str(workspace / "params.yaml"), "collect", "--dataset", "mix"]) == 0

    out = workspace / "data/raw/mix"
    kept = list(csv.DictReader(open(out / "manifest.csv")))
    rejects = {r["origin"]: r for r in csv.DictReader(open(out / "rejects.csv"))}
    by_origin = {r["origin"]: r for r in kept}
    # the first of a duplicate pair in source order is kept (folders are read in sorted path order)
    assert set(by_origin) == {"a.png", "b_small.jpg", "z/c.png", f"{server}/u1.png", f"{server}/u2.jpg",
                              "face-b-early-0000", "face-b-early-0001", "face-b-early-0002"}  # fmt: skip
    a = by_origin["a.png"]
    assert rejects["sub/a_copy.bmp"]["reason"] == f"duplicate_of:{a['id']}"
    assert rejects["sub/a_copy.bmp"]["detail"] == "exact"
    assert rejects["sub/b.jpg"]["reason"] == f"duplicate_of:{by_origin['b_small.jpg']['id']}"
    assert rejects["sub/b.jpg"]["detail"] == "near"
    assert rejects["../evil.png"]["reason"] == "unsafe_path"
    assert rejects[f"{server}/missing.png"]["reason"] == "http_404"
    assert rejects[f"{server}/broken"]["reason"] == "http_500"
    assert rejects["file:///etc/passwd"]["reason"] == "bad_scheme"
    # provenance: licence/credit from the URL list, from the folder spec, and from the generator
    assert (by_origin[f"{server}/u1.png"]["license"], by_origin[f"{server}/u1.png"]["credit"]) == ("CC-BY-4.0", "Alice")
    assert a["license"] == "own work" and a["source"] == "folder:folder"
    assert by_origin["face-b-early-0000"]["license"].startswith("CC0")
    assert json.loads(by_origin["face-b-early-0000"]["extra"])["parts"]["mouth"]
    # the stored image is the decoded one, and the manifest's hash is of its pixels
    img = Image.open(out / a["file"])
    assert pixel_sha256(img) == a["sha256"] and a["id"] == a["sha256"][:16]
    assert (int(a["original_width"]), int(a["original_height"]), a["original_mode"]) == (96, 80, "RGB")
    report = json.loads((out / "report.json").read_text())
    assert report["kept"] == len(kept) and report["rejected"] == len(rejects)
    assert report["rejects_by_reason"]["duplicate"] == 2


def collect_one_folder(workspace: Path, dataset: str) -> int:
    """Run collect on a params.yaml holding only ``dataset``, one folder source (its whole source folder)."""
    params = load_yaml(workspace / "params.yaml")
    params["models"], params["compare"]["pairs"] = {}, {}
    without_study_c(params)
    params["datasets"] = {dataset: {"sources": [{"type": "folder", "path": "."}], "size": 32, "crop": "full", **NO_RECIPE}}
    dump_yaml(params, workspace / "params.yaml")
    return main(["--params", str(workspace / "params.yaml"), "collect", "--dataset", dataset])


def test_collect_with_nothing_kept_fails_and_writes_nothing(workspace: Path, capsys):
    src = workspace / "data/sources/empty"
    src.mkdir(parents=True)
    (src / "junk.png").write_bytes(b"not an image")
    assert collect_one_folder(workspace, "empty") == 1
    err = capsys.readouterr().err
    assert "no image kept out of 1 inputs (rejects by reason: {'unreadable': 1}; first: junk.png: unreadable (" in err
    assert "all of them in logs/rejects/collect/empty.csv" in err and err.count("\n") == 1  # why, in one line
    with open(workspace / "logs/rejects/collect/empty.csv", newline="", encoding="utf-8") as f:
        assert [(r["origin"], r["reason"]) for r in csv.DictReader(f)] == [("junk.png", "unreadable")]
    assert not (workspace / "data/raw").exists() or not any((workspace / "data/raw").iterdir())


def test_near_duplicates_need_both_hashes_close():
    base = picture(5)
    recoloured = Image.fromarray(255 - np.asarray(base))  # same structure, other colours
    index = DuplicateIndex(phash_max_distance=64, colorhash_max_distance=0)
    index.add("base", pixel_sha256(base), perceptual_hashes(base))
    assert index.find(pixel_sha256(recoloured), perceptual_hashes(recoloured)) is None
    jpeg = Image.open(io.BytesIO(encode(base, "JPEG", quality=80)))
    strict = DuplicateIndex(phash_max_distance=6, colorhash_max_distance=4)
    strict.add("base", pixel_sha256(base), perceptual_hashes(base))
    assert strict.find(pixel_sha256(jpeg), perceptual_hashes(jpeg)) == ("base", "near")
    assert strict.find(pixel_sha256(picture(6)), perceptual_hashes(picture(6))) is None


@pytest.mark.timeout(120)  # a FIFO read would block forever, /dev/zero would fill the memory
def test_hostile_folder_entries_get_named_rejects_and_nothing_outside_is_read(workspace: Path, tmp_path: Path):
    import os

    src = workspace / "data/sources/hostile"
    (src / "sub").mkdir(parents=True)
    picture(1).save(src / "good.png")
    picture(2).save(src / "sub" / "nested.png")
    with open(os.open(bytes(src / "bad") + b"\xff.png", os.O_WRONLY | os.O_CREAT, 0o644), "wb") as f:
        f.write(encode(picture(3), "PNG"))  # a name that is not UTF-8
    os.mkfifo(src / "pipe.png")
    (src / "zero.png").symlink_to("/dev/zero")
    outside = tmp_path / "outside"
    outside.mkdir()
    picture(4).save(outside / "elsewhere.png")
    (src / "linked.png").symlink_to(outside / "elsewhere.png")
    (src / "linked_folder").symlink_to(outside, target_is_directory=True)
    assert collect_one_folder(workspace, "hostile") == 0
    raw = workspace / "data/raw/hostile"
    with open(raw / "manifest.csv", newline="", encoding="utf-8") as f:
        assert sorted(r["origin"] for r in csv.DictReader(f)) == ["good.png", "sub/nested.png"]
    with open(raw / "rejects.csv", newline="", encoding="utf-8") as f:
        rejects = {r["origin"]: (r["reason"], r["detail"]) for r in csv.DictReader(f)}
    assert {k: v[0] for k, v in rejects.items()} == {
        "bad\\xff.png": "bad_file_name", "pipe.png": "not_a_regular_file", "zero.png": "symlink",
        "linked.png": "symlink", "linked_folder": "symlink",
    }  # fmt: skip
    assert "/dev/zero" in rejects["zero.png"][1] and "symlinked folder" in rejects["linked_folder"][1]


def test_a_url_list_is_fetched_a_bounded_window_ahead(server: str, tmp_path: Path):
    """100,000 URLs must not all be downloaded before the first is used: at most 2 x workers in flight."""
    from animegen.data.collect import iter_url_list
    from animegen.data.fetch import FetchPolicy

    seen = []
    handler_get = _Handler.do_GET

    def counting_get(self):
        seen.append(self.path)
        handler_get(self)

    _Handler.do_GET = counting_get
    try:
        (tmp_path / "urls.txt").write_text("".join(f"{server}/u1.png?{i}\n" for i in range(40)))
        items = iter_url_list(tmp_path / "urls.txt", "urls:urls.txt", FetchPolicy(allow_private=True), workers=2)
        first = next(items)
        time.sleep(0.5)  # give any runaway prefetch the time to show
        assert first.origin.endswith("?0") and len(seen) <= 4, len(seen)
        assert len([first, *items]) == 40 and len(seen) == 40
    finally:
        _Handler.do_GET = handler_get
