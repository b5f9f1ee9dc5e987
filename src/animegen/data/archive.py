"""Read images out of zip and tar archives without extracting anything to disk.

Members are read one at a time into memory under caps, so nothing can be written outside a target
folder (there is none) and bombs are stopped before they cost memory.  Every refused member yields a
:class:`~animegen.io.Rejected` with a named reason instead of bytes:

``unsafe_path``      absolute name, drive letter or a ``..`` component
``archive_link``     symbolic or hard link member
``not_a_file``       device, fifo or other special member
``zip_bomb``         declared or actual size over ``max_entry_bytes``; compression ratio over
                     ``max_ratio``; running total over ``max_total_bytes``; more than ``max_entries``
``corrupt_member``   CRC or stream error while reading the member (e.g. a lying size header)

A file that is not a readable archive at all raises ``Rejected("unreadable_archive")``.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

from animegen.io import Rejected

CHUNK = 1 << 20


@dataclass(frozen=True)
class ArchiveCaps:
    max_entries: int = 100_000
    max_entry_bytes: int = 100_000_000
    max_total_bytes: int = 4_000_000_000
    max_ratio: float = 200.0


def check_member_name(name: str) -> None:
    """Refuse names that would escape a target folder if anyone extracted them."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise Rejected("unsafe_path", f"absolute member name {name!r}")
    if ".." in PurePosixPath(norm).parts:
        raise Rejected("unsafe_path", f"member name {name!r} leaves the archive root")


def _read_capped(fh: IO[bytes], limit: int) -> bytes:
    buf = bytearray()
    while True:
        chunk = fh.read(min(CHUNK, limit + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise Rejected("zip_bomb", f"member expands past {limit} bytes")


class ArchiveExhausted(Rejected):
    """The archive as a whole is over budget: this member and every later one are refused."""


class _Budget:
    def __init__(self, caps: ArchiveCaps, archive_bytes: int):
        self.caps = caps
        self.archive_bytes = max(archive_bytes, 1)
        self.entries = 0
        self.total = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.caps.max_entries:
            raise ArchiveExhausted("zip_bomb", f"more than {self.caps.max_entries} entries")

    def remaining(self) -> int:
        return min(self.caps.max_entry_bytes, self.caps.max_total_bytes - self.total)

    def spend(self, n: int) -> None:
        self.total += n
        if self.total > self.caps.max_total_bytes:
            raise ArchiveExhausted("zip_bomb", f"archive expands past {self.caps.max_total_bytes} bytes in total")
        ratio = self.total / self.archive_bytes
        if ratio > self.caps.max_ratio and self.total > CHUNK:
            raise ArchiveExhausted("zip_bomb", f"archive expands {ratio:.0f}x > max_ratio {self.caps.max_ratio}")


def iter_archive(path: str | Path, caps: ArchiveCaps = ArchiveCaps()) -> Iterator[tuple[str, bytes | Rejected]]:
    """Yield ``(member_name, bytes or Rejected)`` for every file member, in archive order."""
    path = Path(path)
    budget = _Budget(caps, path.stat().st_size)
    if zipfile.is_zipfile(path):
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise Rejected("unreadable_archive", str(e)) from None
        with zf:
            yield from _guarded(((i.filename, i) for i in zf.infolist() if not i.is_dir()),
                                lambda info: _read_zip_member(zf, info, budget), budget)
        return
    try:
        tf = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise Rejected("unreadable_archive", str(e)) from None
    with tf:
        yield from _guarded(_tar_members(tf), lambda m: _read_tar_member(tf, m, budget), budget)


def _guarded(members, read, budget: _Budget):
    """Apply the budget and the name check to each member; turn every refusal into a named reject."""
    exhausted: Rejected | None = None
    for name, member in members:
        if isinstance(member, Rejected):
            yield name, member
            continue
        if exhausted is not None:
            yield name, exhausted
            continue
        try:
            budget.entry()
            check_member_name(name)
            data = read(member)
            budget.spend(len(data))
        except ArchiveExhausted as r:
            exhausted = r
            yield name, r
            continue
        except Rejected as r:
            yield name, r
            continue
        yield name, data


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    caps = budget.caps
    if stat.S_ISLNK(info.external_attr >> 16):
        raise Rejected("archive_link", "symbolic link member")
    if info.file_size > caps.max_entry_bytes:
        raise Rejected("zip_bomb", f"declared size {info.file_size} > {caps.max_entry_bytes}")
    ratio = info.file_size / max(info.compress_size, 1)
    if ratio > caps.max_ratio and info.file_size > CHUNK:
        raise Rejected("zip_bomb", f"compression ratio {ratio:.0f} > {caps.max_ratio}")
    try:
        with zf.open(info) as fh:
            return _read_capped(fh, budget.remaining())
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as e:
        raise Rejected("corrupt_member", str(e)) from None


def _tar_members(tf: tarfile.TarFile):
    while True:
        try:
            member = tf.next()
        except (tarfile.TarError, OSError, EOFError) as e:
            yield "(archive)", Rejected("corrupt_member", str(e))
            return
        if member is None:
            return
        if not member.isdir():
            yield member.name, member


def _read_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, budget: _Budget) -> bytes:
    if member.issym() or member.islnk():
        raise Rejected("archive_link", f"link to {member.linkname!r}")
    if not member.isfile():
        raise Rejected("not_a_file", "special member (device, fifo)")
    if member.size > budget.caps.max_entry_bytes:
        raise Rejected("zip_bomb", f"declared size {member.size} > {budget.caps.max_entry_bytes}")
    try:
        data = _read_capped(tf.extractfile(member), budget.remaining())
    except (tarfile.TarError, OSError, EOFError) as e:
        raise Rejected("corrupt_member", str(e)) from None
    if len(data) != member.size:
        raise Rejected("corrupt_member", f"read {len(data)} of {member.size} bytes")
    return data
