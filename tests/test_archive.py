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
    assert e.value.reason == "unreadable_archive" and "file could not be opened successfully" in e.value.detail


def test_read_caps_are_exact_and_stop_reading_one_byte_past_the_limit():
    from animegen.data.archive import CHUNK, _read_capped

    data = bytes(range(256)) * (CHUNK // 128)  # two chunks and more
    assert _read_capped(io.BytesIO(data), len(data)) == data  # exactly the limit is allowed
    with pytest.raises(Rejected, match=f"member expands past {len(data) - 1} bytes"):
        _read_capped(io.BytesIO(data), len(data) - 1)
    for limit in (10, CHUNK + 5):
        fh = io.BytesIO(b"\0" * (3 * CHUNK))
        with pytest.raises(Rejected):
            _read_capped(fh, limit)
        assert fh.tell() == limit + 1  # a bomb is never read further than one byte past the cap


def test_the_archive_budget_boundaries():
    """Totals up to the cap pass; a ratio above max_ratio stops the archive only past one chunk; every
    member after the budget ran out gets the same refusal."""
    from animegen.data.archive import CHUNK, ArchiveExhausted, _Budget

    b = _Budget(ArchiveCaps(max_entry_bytes=1000, max_total_bytes=100, max_ratio=1e9), archive_bytes=10)
    b.spend(30)
    assert b.remaining() == 70
    b.spend(70)  # exactly the total cap
    with pytest.raises(ArchiveExhausted, match="past 100 bytes in total"):
        b.spend(1)
    assert _Budget(ArchiveCaps(max_entry_bytes=50), 10).remaining() == 50
    b = _Budget(ArchiveCaps(max_ratio=1.0), archive_bytes=1)
    b.spend(CHUNK)  # ratio CHUNK, but not past one chunk yet
    with pytest.raises(ArchiveExhausted, match="max_ratio 1.0"):
        b.spend(1)
    b = _Budget(ArchiveCaps(max_ratio=2 * CHUNK / 1000), archive_bytes=1000)
    b.spend(2 * CHUNK)  # a ratio of exactly max_ratio passes
    b = _Budget(ArchiveCaps(max_ratio=0.75 * CHUNK), archive_bytes=1)
    with pytest.raises(ArchiveExhausted):
        b.spend(CHUNK + 1)  # an archive of 1 byte: the ratio is the total itself
    _Budget(ArchiveCaps(max_ratio=2000.0), archive_bytes=1000).spend(CHUNK + 1)  # 1049x < 2000x


def test_member_size_and_ratio_boundaries_in_zip_and_tar(tmp_path: Path):
    from animegen.data.archive import CHUNK

    stored = tmp_path / "stored.zip"  # ratio exactly 1.0, past one chunk
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("big.bin", b"\1" * (CHUNK + 10))
    assert outcomes(stored, ArchiveCaps(max_ratio=1.0, max_entry_bytes=CHUNK + 10)) == {"big.bin": "ok"}
    assert outcomes(stored, ArchiveCaps(max_ratio=1.0, max_entry_bytes=CHUNK + 9)) == {"big.bin": "zip_bomb"}
    for n in (1000, CHUNK):  # zeros deflate to little: a high ratio, but not past one chunk (the member's
        small = tmp_path / f"small{n}.zip"  # check and the archive's)
        with zipfile.ZipFile(small, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("zeros.bin", b"\0" * n)
        assert outcomes(small, ArchiveCaps(max_ratio=5.0)) == {"zeros.bin": "ok"}
    t = tmp_path / "sizes.tar"
    with tarfile.open(t, "w") as tf:
        for name, n in (("fits.bin", 100), ("over.bin", 101)):
            info = tarfile.TarInfo(name)
            info.size = n
            tf.addfile(info, io.BytesIO(b"\2" * n))
    assert outcomes(t, ArchiveCaps(max_entry_bytes=100)) == {"fits.bin": "ok", "over.bin": "zip_bomb"}


def test_after_the_budget_runs_out_every_later_member_gets_the_same_refusal(tmp_path: Path):
    """Half a chunk of zeros per member: the archive passes one chunk at the third member, at a ratio far
    above 100; that member and every later one get that one refusal, and nothing later is read.  (The
    total cap itself never runs out: each member is read only up to what is left of it.)"""
    from animegen.data.archive import CHUNK

    z = tmp_path / "zeros.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(5):
            zf.writestr(f"{i}.bin", b"\0" * (CHUNK // 2))
    got = list(iter_archive(z, ArchiveCaps(max_ratio=100.0)))
    assert [isinstance(r, bytes) for _, r in got] == [True, True, False, False, False]
    assert {r.reason for _, r in got[2:]} == {"zip_bomb"}
    details = {r.detail for _, r in got[2:]}
    assert len(details) == 1 and " > max_ratio 100.0" in details.pop()
    size = len(png(0))
    z = tmp_path / "many.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for i in range(3):
            zf.writestr(f"{i}.png", png(i))
    got = [r.detail if isinstance(r, Rejected) else "ok" for _, r in iter_archive(z, ArchiveCaps(max_total_bytes=int(size * 1.5)))]
    assert got == ["ok", f"member expands past {int(size * 1.5) - size} bytes", f"member expands past {int(size * 1.5) - size} bytes"]


def details(path, caps=ArchiveCaps()):
    return {name: (p.reason, p.detail) if isinstance(p, Rejected) else "ok" for name, p in iter_archive(path, caps)}


def test_every_refusal_says_why_in_its_detail(tmp_path: Path):
    """Each reject carries its reason and a detail a user can act on (the rejects.csv row)."""
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../x.png", png(1))
        zf.writestr("/y.png", png(1))
        link = zipfile.ZipInfo("link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("big.png", png(2))
    n = len(png(2))
    assert details(z, ArchiveCaps(max_entry_bytes=n - 1)) == {
        "../x.png": ("unsafe_path", "member name '../x.png' leaves the archive root"),
        "/y.png": ("unsafe_path", "absolute member name '/y.png'"),
        "link.png": ("archive_link", "symbolic link member"),
        "big.png": ("zip_bomb", f"declared size {n} > {n - 1}"),
    }
    t = tmp_path / "odd.tar"
    with tarfile.open(t, "w") as tf:
        dev = tarfile.TarInfo("dev")
        dev.type = tarfile.CHRTYPE
        tf.addfile(dev)
        big = tarfile.TarInfo("big.bin")
        big.size = 50
        tf.addfile(big, io.BytesIO(b"\1" * 50))
    assert details(t, ArchiveCaps(max_entry_bytes=49)) == {
        "dev": ("not_a_file", "special member (device, fifo)"), "big.bin": ("zip_bomb", "declared size 50 > 49")}
    r = details(tmp_path / "evil.zip", ArchiveCaps(max_entries=1))
    assert r["/y.png"] == ("zip_bomb", "more than 1 entries")


def test_a_truncated_tar_names_the_short_member_and_the_archive(tmp_path: Path):
    t = tmp_path / "cut.tar"
    with tarfile.open(t, "w") as tf:
        for name, data in (("a.bin", b"\1" * 1000), ("b.bin", b"\2" * 5000)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = t.read_bytes()
    t.write_bytes(raw[: 512 + 1024 + 512 + 2000])  # b.bin's header and 2000 of its 5000 bytes
    got = details(t)
    assert got == {"a.bin": "ok", "b.bin": ("corrupt_member", "unexpected end of data"),  # its data, then the next
                   "(archive)": ("corrupt_member", "unexpected end of data")}  # header cannot be read either
    gz = tmp_path / "cut.tar.gz"
    with tarfile.open(gz, "w:gz") as tf:
        for seed, name in enumerate(("a.bin", "b.bin")):
            data = np.random.default_rng(seed).bytes(20_000)  # incompressible: ~41 kB of gzip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    gz.write_bytes(gz.read_bytes()[:30_000])  # the stream ends inside b.bin
    got = details(gz)
    assert got["a.bin"] == "ok" and got["b.bin"][0] == "corrupt_member" and "end" in got["b.bin"][1]


def test_a_zip_whose_directory_is_broken_is_an_unreadable_archive(tmp_path: Path):
    z = tmp_path / "broken.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.png", png(1))
    raw = bytearray(z.read_bytes())
    cd = raw.rindex(b"PK\x01\x02")  # the central directory entry: its signature broken, the end record intact
    raw[cd : cd + 4] = b"XXXX"
    z.write_bytes(bytes(raw))
    assert zipfile.is_zipfile(z)
    with pytest.raises(Rejected) as e:
        list(iter_archive(z))
    assert e.value.reason == "unreadable_archive" and "Bad magic number for central directory" in e.value.detail
