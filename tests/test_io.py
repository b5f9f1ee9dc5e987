"""Safe ingestion: every bad file the tests can make gets a named outcome; writes are atomic."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animegen.data.clean import Filters, check_filters
from animegen.io import Rejected, atomic_dir, composite_on_black, decode_image, pixel_sha256, write_json_atomic


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise(w=64, h=48, seed=0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8))


def reason(data: bytes, **kw) -> str:
    with pytest.raises(Rejected) as e:
        decode_image(data, **kw)
    return e.value.reason


def test_zero_byte_file():
    assert reason(b"") == "empty_file"


def test_not_an_image_with_image_extension():
    assert reason(b"hello, this is text with a .png name\n") == "unreadable"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files(fmt):
    data = encode(noise(128, 128), fmt)
    assert decode_image(data).image.size == (128, 128)
    assert reason(data[: len(data) // 2]) == "truncated"


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header():
    # 100k x 100k declared in a file of a few dozen bytes: refused before any pixel is decoded
    data = _png_header_only(100_000, 100_000)
    assert len(data) < 200
    assert reason(data) == "decompression_bomb"
    # our own cap, far below Pillow's
    assert reason(encode(noise(300, 300), "PNG"), max_pixels=50_000) == "decompression_bomb"


def test_16bit_png_is_scaled_not_clipped():
    ramp = (np.arange(256 * 64, dtype=np.uint32).reshape(64, 256) * 4).astype(np.uint16)
    img = Image.fromarray(ramp)  # mode I;16
    assert img.mode.startswith("I;16")
    dec = decode_image(encode(img, "PNG"))
    arr = np.asarray(dec.image)
    assert dec.image.mode == "RGB" and "16bit_scaled" in dec.notes
    assert arr.max() <= 255 and arr.min() == 0
    assert (arr[..., 0] == 255).mean() < 0.05  # clipping would make most of the image white
    assert np.array_equal(arr[..., 0], (ramp >> 8).astype(np.uint8))


def test_palette_with_transparency_keeps_its_alpha():
    pal = Image.new("P", (64, 64), 0)
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.paste(1, (16, 16, 48, 48))
    pal.info["transparency"] = 0
    dec = decode_image(encode(pal, "PNG", transparency=0))
    assert dec.image.mode == "RGBA" and "palette_alpha" in dec.notes
    a = np.asarray(dec.image)[..., 3]
    assert a[0, 0] == 0 and a[32, 32] == 255
    # composited onto black, the transparent red becomes black
    assert composite_on_black(dec.image).getpixel((0, 0)) == (0, 0, 0)
    assert composite_on_black(dec.image).getpixel((32, 32)) == (0, 255, 0)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red in CMYK
    dec = decode_image(encode(cmyk, "JPEG"))
    assert dec.original_mode == "CMYK" and dec.image.mode == "RGB"
    r, g, b = dec.image.getpixel((32, 32))
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animated_images_take_the_first_frame(fmt):
    frames = [Image.new("RGB", (64, 64), c) for c in [(250, 10, 10), (10, 250, 10), (10, 10, 250)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    dec = decode_image(data)
    assert dec.n_frames == 3 and "first_frame_of_3" in dec.notes
    r, g, b = dec.image.convert("RGB").getpixel((32, 32))
    assert r > 200 and g < 60 and b < 60


def test_exif_rotated_jpeg_is_rotated_correctly():
    img = Image.new("RGB", (80, 40), (255, 255, 255))
    img.paste((255, 0, 0), (0, 0, 16, 16))  # red marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    dec = decode_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert dec.original_size == (80, 40)
    assert dec.image.size == (40, 80) and dec.exif_rotated and "exif_orientation_6" in dec.notes
    # after a 90 degree clockwise turn the stored top-left corner is displayed top-right
    r, g, b = dec.image.getpixel((36, 4))
    assert r > 200 and g < 80
    assert dec.image.getpixel((4, 4))[1] > 200


def test_huge_aspect_ratio_and_small_and_flat_images_are_filtered():
    f = Filters(min_side=32, max_aspect_ratio=4.0, min_colours=64)
    with pytest.raises(Rejected, match="extreme_aspect"):
        check_filters(noise(1000, 40), f)
    with pytest.raises(Rejected, match="too_small"):
        check_filters(noise(31, 64), f)
    with pytest.raises(Rejected, match="too_few_colours"):
        check_filters(Image.new("RGB", (64, 64), (9, 9, 9)), f)
    check_filters(noise(64, 64), f)


def test_filter_thresholds_accept_the_value_itself():
    """min_side, max_aspect_ratio and min_colours are inclusive limits: exactly at one passes, one past it fails."""
    f = Filters(min_side=32, max_aspect_ratio=4.0, min_colours=64)
    check_filters(noise(32, 128), f)  # shorter side exactly 32, ratio exactly 4.0
    with pytest.raises(Rejected, match="too_small"):
        check_filters(noise(31, 124), f)
    with pytest.raises(Rejected, match="extreme_aspect"):
        check_filters(noise(33, 133), f)  # ratio 4.03
    palette = np.arange(64 * 3, dtype=np.uint8).reshape(64, 1, 3)  # 64 distinct colours, one per row
    check_filters(Image.fromarray(np.repeat(palette, 64, axis=1)), f)
    with pytest.raises(Rejected, match="too_few_colours: 63 colours < 64"):
        check_filters(Image.fromarray(np.repeat(np.concatenate([palette[:63], palette[:1]]), 64, axis=1)), f)


@pytest.mark.parametrize("extra", [63, 64])
def test_the_colour_count_of_a_large_image_misses_no_rare_colour(extra: int):
    """A 400 x 400 image (160,000 pixels: the count samples 4096, then 65536 first) of one colour with
    ``extra`` other colours in single pixels the strided samples skip: the count still sees every
    one, and hidden RGBA colours (alpha 0) are not counted."""
    from animegen.data.clean import count_colours  # noqa: PLC0415

    arr = np.zeros((400, 400, 4), np.uint8)
    arr[..., 3] = 255
    for k in range(extra):
        arr[1 + 3 * k, 7, :3] = (k + 1, 200, 3)  # odd rows, column 7: never on a stride of 39 or 2
    arr[5, 5] = (9, 9, 9, 0)  # hidden
    img = Image.fromarray(arr, "RGBA")
    assert count_colours(img) == count_colours(img, enough=64) == extra + 1
    f = Filters(min_side=32, max_aspect_ratio=4.0, min_colours=extra + 1)
    check_filters(img, f)
    with pytest.raises(Rejected, match=f"too_few_colours: {extra + 1} colours < {extra + 2}"):
        check_filters(img, Filters(min_side=32, max_aspect_ratio=4.0, min_colours=extra + 2))
    noisy = noise(400, 400)  # a sample already has 64: the count may stop there, never under
    assert 64 <= count_colours(noisy, enough=64) <= count_colours(noisy) == len(np.unique(np.asarray(noisy).reshape(-1, 3), axis=0))


def test_opaque_alpha_is_dropped_and_pixel_hash_ignores_container():
    rgb = noise(64, 64)
    rgba = rgb.convert("RGBA")
    dec_png, dec_rgba, dec_bmp = decode_image(encode(rgb, "PNG")), decode_image(encode(rgba, "PNG")), decode_image(encode(rgb, "BMP"))
    assert dec_rgba.image.mode == "RGB"
    assert pixel_sha256(dec_png.image) == pixel_sha256(dec_rgba.image) == pixel_sha256(dec_bmp.image)


def test_atomic_dir_leaves_nothing_half_written(tmp_path: Path):
    out = tmp_path / "stage_out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("v1")
    assert (out / "a.txt").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "a.txt").write_text("v2-partial")
            (tmp / "b.txt").write_text("partial")
            raise RuntimeError("killed mid-stage")
    assert (out / "a.txt").read_text() == "v1" and not (out / "b.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage_out"]


def test_atomic_dir_cleans_stale_partials_from_a_killed_run(tmp_path: Path):
    stale = tmp_path / ".stage_out.abc123.partial"
    stale.mkdir()
    (stale / "junk").write_text("x")
    with atomic_dir(tmp_path / "stage_out") as tmp:
        (tmp / "ok").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage_out"]


def test_atomic_file_write(tmp_path: Path):
    write_json_atomic(tmp_path / "m.json", {"b": 1, "a": 2})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_composite_on_black_rounds_every_colour_and_alpha_pair():
    """Every (channel value, alpha) pair of 256 x 256 becomes round(c * a / 255), the premultiplied
    colour on black: (c * a + 127) // 255, computed here in plain integers."""
    c, a = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgba = np.stack([c, 255 - c, (c * 7) % 256, a], -1).astype(np.uint8)
    want = (rgba[..., :3].astype(np.int64) * a[..., None] + 127) // 255
    assert np.array_equal(np.asarray(composite_on_black(Image.fromarray(rgba, "RGBA"))), want)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_reading_our_own_pngs_gives_pillows_pixels(tmp_path: Path, mode: str):
    """The stages' reader (OpenCV's libpng for an 8-bit PNG stored in the asked mode, Pillow for the
    rest) returns exactly ``Image.open(...).convert(mode)``, what pytorch-fid decodes, for files it
    takes either way: stored in the mode (plain and interlaced), in another mode (RGBA, palette,
    grey, 16-bit grey) and with an EXIF orientation that neither applies."""
    from animegen.io import encode_png, read_image_array  # noqa: PLC0415

    rgb = np.asarray(noise(40, 24, seed=3))
    images = {
        "rgb": encode_png(rgb), "grey": encode_png(rgb[..., 0]), "rgba": encode_png(np.dstack([rgb, rgb[..., 1]])),
        "palette": encode(noise(40, 24).convert("P"), "PNG"), "interlaced_rgb": encode(Image.fromarray(rgb), "PNG", interlace=1),
        "grey16": encode(Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)), "PNG"),
        "exif": encode(Image.fromarray(rgb), "PNG", exif=_exif_orientation(6)),
    }  # fmt: skip
    for name, data in images.items():
        path = tmp_path / f"{name}.png"
        path.write_bytes(data)
        want = np.asarray(Image.open(path).convert(mode))
        got = read_image_array(path, mode)
        assert got.dtype == np.uint8 and got.shape == want.shape and np.array_equal(got, want), name


def test_a_truncated_or_corrupt_own_png_is_unreadable(tmp_path: Path):
    from animegen.io import encode_png, read_image_array  # noqa: PLC0415

    data = encode_png(np.asarray(noise(64, 64)))
    for name, broken in {"truncated": data[: len(data) // 2], "not_png": b"hello", "empty": b""}.items():
        (tmp_path / name).write_bytes(broken)
        with pytest.raises(Rejected) as e:
            read_image_array(tmp_path / name)
        assert e.value.reason == "unreadable", name
    with pytest.raises(Rejected, match="missing"):
        read_image_array(tmp_path / "missing.png")


def _exif_orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()
