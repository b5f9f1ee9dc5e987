"""Safe image decoding, atomic writes and manifests: the one place every stage reads and writes.

Decoding turns untrusted bytes into a normalised Pillow image (mode ``RGB`` or ``RGBA``) or raises
:class:`Rejected` with a named reason.  The reasons are part of the project's vocabulary and appear in
every ``rejects.csv``:

``empty_file``           zero bytes
``unreadable``           not an image Pillow can identify (e.g. text with a ``.png`` name)
``truncated``            header readable, pixel data incomplete or corrupt
``decompression_bomb``   width * height above our own pixel cap (checked from the header, before decoding)

Normalisation, each recorded in :class:`DecodedImage` so nothing happens silently:
EXIF orientation applied; first frame of animations taken (``n_frames`` kept); 16-bit greyscale scaled
to 8 bits instead of clipped; palette images with transparency and LA images become RGBA; CMYK and
other modes become RGB; an alpha channel that is fully opaque is dropped.

Atomic writes: every output file or directory is first written under a temporary name in the same
folder and then renamed into place, so an interrupted stage never leaves a partial output that a later
run (or the other orchestrator) would trust.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Never let Pillow fill in missing data: a truncated file must be a named reject.
ImageFile.LOAD_TRUNCATED_IMAGES = False

DEFAULT_MAX_PIXELS = 40_000_000


class Rejected(Exception):
    """An input refused with a named reason (written to ``rejects.csv``, never raised to the user)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # pickled between a data stage's worker processes with both fields intact
        return (Rejected, (self.reason, self.detail))


@dataclass
class DecodedImage:
    image: Image.Image  # mode RGB or RGBA, 8 bits per channel
    original_mode: str
    original_size: tuple[int, int]  # (width, height) as stored, before EXIF rotation
    format: str
    n_frames: int = 1
    exif_rotated: bool = False
    notes: str = ""  # semicolon-separated normalisation notes, e.g. "16bit_scaled;palette_alpha"


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode untrusted image bytes; raise :class:`Rejected` with a named reason on failure."""
    if not data:
        raise Rejected("empty_file")
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns between 1x and 2x its cap; we use our own cap below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise Rejected("decompression_bomb", str(e)) from None
    except UnidentifiedImageError:
        raise Rejected("unreadable", "not a recognised image format") from None
    except (OSError, SyntaxError, ValueError) as e:  # corrupt headers
        raise Rejected("unreadable", str(e)) from None

    w, h = img.size
    if w <= 0 or h <= 0:
        raise Rejected("unreadable", f"invalid size {w}x{h}")
    if w * h > max_pixels:
        raise Rejected("decompression_bomb", f"{w}x{h} = {w * h} pixels > cap {max_pixels}")

    fmt = img.format or "unknown"
    original_mode = img.mode
    n_frames = int(getattr(img, "n_frames", 1) or 1)
    notes: list[str] = []
    try:
        if n_frames > 1:
            img.seek(0)
            notes.append(f"first_frame_of_{n_frames}")
        img.load()
        orientation = _orientation(img)
        exif_rotated = orientation not in (None, 1)
        img = ImageOps.exif_transpose(img)
        img = _normalise_mode(img, notes)
    except Image.DecompressionBombError as e:
        raise Rejected("decompression_bomb", str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise Rejected("truncated", str(e)) from None
    if exif_rotated:
        notes.append(f"exif_orientation_{orientation}")
    return DecodedImage(
        image=img,
        original_mode=original_mode,
        original_size=(w, h),
        format=fmt,
        n_frames=n_frames,
        exif_rotated=exif_rotated,
        notes=";".join(notes),
    )


def _orientation(img: Image.Image) -> int | None:
    try:
        return img.getexif().get(0x0112)
    except Exception:  # noqa: BLE001 - malformed EXIF is treated as "no orientation"
        return None


def _normalise_mode(img: Image.Image, notes: list[str]) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's convert('L') clips values above 255 (a 16-bit image turns white): scale instead.
        arr = np.asarray(img, dtype=np.uint32)
        if mode == "I" and arr.max() <= 255:
            arr8 = arr.astype(np.uint8)
        else:
            arr8 = (arr >> 8).astype(np.uint8)
        notes.append("16bit_scaled")
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        notes.append("float_scaled")
        return Image.fromarray(scaled.round().astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        if "transparency" in img.info:
            notes.append("palette_alpha")
            img = img.convert("RGBA")
        else:
            return img.convert("RGB")
    elif mode in ("LA", "La", "PA", "RGBa"):
        img = img.convert("RGBA")
    elif mode == "CMYK":
        notes.append("cmyk_converted")
        return img.convert("RGB")
    elif mode == "RGBA":
        pass
    elif mode != "RGB":
        if "transparency" in img.info:
            img = img.convert("RGBA")
        else:
            return img.convert("RGB")
    if img.mode == "RGBA":
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() == 255:
            notes.append("opaque_alpha_dropped")
            return img.convert("RGB")
    return img


def pixel_sha256(img: Image.Image) -> str:
    """SHA-256 of the decoded pixels (mode, size and bytes): identical pictures in any container match."""
    h = hashlib.sha256()
    h.update(f"{img.mode}:{img.width}x{img.height}:".encode())
    h.update(img.tobytes())
    return h.hexdigest()


def composite_on_black(img: Image.Image) -> Image.Image:
    """RGB image with transparent parts black (alpha-weighted), the project's background convention."""
    if img.mode != "RGBA":
        return img.convert("RGB")
    import cv2  # noqa: PLC0415 - only stages that composite images pay for it

    # round(c * a / 255) per channel: OpenCV's scaled multiply equals (c * a + 127) // 255 for every one
    # of the 65536 (c, a) pairs (tested), ~6x faster than the same in numpy's uint16
    r, g, b, a = cv2.split(np.asarray(img))
    return Image.fromarray(cv2.merge([cv2.multiply(c, a, scale=1 / 255) for c in (r, g, b)]), "RGB")


