"""MAE nearest-neighbour audit at study scale: time and peak memory of ``nearest_train_mae`` (exact; its
default kernel, then each of ``--methods``) vs the one-call anchor (``torch.cdist(p=1)`` on all images at
once in float32), in one process.

Study A audits 1024 generated images against the training set; larger studies have up to 10,000 training
images at 128 or 256 px.  Our audit keeps the images as uint8 (on the CPU it reads the caller's arrays
without a copy).  Its CPU kernel (OpenCV) keeps only the two nearest per row; the torch kernels convert
bounded chunks to float32 (``chunk_bytes``: 64 MiB on the CPU, 256 MiB on a GPU) and keep ``gen_chunk``
x M int64 distance sums, so their extra memory is about

    2 x chunk_bytes + gen_chunk x M x 8 bytes   (+ M x H x W x 3 bytes for the training images on a GPU)

whatever N is: 128 MiB + 20 MiB for M = 10,000 on the CPU.  The anchor converts both sets to float32
(4 x (N + M) x H x W x 3 bytes: 2.2 GiB at 128 px and 8.8 GiB at 256 px for 1024 x 10,000).  The anchor
runs only while its estimated memory stays under ``--anchor-max-gib`` (else the row says why it did
not).  Images are random uint8 (the cost does not depend on the content).  Peak memory is the process's
resident high-water mark above what it held before the call (``VmHWM``, reset through
``/proc/self/clear_refs`` where the kernel allows it; otherwise the row says "n/a").  Times are reported,
never asserted.

Usage: python benchmarks/mae.py [--n-gen 1024] [--n-ref 10000] [--sizes 128,256] [--device cpu]
                                [--methods cdist] [--anchor-max-gib 4]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import cv2  # noqa: F401 - imported before anything is timed (the CPU kernel's library)
import numpy as np
import torch

from animegen.metrics.mae import nearest_train_mae

STATUS = Path("/proc/self/status")


def _kib(field: str) -> int | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measured(fn, device: torch.device):
    """(result, seconds, extra peak MiB or None) of ``fn()``."""
    can_reset = _reset_peak()
    before = _kib("VmRSS")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        return result, seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    peak = _kib("VmHWM")
    return result, seconds, (peak - before) / 1024 if can_reset and peak and before else None


def anchor(generated: np.ndarray, train: np.ndarray, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Nearest index and distance with one cdist call on everything in float32 (what one writes first)."""
    g = torch.from_numpy(generated).reshape(len(generated), -1).to(device, torch.float32)
    t = torch.from_numpy(train).reshape(len(train), -1).to(device, torch.float32)
    dist = torch.cdist(g, t, p=1)
    best = dist.min(dim=1)
    return best.indices.cpu().numpy(), best.values.cpu().numpy() / g.shape[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-gen", type=int, default=1024)
    ap.add_argument("--n-ref", type=int, default=10000)
    ap.add_argument("--sizes", default="128,256", help="image sizes in px, comma-separated")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--methods", default="cdist", help="other exact kernels to time beside the default, comma-separated")
    ap.add_argument("--anchor-max-gib", type=float, default=4.0, help="skip the anchor above this estimated memory")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"MAE audit: {args.n_gen} generated x {args.n_ref} reference images; device {device} ({where}); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| size | method | seconds | extra peak MiB | this / ours (time) | same result |")
    print("|---|---|---:|---:|---:|---|")
    rng = np.random.default_rng(args.seed)
    for size in (int(s) for s in args.sizes.split(",")):
        gen = rng.integers(0, 256, (args.n_gen, size, size, 3), dtype=np.uint8)
        ref = rng.integers(0, 256, (args.n_ref, size, size, 3), dtype=np.uint8)
        ours, t_ours, mem_ours = measured(lambda: nearest_train_mae(gen, ref, device=device), device)
        print(f"| {size} | ours ({ours.method}, the default here) | {t_ours:.1f} | {_mib(mem_ours)} | | |", flush=True)
        for method in (m for m in args.methods.split(",") if m and m != ours.method):
            other, t_other, mem_other = measured(lambda: nearest_train_mae(gen, ref, device=device, method=method), device)
            same = bool(np.array_equal(other.nearest_index, ours.nearest_index) and np.array_equal(other.d2, ours.d2))
            print(f"| {size} | {method} (chunked, exact) | {t_other:.1f} | {_mib(mem_other)} | {t_other / t_ours:.2f} | {same} |",
                  flush=True)  # fmt: skip
        gib = 4 * (args.n_gen + args.n_ref) * size * size * 3 / 2**30
        if gib > args.anchor_max_gib:
            print(f"| {size} | anchor: one cdist in float32 | not run: needs ~{gib:.1f} GiB (> --anchor-max-gib) | | | |")
            continue
        (idx, d1), t_anchor, mem_anchor = measured(lambda: anchor(gen, ref, device), device)
        same = bool(np.array_equal(idx, ours.nearest_index) and np.allclose(d1, ours.d1, rtol=0, atol=1e-3))
        print(f"| {size} | anchor: one cdist in float32 | {t_anchor:.1f} | {_mib(mem_anchor)} | {t_anchor / t_ours:.2f} | {same} |")


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


if __name__ == "__main__":
    main()
