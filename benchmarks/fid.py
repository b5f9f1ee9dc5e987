"""FID wall time: `python -m pytorch_fid GEN REF` vs our metrics library, on the same folders and weights.

Study A scores every model as 1024 generated images against the same 158 training images.  pytorch-fid's
CLI recomputes the reference features for every model and evaluates the matrix square root with
``scipy.linalg.sqrtm``; our path computes the reference statistics once (the reference stage's folder,
written and read by :mod:`animegen.artifacts.reference`, checked against the weights' SHA-256), then per
model only the generated features and an eigenvalue-based Frechet distance, with the stages' feature
extractor (:class:`animegen.metrics.extractor.InferenceInception`: BatchNorm folded into the convolutions,
channels-last, decoding overlapped with the network).  The folders are ``--gen`` and ``--ref`` (real
images, e.g. 256 px anime face crops), or, without them, folders this script generates deterministically
at ``--size`` px (discs on flat backgrounds = "generated", colour gradients with discs = "reference").
It times, in one session:

* ``pytorch_fid``: ``python -m pytorch_fid GEN REF`` as a subprocess (its own data-loader workers unless
  ``--num-workers``), with ``TORCH_HOME`` pointing at a temporary folder whose
  ``hub/checkpoints/pt_inception-2015-12-05-6726825d.pth`` is our weights file, so both sides use the same
  network; the cost of starting Python and importing torch + pytorch-fid is measured separately and shown;
* ours, cold (first model): load the network, reference features -> statistics (written as the reference
  stage writes them), generated features -> FID;
* ours, warm (second model): load the network, reference statistics read back, generated features -> FID;
  also shown: the exact low-rank FID from the cached reference features (``fid_from_features``);
* the network alone on ``--n-plain`` generated images: pytorch-fid's plain forward vs ours (largest
  feature difference), and the roofline: GFLOP per image of the forward at 299 px (``torch.utils.
  flop_counter``), images/s, achieved GFLOP/s, and their share of the machine's peak measured in the
  same process (the faster of a float32 matmul and a 3 x 3 convolution);
* on CUDA, each reduced precision (``tf32``, ``bf16``): its time and its FID difference to fp32.

It prints wall times, ratios (pytorch_fid / ours; above 1 means faster) and |FID_ours - FID_pytorch_fid|.

A second table times the Frechet distance alone, per scored set, on Gaussian features of the real
dimension (2048) against a full-rank reference (``--frechet-ref`` vectors, default 4000) and a
rank-deficient one (``--n-ref`` vectors): pytorch-fid's ``calculate_frechet_distance`` (scipy sqrtm),
the general-eigensolver form this library used before issue 17 (torch-fidelity's), and ours
(:class:`~animegen.metrics.fid.FrechetReference`: the reference prepared once, then per set either the
statistics or, for ``--n-gen`` < rank, the feature form), with the largest relative difference.
Times are reported, never asserted.

Usage: python benchmarks/fid.py [--gen DIR --ref DIR | --n-gen 1024 --n-ref 158 --size 32]
                                [--batch-size 50] [--our-batch-size auto] [--device cpu] [--num-workers N] [--n-plain 128]
                                [--cache-dir DIR] [--weights FILE]
                                [--frechet-dim 2048] [--frechet-ref 4000] [--points 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animegen.artifacts.reference import read_reference, write_reference
from animegen.metrics import features as feat
from animegen.metrics import fid as fidm
from animegen.metrics import inception as inc
from animegen.metrics.extractor import Extractor, InferenceInception, auto_batch_size


def synthetic_images(n: int, size: int, seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        if kind == "reference":
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            t = (xx / (size - 1))[..., None]
            img = a * (1 - t) + b * t
        else:
            img = np.broadcast_to(rng.integers(0, 256, 3).astype(np.float64), (size, size, 3)).copy()
        cx, cy = rng.uniform(0.25, 0.75, 2) * size
        r = rng.uniform(0.12, 0.35) * size
        inside = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
        img = np.where(inside, rng.integers(0, 256, 3), img) + rng.normal(0, 10, (size, size, 3))
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out


def write_folder(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for i, a in enumerate(images):
        Image.fromarray(a).save(folder / f"{i:05d}.png", compress_level=1)


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def run_pytorch_fid(gen: Path, ref: Path, torch_home: Path, args) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "pytorch_fid", str(gen), str(ref), "--device", args.device,
           "--batch-size", str(args.batch_size)]
    if args.num_workers is not None:
        cmd += ["--num-workers", str(args.num_workers)]
    env = {**os.environ, "TORCH_HOME": str(torch_home)}
    proc, seconds = timed(lambda: subprocess.run(cmd, env=env, capture_output=True, text=True))
    if proc.returncode != 0:
        sys.exit(f"pytorch_fid failed:\n{proc.stderr[-3000:]}")
    match = re.search(r"FID:\s+(\S+)", proc.stdout)
    if not match:
        sys.exit(f"no FID in pytorch_fid output:\n{proc.stdout}")
    return float(match.group(1)), seconds


def startup_seconds() -> float:
    cmd = [sys.executable, "-c", "import torch, torchvision, scipy.linalg, pytorch_fid.fid_score"]
    return timed(lambda: subprocess.run(cmd, check=True, capture_output=True))[1]


def reference_stats(extractor: Extractor, ref_paths, folder: Path):
    """The reference statistics as the pipeline keeps them: read back when the folder exists, else
    computed and written (the reference stage's work, once per dataset)."""
    if folder.is_dir():
        return read_reference(folder, extractor.weights.sha256), True
    features = extractor.features(ref_paths)
    folder.mkdir(parents=True)
    info = {"weights": extractor.weights.provenance(), "ids": [p.stem for p in ref_paths],
            "sets": {"train": {"n_images": len(ref_paths), "floor": None}}}  # fmt: skip
    write_reference(folder, features, {"train": feat.feature_statistics(features)}, info)
    return read_reference(folder, extractor.weights.sha256), False


def load(weights, args, precision: str = "fp32") -> Extractor:
    """The stages' extractor (:func:`animegen.metrics.extractor.load_extractor` minus params.yaml)."""
    net = InferenceInception(inc.load_inception(weights, args.device), precision)
    device = torch.device(args.device)
    return Extractor(net, weights, device, auto_batch_size(args.our_batch_size, device))


def our_run(weights, gen_paths, ref_paths, stats_path: Path, args, precision: str = "fp32") -> dict:
    extractor, t_load = timed(lambda: load(weights, args, precision))
    (ref_stats, reused), t_ref = timed(lambda: reference_stats(extractor, ref_paths, stats_path))
    gen_features, t_gen = timed(lambda: extractor.features(gen_paths))
    value, t_fd = timed(lambda: ref_stats.frechet.distance_to_features(gen_features))
    lowrank, t_lr = timed(lambda: fidm.fid_from_features(gen_features, ref_stats.features))
    return {"load": t_load, "ref": t_ref, "reused": reused, "gen": t_gen, "frechet": t_fd,
            "total": t_load + t_ref + t_gen + t_fd, "fid": value, "lowrank": lowrank, "t_lowrank": t_lr}


def _best_rate(fn, flop: float) -> float:
    fn()
    return flop / min(timed(fn)[1] for _ in range(3)) / 1e9


def measured_peak(device: torch.device) -> dict:
    """The machine's float32 rate, measured (best of 3): an n x n x n matmul (MKL or cuBLAS) and a
    channels-last 3 x 3 convolution (oneDNN or cuDNN) of 256 channels at 64 x 64; the roofline's peak is
    the larger.  Both matter on a CPU: MKL's sgemm runs far below the AVX-512 peak on some AMD CPUs,
    where oneDNN's convolutions do not."""
    n = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    x = torch.randn(8, 256, 64, 64, device=device).contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last)
    with feat.full_fp32(), torch.no_grad():
        matmul = _best_rate(lambda: (a @ b).sum().item(), 2 * n**3)
        convolution = _best_rate(lambda: conv(x).sum().item(), 2 * 8 * 64 * 64 * 256 * 256 * 9)
    return {"matmul": matmul, "conv": convolution, "peak": max(matmul, convolution)}


