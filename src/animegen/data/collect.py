"""Gather raw images from a mix of sources into one clean, deduplicated, provenance-tracked set.

Sources (each yields :class:`RawItem`, in a deterministic order):

* ``folder``    a local folder, recursively, files in sorted path order (hidden files skipped;
                files with a non-image extension are recorded as ``not_an_image_file``; symlinks
                inside it, FIFOs, devices and non-UTF-8 names are rejects, see :func:`iter_folder`)
* ``archive``   a zip or tar(.gz/.bz2/.xz) archive, read member by member without extraction
                (see :mod:`animegen.data.archive` for the caps and reasons)
* ``urls``      a URL list (CSV with a ``url`` column and optional licence/credit, or plain text),
                fetched with :mod:`animegen.data.fetch` (SSRF guard, caps, retries)
* ``synthetic`` the built-in demo generator (:mod:`animegen.data.synthetic`)

:func:`collect_items` decodes every item with the one safe reader, applies the noise filters, drops
exact and near duplicates of images already kept, and yields either a kept image with its manifest
row or a reject row with a named reason.  Nothing is silently dropped.
"""

from __future__ import annotations

import io
import os
import stat
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Iterable, Iterator

from animegen.data import synthetic
from animegen.data.archive import ArchiveCaps, iter_archive
from animegen.data.clean import DuplicateIndex, Filters, Hashes, check_filters, perceptual_hashes
from animegen.data.fetch import FetchError, FetchPolicy, fetch, read_url_list
from animegen.io import DecodedImage, Rejected, decode_image, encode_png, pixel_sha256
from animegen.parallel import OrderedPool

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}

MANIFEST_COLUMNS = [
    "id", "file", "source", "origin", "license", "credit", "sha256", "width", "height",
    "original_width", "original_height", "original_mode", "format", "n_frames", "notes",
    "phash", "colorhash", "extra",
]  # fmt: skip
REJECT_COLUMNS = ["source", "origin", "reason", "detail"]


@dataclass
class RawItem:
    source: str  # e.g. "folder:photos", "archive:pack.zip", "urls:list.csv", "synthetic:face-a-early"
    origin: str  # path inside the source, archive member, URL or generator name
    data: bytes | None = None
    rejected: Rejected | None = None
    license: str = ""
    credit: str = ""
    extra: dict = field(default_factory=dict)


def _printable(rel: str) -> str:
    """A path as text that can be written anywhere: bytes that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def iter_folder(root: Path, label: str, license: str = "", credit: str = "") -> Iterator[RawItem]:
    """Every entry under ``root`` (which may itself be a symlink), in sorted path order; hidden entries
    skipped.  Only regular files are read.  Never silently dropped, each recorded as a reject:
    a symlink (``symlink``: not followed, file or folder, so nothing outside the source folder is
    read and no link loops), anything else that is not a regular file or a folder (``not_a_regular_file``:
    a FIFO would block, a device never ends), a name that is not valid UTF-8 (``bad_file_name``).
    """
    entries = []  # (path, kind)
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        links = sorted(d for d in dirnames if not d.startswith(".") and (here / d).is_symlink())
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in links)
        entries += [(here / d, "dir_link") for d in links]
        entries += [(here / f, "file") for f in filenames if not f.startswith(".")]
    for path, kind in sorted(entries):
        rel = path.relative_to(root).as_posix()
        shown = _printable(rel)
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # os.walk keeps undecodable bytes as surrogates: no CSV could hold them
            yield RawItem(label, shown, rejected=Rejected("bad_file_name", "the file name is not valid UTF-8; rename it"))
            continue
        if path.is_symlink():
            target = _printable(os.readlink(path))
            what = "folder" if kind == "dir_link" else "file"
            yield RawItem(label, rel, rejected=Rejected(
                "symlink", f"a symlinked {what} ({target}) is not followed; copy it in, or link the whole source folder"))
            continue
        try:
            st = path.lstat()
        except OSError as e:
            yield RawItem(label, rel, rejected=Rejected("unreadable", str(e)))
            continue
        if not stat.S_ISREG(st.st_mode):
            yield RawItem(label, rel, rejected=Rejected("not_a_regular_file", "a FIFO, socket or device file is never read"))
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            rej = Rejected("not_an_image_file", f"extension {path.suffix or '(none)'!r}")
            yield RawItem(label, rel, rejected=rej)
            continue
        try:
            with open(path, "rb", opener=_no_follow) as f:
                data = f.read()
        except OSError as e:
            yield RawItem(label, rel, rejected=Rejected("unreadable", str(e)))
            continue
        yield RawItem(label, rel, data=data, license=license, credit=credit)


def _no_follow(path, flags):
    """Open without following a symlink put in place since the check (and without blocking on a FIFO)."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


