"""Council GAN's training step at study B's two settings, side by side: time and peak memory.

Study B trained the baseline at 256 x 256 with 4 councils and AdaIN (the reference's batch 3) and
proposed 512 x 512 with 3 councils, Instance Normalization and batch 1, and reports that 512 px nearly
filled its GPU.  This script times one full iteration (every member's discriminator, council
discriminator and generator update, the council loss on) of each setting at the reference widths
(dim 64, mlp 256, style 64, 5 residual blocks, discriminators of 64 channels, 4 layers, 2 scales),
both at batch 1 so that the image size and the councils alone change, each row in its own process so
that its peak memory is its own: on CUDA the peak allocated by torch, on the CPU the process's peak
resident memory.  It prints seconds per iteration, the peak, and the ratios to the baseline row.
Times are reported, never asserted.

Usage: python benchmarks/councilgan.py [--steps 1] [--device cpu] [--threads 0] [--dim 64] [--scale 1.0]
(``--scale 0.125`` runs both rows at 32 and 64 px: the test suite's tiny run.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch

from animegen.models import councilgan
from animegen.models.base import StepContext

REFERENCE = {
    "member": 0, "n_downsample": 2, "n_res": 5, "style_dim": 64, "mlp_dim": 256, "n_masks": 3, "dis_layers": 4,
    "dis_scales": 2, "lr": 1e-4, "betas": [0.5, 0.999], "weight_decay": 1e-4, "lr_step": 100000, "lr_gamma": 0.5,
    "gan_w": 26.0, "council_w": 6.0, "council_start": 0, "council_dis_iters": 4, "style_alpha": 0.7,
    "loss_matching_history": 100, "mask_zero_one_w": 0.0, "mask_total_w": 0.0, "mask_tv_w": 0.0, "focus_start": 2000,
    "focus_epsilon": 0.01, "paired_weight": 0.0,
}  # fmt: skip
ROWS = {  # label: (image size, councils, decoder norm)
    "baseline: 256 px, 4 councils, AdaIN": (256, 4, "adain"),
    "proposed: 512 px, 3 councils, IN": (512, 3, "in"),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_row(label: str, args) -> dict:
    size, councils, norm = ROWS[label]
    size = max(32, int(size * args.scale))
    device = torch.device(args.device)
    net = {**REFERENCE, "n_councils": councils, "norm": norm, "dim": args.dim, "dis_dim": args.dim}
    torch.manual_seed(0)
    model = councilgan.Model(net, size).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    g = torch.Generator().manual_seed(0)
    batch = {k: (torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(device) for k in ("a", "b")}
    ctx = StepContext(device=device)
    model.train_step(batch, 0, ctx)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        model.train_step(batch, step, ctx)
    sync(device)
    params = sum(n for k, n in model.n_parameters().items())
    return {"size": size, "councils": councils, "sec": (time.perf_counter() - t0) / args.steps, "mib": peak_mib(device), "params": params}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1, help="timed iterations after one warm-up")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all this process may use)")
    ap.add_argument("--dim", type=int, default=64, help="generator and discriminator width (the reference: 64)")
    ap.add_argument("--scale", type=float, default=1.0, help="image sizes times this (at least 32 px)")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # one row, in a child process: prints its JSON
    args = ap.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    if args.row:
        print(json.dumps(run_row(args.row, args)))
        return
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {args.device}, "
          f"{torch.get_num_threads()} threads; Council GAN dim {args.dim}, batch 1, one iteration with the council loss")  # fmt: skip
    results = {}
    for label in ROWS:
        cmd = [sys.executable, __file__, "--row", label, *sys.argv[1:]]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        results[label] = json.loads(out.strip().splitlines()[-1])
    base = results[next(iter(ROWS))]
    memory = "peak allocated MiB" if args.device.startswith("cuda") else "process peak RSS MiB"
    print(f"| setting | px | parameters | s / iteration | ratio | {memory} | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(f"| {label} | {r['size']} | {r['params']:,} | {r['sec']:.3f} | {r['sec'] / base['sec']:.2f} | {r['mib']:.0f} | "
              f"{r['mib'] / base['mib']:.2f} |")


if __name__ == "__main__":
    main()