def read_image_file(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a file from disk (the same checks as :func:`decode_image`)."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise Rejected("unreadable", str(e)) from None
    return decode_image(data, max_pixels=max_pixels)


# PNG colour type (IHDR byte 25) that holds exactly the pixels of a mode, at bit depth 8 (byte 24)
_PNG_COLOUR_TYPE = {"RGB": 2, "L": 0}


def read_image_array(path: str | os.PathLike, mode: str = "RGB") -> np.ndarray:
    """A pipeline-made image (one of our own PNGs) as a uint8 array in ``mode`` (``RGB`` or ``L``).

    The pixels equal pytorch-fid's decoding (``Image.open(...).convert(mode)``), so features computed
    from these arrays equal the tool's.  An 8-bit PNG already stored in ``mode`` (what the stages
    write) is decoded by OpenCV's libpng, about 1.3x faster than Pillow's decoder for a 1000 px RGB
    image and 1.1x for a mask (BENCHMARKS.md): PNG is lossless and no conversion is involved, so the pixels are the same (tested);
    anything else, or a file OpenCV refuses, goes through Pillow.  Untrusted inputs go through
    :func:`read_image_file` instead.  Raises :class:`Rejected` (``unreadable``) when the file cannot be
    decoded.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise Rejected("unreadable", f"{Path(path).name}: {e}") from None
    if mode in _PNG_COLOUR_TYPE and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and data[24:26] == bytes((8, _PNG_COLOUR_TYPE[mode])):
        import cv2  # noqa: PLC0415 - only stages that read images pay for it

        flag = (cv2.IMREAD_COLOR if mode == "RGB" else cv2.IMREAD_GRAYSCALE) | cv2.IMREAD_IGNORE_ORIENTATION
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        if arr is not None:
            return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if mode == "RGB" else arr
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert(mode), dtype=np.uint8)
    except (OSError, ValueError, UnidentifiedImageError) as e:
        raise Rejected("unreadable", f"{Path(path).name}: {e}") from None


# --------------------------------------------------------------------------------------- atomic writes


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700 entries; give outputs the modes a plain open() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _publish_mode(tmp_path, directory=False)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file, read in chunks (checkpoints and weights are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def save_torch_atomic(path: str | os.PathLike, obj) -> str:
    """``torch.save`` atomically and byte-reproducibly; returns the file's SHA-256.

    Saving to a file directly would record the (random) temporary name inside the archive, so two saves
    of the same tensors would differ in bytes (and in DVC's hash); saving to memory records "archive".
    """
    import torch  # noqa: PLC0415 - the data stages never need torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getvalue()
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it into place only when complete.

    Stale temporary directories from an interrupted earlier run are removed first, so a rerun restarts
    cleanly.  The old directory (if any) is replaced as a whole: no mix of old and new files survives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists() or path.is_symlink():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def save_png(img: Image.Image, path: str | os.PathLike, compress_level: int = 6) -> None:
    """Write a PNG (inside an :func:`atomic_dir` the directory swap makes it atomic).

    Intermediate stages pass ``compress_level=1``: 3-4x faster to encode for ~20% more bytes.
    """
    img.save(path, format="PNG", compress_level=compress_level)


def encode_png(image, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 array ((H, W) grey, (H, W, 3) RGB, (H, W, 4) RGBA) or a Pillow image.

    Encoded by OpenCV's libpng with one fixed row filter (Up) and run-length deflate instead of
    Pillow's per-row adaptive choice: the same pixels (PNG is lossless; Pillow and pytorch-fid decode
    them identically), files within a few per cent of the size, and about 1.8x faster to write (9 vs
    16 ms for a 1000 px image at level 1, BENCHMARKS.md).  The bytes depend only on the pixels and the level, so a stage's
    outputs stay byte-identical across runs and worker counts.  Other Pillow modes go through Pillow.
    """
    import cv2  # here, not at the top: most stages never write an image

    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB", "RGBA"):
            buf = io.BytesIO()
            image.save(buf, format="PNG", compress_level=compress_level)
            return buf.getvalue()
        image = np.asarray(image)
    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"encode_png: a uint8 (H, W), (H, W, 3) or (H, W, 4) array, got {arr.dtype} {arr.shape}")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    flags = [cv2.IMWRITE_PNG_COMPRESSION, compress_level, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP,
             cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    ok, buf = cv2.imencode(".png", arr, flags)
    if not ok:  # pragma: no cover - libpng refuses only impossible arrays, checked above
        raise ValueError("encode_png: OpenCV could not encode the image")
    return buf.tobytes()


# --------------------------------------------------------------------------------------- CSV manifests


def write_csv(path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[Mapping]) -> None:
    """Write rows to CSV atomically; unknown keys are an error (a manifest column is a contract)."""
    with atomic_path(path) as tmp:
        with CsvRows(tmp, fieldnames) as out:
            for row in rows:
                out.write(row)


class CsvRows:
    """A CSV file written row by row (a manifest streamed as a stage goes); the same format and the
    same unknown-key check as :func:`write_csv`.  Not atomic by itself: write it inside an
    :func:`atomic_dir` or :func:`atomic_path`."""

    def __init__(self, path: str | os.PathLike, fieldnames: Sequence[str]):
        self._file = open(path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=list(fieldnames), extrasaction="raise")
        self._writer.writeheader()

    def write(self, row: Mapping) -> None:
        self._writer.writerow({k: _csv_value(v) for k, v in row.items()})

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "CsvRows":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _csv_value(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return v


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
