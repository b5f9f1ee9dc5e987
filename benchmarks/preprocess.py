"""Preprocessing throughput: our collect -> cutout -> resize stages vs a plain sequential Pillow loop.

Both run in this process, one after the other, on the same inputs:

* ``demo``:  the demo generator's face icons (~110-180 px, a mix of opaque and RGBA), as a folder of PNGs;
* ``large``: the same kind of icons upscaled to 640-1024 px and saved as PNG and JPEG (what a user's
  collection looks like), generated here.

The anchor is the loop people write first: ``Image.open`` -> ``exif_transpose`` -> composite onto black
-> ``ImageOps.pad`` to a black square -> Lanczos resize -> save PNG.  It does none of our checks
(truncation, bombs, 16-bit, duplicates, provenance) and no background separation, so we report our
collect + resize (the comparable work) and our cutout (extra work) separately.

Usage: python benchmarks/preprocess.py [--n-demo 200] [--n-large 200] [--demo-size 32] [--size 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from animegen.config import parse_yaml, validate
from animegen.data import synthetic
from animegen.recipes import NO_RECIPE
from animegen.stages import collect, cutout, resize

REPO = Path(__file__).resolve().parents[1]


def make_inputs(folder: Path, n: int, scale_to: tuple[int, int] | None, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    per = max(1, n // 4)
    i = 0
    for style in ("a", "b"):
        for variant in ("early", "later"):
            for s in synthetic.generate("face", style, variant, per, seed):
                img = s.image
                if scale_to:
                    side = int(rng.integers(*scale_to))
                    img = img.resize((side, round(side * img.height / img.width)), Image.Resampling.LANCZOS)
                if scale_to and img.mode == "RGB" and i % 2:
                    img.save(folder / f"{i:05d}.jpg", quality=92)
                else:
                    img.save(folder / f"{i:05d}.png")
                i += 1


def anchor(folder: Path, out: Path, size: int) -> int:
    out.mkdir(parents=True)
    n = 0
    for path in sorted(folder.iterdir()):
        img = ImageOps.exif_transpose(Image.open(path))
        if img.mode == "RGBA":
            black = Image.new("RGBA", img.size, (0, 0, 0, 255))
            img = Image.alpha_composite(black, img)
        img = ImageOps.pad(img.convert("RGB"), (size, size), Image.Resampling.LANCZOS, color=(0, 0, 0))
        img.save(out / f"{path.stem}.png")
        n += 1
    return n


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def bench(name: str, n: int, scale_to, size: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root / "data/sources" / name / "in", n, scale_to, seed)
        params = parse_yaml((REPO / "params.yaml").read_text())
        params["datasets"] = {name: {"sources": [{"type": "folder", "path": "in"}], "size": size, "crop": "full", **NO_RECIPE}}
        params.update(models={}, cam_classifier={}, cam_select={}, translators={})  # nothing else refers to the demo's datasets
        params["survey"]["models"] = []
        params["compare"]["pairs"] = {}
        params["collect"]["max_pixels"] = 40_000_000
        validate(params, root)
        n_in, t_anchor = timed(lambda: anchor(root / "data/sources" / name / "in", root / "anchor", size))
        rep_c, t_collect = timed(lambda: collect.run(params, name, root))
        rep_cut, t_cutout = timed(lambda: cutout.run(params, name, root))
        rep_r, t_resize = timed(lambda: resize.run(params, name, root))
    ours_comparable = t_collect + t_resize
    return {
        "set": name, "inputs": n_in, "kept": rep_r["kept"],
        "anchor_img_s": n_in / t_anchor, "collect_img_s": n_in / t_collect, "cutout_img_s": rep_c["kept"] / t_cutout,
        "resize_img_s": rep_cut["kept"] / t_resize, "collect+resize_img_s": n_in / ours_comparable,
        "all_img_s": n_in / (ours_comparable + t_cutout),
        "ratio_collect+resize_vs_anchor": t_anchor / ours_comparable,
        "ratio_all_vs_anchor": t_anchor / (ours_comparable + t_cutout),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-demo", type=int, default=200)
    ap.add_argument("--n-large", type=int, default=200)
    ap.add_argument("--demo-size", type=int, default=32, help="model size for the demo icons (the demo profile's)")
    ap.add_argument("--size", type=int, default=128, help="model size for the large images")
    args = ap.parse_args()
    rows = [bench("demo", args.n_demo, None, args.demo_size, 1), bench("large", args.n_large, (640, 1024), args.size, 2)]
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
    print("\nratio = anchor seconds / our seconds (above 1: we are faster; below 1: the price of our checks)")


if __name__ == "__main__":
    main()