def iter_archive_source(path: Path, label: str, caps: ArchiveCaps, license: str = "", credit: str = ""):
    try:
        for name, payload in iter_archive(path, caps):
            if isinstance(payload, Rejected):
                yield RawItem(label, name, rejected=payload)
            elif Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                yield RawItem(label, name, rejected=Rejected("not_an_image_file", f"member {name!r}"))
            else:
                yield RawItem(label, name, data=payload, license=license, credit=credit)
    except Rejected as r:  # the archive itself is unreadable: one row, not a crash
        yield RawItem(label, "(archive)", rejected=r)


def iter_url_list(path: Path, label: str, policy: FetchPolicy, workers: int, license: str = "", credit: str = ""):
    entries = read_url_list(path)

    def get(entry):
        try:
            return fetch(entry.url, policy), None
        except FetchError as e:
            return None, Rejected(e.reason, e.detail)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        # at most 2 x workers downloads held at once (Executor.map would fetch the whole list ahead)
        pending: deque = deque()
        for entry in entries:
            pending.append((entry, pool.submit(get, entry)))
            if len(pending) >= 2 * workers:
                yield _fetched(*pending.popleft(), label, license, credit)
        while pending:
            yield _fetched(*pending.popleft(), label, license, credit)


def _fetched(entry, future, label: str, license: str, credit: str) -> RawItem:
    data, rej = future.result()
    return RawItem(label, entry.url, data=data, rejected=rej,
                   license=entry.license or license, credit=entry.credit or credit)  # fmt: skip


def iter_synthetic(
    kind: str, style: str, variant: str, n: int, seed: int, parts_clarity: float | None = None, hazard: str | None = None
) -> Iterator[RawItem]:
    label = f"synthetic:{kind}-{style}-{variant}" + (f"-{hazard}" if hazard else "")
    for s in synthetic.generate(kind, style, variant, n, seed, parts_clarity, hazard):
        buf = io.BytesIO()
        s.image.save(buf, format="PNG", compress_level=1)
        extra = {"parts": s.parts, "background": s.background, "clarity": round(float(s.clarity), 4)}
        yield RawItem(label, s.name, data=buf.getvalue(), license="CC0-1.0 (animegen synthetic)",
                      credit="animegen demo generator", extra=extra)  # fmt: skip


@dataclass
class Kept:
    data: bytes  # the file to write at ``row["file"]``: the input's own PNG or JPEG bytes, or a PNG (level 1)
    row: dict


@dataclass
class Decoded:
    """What a worker sends back for an item that decoded and passed the filters (no pixels: the file)."""

    data: bytes
    ext: str  # "png" or "jpg": the kept file's format
    sha: str
    hashes: Hashes
    size: tuple[int, int]  # (width, height) after EXIF rotation
    dec: DecodedImage  # its ``image`` dropped (None): the file carries the pixels