def network_table(weights, gen_paths, args) -> None:
    """pytorch-fid's plain forward vs ours on the same images, and the roofline of ours."""
    from torch.utils.flop_counter import FlopCounterMode

    device = torch.device(args.device)
    images = feat.read_images(gen_paths[: args.n_plain])
    plain = inc.load_inception(weights, device)
    ours = load(weights, args)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        plain(torch.rand(1, 3, 299, 299, device=device))
    gflop = counter.get_total_flops() / 1e9
    rows = []
    for _ in range(2):  # alternating, best of 2: the cores are shared
        for name, net, batch in (("plain", plain, args.batch_size), ("ours", ours.net, ours.batch_size)):
            f, t = timed(lambda: feat.image_features(net, images, batch_size=batch, device=device))
            rows.append((name, f, t))
    best = {name: min(t for n, _, t in rows if n == name) for name in ("plain", "ours")}
    diff = float(np.abs(rows[0][1] - rows[1][1]).max())
    rates = measured_peak(device)
    peak = rates["peak"]
    n = len(images)
    print(f"\nThe network alone: {n} images of {images.shape[1]} px, batch {args.batch_size} (plain, pytorch-fid's) "
          f"and {ours.batch_size} (ours), best of 2 (seconds)")
    print("| network | seconds | images/s | achieved GFLOP/s | share of measured fp32 peak | plain / ours |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("plain", "ours"):
        rate = n / best[name]
        print(f"| {'pytorch-fid InceptionV3 (plain)' if name == 'plain' else 'ours (BN folded, channels-last)'} "
              f"| {best[name]:.2f} | {rate:.2f} | {rate * gflop:.1f} | {rate * gflop / peak:.1%} "
              f"| {best['plain'] / best[name]:.2f} |")
    print(f"Inception forward at 299 px: {gflop:.2f} GFLOP per image (flop counter, a multiply-add = 2); measured "
          f"fp32 peak {peak:.0f} GFLOP/s (matmul {rates['matmul']:.0f}, 3x3 convolution {rates['conv']:.0f}); "
          f"largest |feature difference| ours vs plain: {diff:.1e}")


def precision_table(weights, gen_paths, ref_paths, root: Path, args, fp32_fid: float, fp32_gen: float) -> None:
    """On CUDA: each reduced precision's generated-features time and FID difference to fp32."""
    if torch.device(args.device).type != "cuda":
        print("\nReduced precision (tf32, bf16): not measured, no CUDA device (fp32 only on the CPU).")
        return
    print("\n| precision | generated features s | fp32 / this | FID | FID - FID fp32 |\n|---|---:|---:|---:|---:|")
    for precision in ("tf32", "bf16"):
        run = our_run(weights, gen_paths, ref_paths, root / f"reference-{precision}", args, precision)
        print(f"| {precision} | {run['gen']:.2f} | {fp32_gen / run['gen']:.2f} | {run['fid']:.4f} | {run['fid'] - fp32_fid:+.2e} |")


def general_eigensolver_fid(mu1, s1, mu2, s2) -> float:
    """The Frechet distance as this library computed it before issue 17 (as torch-fidelity does)."""
    lam = np.linalg.eigvals(s1 @ s2)
    tol = lam.size * np.finfo(np.float64).eps * np.abs(lam).max()
    tr_sqrt = np.sqrt(np.where(lam.real > tol, lam.real, 0.0)).sum()
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def _mean_seconds(rows) -> float:
    return sum(t for _, t in rows) / len(rows)


def frechet_table(args) -> None:
    """Per-set Frechet cost against one reference: pytorch-fid vs the old form vs FrechetReference."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(args.seed)
    d = args.frechet_dim
    mix = np.eye(d) + rng.normal(0, 0.5 / np.sqrt(d), (d, d))
    sets = [np.abs(rng.normal(0.3 + 0.05 * i, 1.0, (args.n_gen, d)) @ mix) for i in range(args.points)]
    stats = [feat.feature_statistics(f) for f in sets]
    print(f"\nFrechet distance alone: {args.points} sets of {args.n_gen} x {d} features, per set (seconds)")
    header = ["reference", "pytorch_fid", "old (eigvals)", "ours: prepare once", "ours: per set (stats)",
              "ours: per set (features)", "old / ours (stats)", "old / ours (features)", "max rel. diff"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for n_ref in (args.frechet_ref, args.n_ref):
        ref = feat.feature_statistics(np.abs(rng.normal(0.3, 1.0, (n_ref, d)) @ mix))
        pf = [timed(lambda: calculate_frechet_distance(*st, *ref)) for st in stats]
        old = [timed(lambda: general_eigensolver_fid(*st, *ref)) for st in stats]
        prepared, t_prep = timed(lambda: fidm.FrechetReference(*ref))
        by_stats = [timed(lambda: prepared.distance(*st)) for st in stats]
        by_feats = [timed(lambda: prepared.distance_to_features(f)) for f in sets]
        diff = max(abs(a[0] - b[0]) / abs(b[0]) for rows in (pf, by_stats, by_feats) for a, b in zip(rows, old))
        print(f"| {n_ref} vectors (rank {prepared.factor.shape[0]}) | {_mean_seconds(pf):.3f} | {_mean_seconds(old):.3f} | {t_prep:.3f} "
              f"| {_mean_seconds(by_stats):.3f} | {_mean_seconds(by_feats):.3f} | {_mean_seconds(old) / _mean_seconds(by_stats):.1f} "
              f"| {_mean_seconds(old) / _mean_seconds(by_feats):.1f} | {diff:.1e} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-gen", type=int, default=1024)
    ap.add_argument("--n-ref", type=int, default=158)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=50, help="pytorch_fid's batch size (its default: 50)")
    ap.add_argument("--our-batch-size", default="auto", help="ours: a number or auto (inception.batch_size)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--num-workers", type=int, default=None, help="pytorch_fid's data-loader workers (default: its own)")
    ap.add_argument("--gen", type=Path, default=None, help="a folder of generated images (real images; with --ref)")
    ap.add_argument("--ref", type=Path, default=None, help="a folder of reference images (with --gen)")
    ap.add_argument("--n-plain", type=int, default=128, help="images of the plain-vs-ours network table")
    ap.add_argument("--cache-dir", type=Path, default=None, help="converted-weights cache (default $ANIMEGEN_CACHE "
                                                                 "or ~/.cache/animegen)")
    ap.add_argument("--weights", default=None, help="explicit weights file (else resolved as the library does)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frechet-dim", type=int, default=inc.FEATURE_DIM, help="feature dimension of the Frechet table")
    ap.add_argument("--frechet-ref", type=int, default=4000, help="vectors of the full-rank reference")
    ap.add_argument("--points", type=int, default=3, help="sets scored per reference in the Frechet table")
    args = ap.parse_args(argv)

    if (args.gen is None) != (args.ref is None):
        sys.exit("--gen and --ref go together")
    weights = inc.resolve_weights(args.weights, cache_dir=args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.gen is None:
            gen_dir, ref_dir = root / "gen", root / "ref"
            write_folder(gen_dir, synthetic_images(args.n_gen, args.size, args.seed, "generated"))
            write_folder(ref_dir, synthetic_images(args.n_ref, args.size, args.seed + 1, "reference"))
        else:
            gen_dir, ref_dir = args.gen, args.ref
        torch_home = root / "torch_home"
        (torch_home / "hub" / "checkpoints").mkdir(parents=True)
        os.symlink(weights.path, torch_home / "hub" / "checkpoints" / inc.PYTORCH_FID_FILENAME)
        gen_paths, ref_paths = feat.list_images(gen_dir), feat.list_images(ref_dir)
        args.n_gen, args.n_ref = len(gen_paths), len(ref_paths)
        size = "x".join(map(str, Image.open(gen_paths[0]).size))
        stats_path = root / "reference"

        startup = startup_seconds()
        fid_pf, t_pf = run_pytorch_fid(gen_dir, ref_dir, torch_home, args)
        first = our_run(weights, gen_paths, ref_paths, stats_path, args)
        second = our_run(weights, gen_paths, ref_paths, stats_path, args)
        assert not first["reused"] and second["reused"]

        print(f"FID benchmark: {args.n_gen} generated vs {args.n_ref} reference images at {size} px "
              f"({'from ' + str(gen_dir) if args.gen else 'synthetic PNGs'}); device {args.device}; batch "
              f"{args.batch_size} (pytorch_fid) and {args.our_batch_size} (ours); torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"{platform.processor() or platform.machine()}")
        print(f"weights: {weights.origin} sha256 {weights.sha256[:16]}... (the same file for both)\n")
        rows = [
            ("python -m pytorch_fid GEN REF (subprocess)", t_pf, ""),
            ("  of which: python start + imports (measured alone)", startup, ""),
            ("ours cold (first model): load network", first["load"], ""),
            ("ours cold (first model): reference features -> stats (cached)", first["ref"], ""),
            ("ours cold (first model): generated features", first["gen"], ""),
            ("ours cold (first model): Frechet distance", first["frechet"], ""),
            ("ours cold (first model): total (in-process, no startup)", first["total"], f"{t_pf / first['total']:.2f}"),
            ("ours cold + python start-up", first["total"] + startup, f"{t_pf / (first['total'] + startup):.2f}"),
            ("ours warm (second model): load network", second["load"], ""),
            ("ours warm (second model): reference stats from cache", second["ref"], ""),
            ("ours warm (second model): generated features + Frechet", second["gen"] + second["frechet"], ""),
            ("ours warm (second model): total (in-process, no startup)", second["total"], f"{t_pf / second['total']:.2f}"),
            ("ours warm + python start-up", second["total"] + startup,
             f"{t_pf / (second['total'] + startup):.2f}"),
            ("(alternative: exact low-rank FID from cached features)", second["t_lowrank"], ""),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'step':<{width}}  {'seconds':>8}  {'pytorch_fid/ours':>16}")
        for name, seconds, ratio in rows:
            print(f"{name:<{width}}  {seconds:8.2f}  {ratio:>16}")
        print()
        print(f"FID pytorch_fid          {fid_pf:.6f}")
        print(f"FID ours (first model)   {first['fid']:.6f}")
        print(f"FID ours (second model)  {second['fid']:.6f}")
        print(f"FID ours, exact low-rank {second['lowrank']:.6f}")
        print(f"|FID_ours - FID_pytorch_fid| = {abs(first['fid'] - fid_pf):.2e}")

        network_table(weights, gen_paths, args)
        precision_table(weights, gen_paths, ref_paths, root, args, first["fid"], first["gen"])
    frechet_table(args)


if __name__ == "__main__":
    main()
