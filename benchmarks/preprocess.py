"""Preprocessing throughput: our collect -> cutout -> resize stages vs a plain sequential Pillow loop.

Both run in this process, one after the other, on the same inputs:

* ``demo``:  the demo generator's face icons (~110-180 px, a mix of opaque and RGBA), as a folder of PNGs;
* ``large``: the same kind of icons upscaled to 640-1024 px and saved as PNG and JPEG (what a user's
  collection looks like), generated here.

The anchor is the loop people write first: ``Image.open`` -> ``exif_transpose`` -> composite onto black
-> ``ImageOps.pad`` to a black square -> Lanczos resize -> save PNG.  It does none of our checks
(truncation, bombs, 16-bit, duplicates, provenance) and no background separation, so we report our
collect + resize (the comparable work) and our cutout (extra work) separately.

Our stages run over ``--workers`` processes (0, the default: every CPU this process may use, as the
stages' ``workers: 0``); the anchor is one process, as people write it.  ``--sequential`` adds our stages
with one worker, so the scaling shows in the same run.

``--scale N`` adds the 10,000-image case (issue 13): N demo-sized icons in a folder source of a fresh
workspace (the real Snakefile, dvc.yaml and params.yaml, one dataset), run by ``snakemake`` through
collect, cutout and resize, with each stage's seconds and images/s (from its run record) and the peak
memory of the whole process tree (Snakemake, the stage and its workers; sampled every 0.1 s), then
``dvc commit`` of the result and how long ``snakemake -n`` and ``dvc status`` take on it.

Usage: python benchmarks/preprocess.py [--n-demo 200] [--n-large 200] [--demo-size 32] [--size 128]
                                       [--workers 0] [--sequential] [--scale 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from animegen.config import parse_yaml, validate
from animegen.data import synthetic
from animegen.parallel import resolve_workers
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


def one_dataset(params: dict, name: str, size: int) -> dict:
    """``params`` with one dataset (a folder source ``in``) and nothing else that refers to datasets."""
    params["datasets"] = {name: {"sources": [{"type": "folder", "path": "in"}], "size": size, "crop": "full", **NO_RECIPE}}
    params.update(models={}, cam_classifier={}, cam_select={}, translators={})
    params["survey"]["models"] = []
    params["derive"].update(edge_smooth=[], faces={})
    params["compare"]["pairs"] = {}
    params["collect"]["max_pixels"] = 40_000_000
    return params


def bench(name: str, n: int, scale_to, size: int, seed: int, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root / "data/sources" / name / "in", n, scale_to, seed)
        params = one_dataset(parse_yaml((REPO / "params.yaml").read_text()), name, size)
        validate(params, root)
        n_in, t_anchor = timed(lambda: anchor(root / "data/sources" / name / "in", root / "anchor", size))
        rep_c, t_collect = timed(lambda: collect.run(params, name, root, workers=workers))
        rep_cut, t_cutout = timed(lambda: cutout.run(params, name, root, workers=workers))
        rep_r, t_resize = timed(lambda: resize.run(params, name, root, workers=workers))
    ours_comparable = t_collect + t_resize
    return {
        "set": name, "inputs": n_in, "kept": rep_r["kept"], "workers": workers,
        "anchor_img_s": n_in / t_anchor, "collect_img_s": n_in / t_collect, "cutout_img_s": rep_c["kept"] / t_cutout,
        "resize_img_s": rep_cut["kept"] / t_resize, "collect+resize_img_s": n_in / ours_comparable,
        "all_img_s": n_in / (ours_comparable + t_cutout),
        "ratio_collect+resize_vs_anchor": t_anchor / ours_comparable,
        "ratio_all_vs_anchor": t_anchor / (ours_comparable + t_cutout),
    }  # fmt: skip


WORKSPACE = ["Snakefile", "dvc.yaml", ".dvcignore", "workflow", "src", "data/survey_answers", "data/translations/.gitkeep",
             "metrics/models/.gitkeep", "metrics/compare/.gitkeep", "metrics/translation/.gitkeep"]  # fmt: skip


def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_peak(cmd: list[str], cwd: Path) -> tuple[float, int]:
    """Run ``cmd``; its wall seconds and the peak RSS (bytes) of its whole process tree."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - t0, peak[0]