def prepare(item: RawItem, filters: Filters, max_pixels: int) -> tuple[RawItem, Decoded | Rejected]:
    """The per-image work of collect, independent of every other image (so it runs in a worker):
    decode once with the one safe reader, the noise filters, the pixel SHA-256, the perceptual hashes
    and the file to keep (:func:`kept_file`).  Returns the item without its bytes, and the result or
    the reason."""
    meta = replace(item, data=None)
    if item.rejected is not None:
        return meta, item.rejected
    try:
        dec = decode_image(item.data, max_pixels=max_pixels)
        check_filters(dec.image, filters)
    except Rejected as r:
        return meta, r
    img = dec.image
    data, ext = kept_file(item.data, dec)
    return meta, Decoded(data, ext, pixel_sha256(img), perceptual_hashes(img), img.size, replace(dec, image=None))


def kept_file(data: bytes, dec: DecodedImage) -> tuple[bytes, str]:
    """The file collect keeps for an input and its extension: the input's own bytes when they already
    decode to exactly the kept pixels (never re-encoded), else a PNG of the pixels.

    * a PNG: one frame, 8-bit RGB or RGBA as stored, no EXIF rotation, no normalisation (``notes``
      empty).  Any PNG reader decodes those bytes to these pixels.
    * a JPEG (not MPO): one frame, RGB (YCbCr) as stored, no EXIF rotation.  A JPEG decoder may round
      differently from Pillow's libjpeg-turbo, so the manifest's ``sha256`` of the pixels is what
      ``cutout`` checks after its own decoding.  Keeping the JPEG avoids a PNG encoding of ~15-20 ms
      per 1000 px photo and a file several times the JPEG's size in ``data/raw`` and DVC's cache.
    """
    plain = dec.n_frames == 1 and not dec.notes and dec.original_mode == dec.image.mode  # notes name an EXIF rotation too
    if plain and dec.format == "PNG" and dec.image.mode in ("RGB", "RGBA"):
        return data, "png"
    if plain and dec.format == "JPEG" and dec.image.mode == "RGB":
        return data, "jpg"
    return encode_png(dec.image, 1), "png"


def collect_items(
    items: Iterable[RawItem], filters: Filters, index: DuplicateIndex, max_pixels: int, pool: OrderedPool | None = None
) -> Iterator[Kept | dict]:
    """Yield :class:`Kept` for each accepted image and a reject row (dict) for everything else, in the
    items' order.  The per-image work (:func:`prepare`) runs on ``pool``'s workers; the duplicate
    check, which depends on every image kept before, runs here in order, so the result is the same
    for any worker count."""
    work = partial(prepare, filters=filters, max_pixels=max_pixels)
    results = pool.map(work, items) if pool is not None else map(work, items)
    for item, out in results:
        if isinstance(out, Rejected):
            yield _reject_row(item, out)
            continue
        dup = index.find(out.sha, out.hashes)
        if dup is not None:
            yield _reject_row(item, Rejected(f"duplicate_of:{dup[0]}", dup[1]))
            continue
        image_id = out.sha[:16]
        index.add(image_id, out.sha, out.hashes)
        yield Kept(out.data, _manifest_row(image_id, item, out))


def _reject_row(item: RawItem, r: Rejected) -> dict:
    return {"source": item.source, "origin": item.origin, "reason": r.reason, "detail": r.detail}


def _manifest_row(image_id: str, item: RawItem, out: Decoded) -> dict:
    dec, hashes = out.dec, out.hashes
    return {
        "id": image_id,
        "file": f"images/{image_id}.{out.ext}",
        "source": item.source,
        "origin": item.origin,
        "license": item.license,
        "credit": item.credit,
        "sha256": out.sha,
        "width": out.size[0],
        "height": out.size[1],
        "original_width": dec.original_size[0],
        "original_height": dec.original_size[1],
        "original_mode": dec.original_mode,
        "format": dec.format,
        "n_frames": dec.n_frames,
        "notes": dec.notes,
        "phash": hashes.phash,
        "colorhash": hashes.colorhash,
        "extra": item.extra,
    }
