"""Archives are read member by member: traversal names, links and bombs are refused, nothing is extracted."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animegen.data.archive import ArchiveCaps, iter_archive
from animegen.io import Rejected


def png(seed=0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(seed).random((64, 64, 3)) * 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def outcomes(path, caps=ArchiveCaps()):
    return {name: (p.reason if isinstance(p, Rejected) else "ok") for name, p in iter_archive(path, caps)}


def snapshot(root: Path):
    return sorted(str(p) for p in root.rglob("*"))


def test_zip_traversal_absolute_and_symlink_members(tmp_path: Path):
    z = tmp_path / "in" / "evil.zip"
    z.parent.mkdir()
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("good/a.png", png(1))
        zf.writestr("../../escape.png", png(2))
        zf.writestr("/abs/b.png", png(3))
        zf.writestr("c:/win.png", png(4))
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    before = snapshot(tmp_path)
    got = outcomes(z)
    assert got == {"good/a.png": "ok", "../../escape.png": "unsafe_path", "/abs/b.png": "unsafe_path",
                   "c:/win.png": "unsafe_path", "link.png": "archive_link"}  # fmt: skip
    assert snapshot(tmp_path) == before  # nothing written anywhere


@pytest.mark.parametrize("name, reason", [
    ("..\\..\\evil.png", "unsafe_path"),          # Windows separators
    ("good/..\\..\\evil.png", "unsafe_path"),      # mixed separators
    ("C:\\Windows\\evil.png", "unsafe_path"),      # drive letter
    ("c:evil.png", "unsafe_path"),                  # drive-relative
    ("\\\\server\\share\\evil.png", "unsafe_path"),  # UNC path
    ("\\evil.png", "unsafe_path"),                 # rooted with a backslash
    ("dir\\sub\\ok.png", "ok"),                   # a Windows zip's ordinary folder
    ("a..b.png", "ok"),                             # dots inside a name are no traversal
])  # fmt: skip
def test_windows_style_member_names_never_escape(tmp_path: Path, name, reason):
    for kind in ("zip", "tar"):
        path = tmp_path / f"names.{kind}"
        if kind == "zip":
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(zipfile.ZipInfo(name), png(1))  # ZipInfo keeps the name as written
        else:
            with tarfile.open(path, "w") as tf:
                data = png(1)
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        assert outcomes(path) == {name: reason}, kind


def test_tar_traversal_symlink_hardlink_and_device(tmp_path: Path):
    t = tmp_path / "evil.tar.gz"
    with tarfile.open(t, "w:gz") as tf:
        for name, data in [("ok.png", png(1)), ("../up.png", png(2)), ("/abs.png", png(3))]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, kind in [("sym.png", tarfile.SYMTYPE), ("hard.png", tarfile.LNKTYPE), ("dev", tarfile.CHRTYPE)]:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    assert outcomes(t) == {"ok.png": "ok", "../up.png": "unsafe_path", "/abs.png": "unsafe_path",
                           "sym.png": "archive_link", "hard.png": "archive_link", "dev": "not_a_file"}  # fmt: skip


def test_zip_bomb_ratio_and_entry_caps(tmp_path: Path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.png", png(1))
        zf.writestr("zeros.png", b"\0" * 20_000_000)  # ~20 kB compressed, ratio ~1000
    got = outcomes(z, ArchiveCaps(max_ratio=100.0))
    assert got == {"a.png": "ok", "zeros.png": "zip_bomb"}
    got = outcomes(z, ArchiveCaps(max_entry_bytes=1_000_000, max_ratio=10_000.0))
    assert got["zeros.png"] == "zip_bomb"


def test_total_budget_refuses_the_rest_of_the_archive(tmp_path: Path):
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(6):
            zf.writestr(f"{i}.png", png(i))
    size = len(png(0))
    got = outcomes(z, ArchiveCaps(max_total_bytes=int(size * 2.5)))
    assert list(got.values()) == ["ok", "ok", "zip_bomb", "zip_bomb", "zip_bomb", "zip_bomb"]
    got = outcomes(z, ArchiveCaps(max_entries=3))
    assert list(got.values()) == ["ok", "ok", "ok", "zip_bomb", "zip_bomb", "zip_bomb"]


def test_lying_size_header_is_a_corrupt_member(tmp_path: Path):
    z = tmp_path / "lying.zip"
    data = png(1)
    with zipfile.ZipFile(z, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("x.png", data)
    raw = bytearray(z.read_bytes())
    raw[raw.index(data) + 100] ^= 0xFF  # corrupt the payload: CRC mismatch
    z.write_bytes(bytes(raw))
    assert outcomes(z) == {"x.png": "corrupt_member"}


def test_not_an_archive(tmp_path: Path):
    f = tmp_path / "fake.zip"
    f.write_bytes(b"definitely not an archive")
    with pytest.raises(Rejected) as e:
        list(iter_archive(f))
    assert e.value.reason == "unreadable_archive"