def scale_case(n: int, size: int, workers: int) -> list[dict]:
    """N demo-sized icons through the real Snakefile, then `dvc commit`, `snakemake -n`, `dvc status`."""
    bin_dir = Path(sys.executable).parent
    env_path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ["PATH"] = env_path  # snakemake's jobs call `animegen`
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        for rel in WORKSPACE:
            src, dst = REPO / rel, ws / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy2(src, dst)
        (ws / ".dvc").mkdir()
        shutil.copy2(REPO / ".dvc/config", ws / ".dvc/config")
        t0 = time.perf_counter()
        make_inputs(ws / "data/sources/big/in", n, None, 3)
        t_make = time.perf_counter() - t0
        params = one_dataset(parse_yaml((REPO / "params.yaml").read_text()), "big", size)
        params["collect"]["workers"] = params["cutout"]["workers"] = params["resize"]["workers"] = workers
        (ws / "params.yaml").write_text(json.dumps(params, indent=1))  # JSON is YAML: both tools read it
        validate(params, ws)
        subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
        cores = str(resolve_workers(workers))
        seconds, peak = run_peak([str(bin_dir / "snakemake"), "--cores", cores, "data/processed/big"], ws)
        n_in = sum(1 for _ in (ws / "data/sources/big/in").iterdir())
        for stage in ("collect", "cutout", "resize"):
            record = json.loads((ws / f"logs/runs/{stage}/big.json").read_text())
            rows.append({"what": f"{stage} ({n_in} images, {cores} workers)", "seconds": record["seconds"],
                         "images/s": n_in / record["seconds"], "peak MiB": None})  # fmt: skip
        rows.append({"what": "snakemake: the three stages", "seconds": seconds, "images/s": n_in / seconds, "peak MiB": peak / 2**20})
        dvc = str(bin_dir / "dvc")
        commit, peak = run_peak([dvc, "commit", "-f", "-q", "collect@big", "cutout@big", "resize@big"], ws)
        rows.append({"what": "dvc commit of the three outputs", "seconds": commit, "images/s": None, "peak MiB": peak / 2**20})
        for label, cmd in (("snakemake -n", [str(bin_dir / "snakemake"), "-n", "--cores", cores, "data/processed/big"]),
                           ("dvc status (first)", [dvc, "status", "resize@big"]), ("dvc status (again)", [dvc, "status", "resize@big"])):  # fmt: skip
            t, peak = run_peak(cmd, ws)
            rows.append({"what": label, "seconds": t, "images/s": None, "peak MiB": peak / 2**20})
        rows.insert(0, {"what": f"making the {n_in} inputs (not a stage)", "seconds": t_make, "images/s": None, "peak MiB": None})
    return rows


def table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v) for v in r.values()) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-demo", type=int, default=200)
    ap.add_argument("--n-large", type=int, default=200)
    ap.add_argument("--demo-size", type=int, default=32, help="model size for the demo icons (the demo profile's)")
    ap.add_argument("--size", type=int, default=128, help="model size for the large images")
    ap.add_argument("--workers", type=int, default=0, help="our stages' processes (0: every available CPU)")
    ap.add_argument("--sequential", action="store_true", help="also run our stages with one worker")
    ap.add_argument("--scale", type=int, default=0, help="the N-image case through Snakemake and DVC (issue 13: 10000)")
    args = ap.parse_args()
    workers = resolve_workers(args.workers)
    counts = [workers, 1] if args.sequential and workers > 1 else [workers]
    rows = [bench(name, n, scale, size, seed, w)
            for name, n, scale, size, seed in (("demo", args.n_demo, None, args.demo_size, 1), ("large", args.n_large, (640, 1024), args.size, 2))
            for w in counts]  # fmt: skip
    table(rows)
    print("\nratio = anchor seconds / our seconds (above 1: we are faster; below 1: the price of our checks)")
    if args.scale:
        print()
        table(scale_case(args.scale, args.demo_size, args.workers))


if __name__ == "__main__":
    main()
