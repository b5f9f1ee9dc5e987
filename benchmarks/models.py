"""Model benchmarks, each side by side in one process against its anchor.

1. ``step``: our training loop driving lucidrains' ``Unet`` + ``GaussianDiffusion`` vs the library's own
   ``Trainer`` on the same network, batch, image size and step count (EMA on in both, FID and sampling
   off in the Trainer, checkpoints out of the way in ours).  Ratio = Trainer seconds / our seconds.
2. ``ddim``: sampling throughput (images/s) of one trained-shape DDPM with DDIM at several step
   counts vs 1000-step ancestral sampling (the paper's setting).  Random weights: speed does not
   depend on them.
3. ``memory``: peak memory of a few training steps per model family at the paper profile's settings
   (``workflow/params/paper.yaml``), each in a fresh subprocess: CUDA max allocated on a GPU, the
   process's peak RSS on the CPU.

Usage: python benchmarks/models.py [--size 32] [--batch 16] [--steps 20] [--dim 16] [--only step,ddim,memory]
On a GPU: python benchmarks/models.py --size 128 --dim 64 --batch 16 --steps 50 --memory-size 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from animegen.config import parse_yaml
from animegen.device import select_device
from animegen.models import registry
from animegen.train import LoopConfig, train

REPO = Path(__file__).resolve().parents[1]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ddpm_net(dim: int, dim_mults) -> dict:
    return {
        "dim": dim, "dim_mults": list(dim_mults), "timesteps": 1000, "objective": "pred_v", "beta_schedule": "sigmoid", "loss": "l2",
        "dropout": 0.0, "lr": 0.0001, "betas": [0.9, 0.99], "max_grad_norm": 1.0,
    }  # fmt: skip


def bench_step(device, size: int, batch: int, steps: int, dim: int) -> dict:
    from denoising_diffusion_pytorch import Trainer  # noqa: PLC0415

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (128, size, size, 3), dtype=np.uint8)  # the Trainer wants >= 100 images
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, im in enumerate(images):
            Image.fromarray(im).save(folder / f"{i:04d}.png")

        torch.manual_seed(0)
        model = registry.model_class("ddpm")(ddpm_net(dim, (1, 2, 4, 8) if size >= 64 else (1, 2, 4)), size)
        trainer = Trainer(
            model.networks["diffusion"], str(folder), train_batch_size=batch, train_lr=1e-4,
            train_num_steps=steps, ema_update_every=10, ema_decay=0.995, adam_betas=(0.9, 0.99),
            save_and_sample_every=10**9, calculate_fid=False, amp=False, results_folder=str(Path(tmp) / "res"),
        )  # fmt: skip
        trainer.step = 0
        _sync(device)
        t0 = time.perf_counter()
        trainer.train()
        _sync(device)
        t_lib = time.perf_counter() - t0

        torch.manual_seed(0)
        model = registry.model_class("ddpm")(ddpm_net(dim, (1, 2, 4, 8) if size >= 64 else (1, 2, 4)), size)
        cfg = LoopConfig(
            steps=steps, time_budget_hours=100.0, batch_size=batch, seed=0, hflip=True, precision="fp32", tf32=True,
            ema_beta=0.995, ema_update_after_step=100, ema_update_every=10, checkpoint_every_steps=10**9,
            checkpoint_every_minutes=10**6, log_every=10, track_fid_every=0,
        )  # fmt: skip
        _sync(device)
        t0 = time.perf_counter()
        train(model, images, cfg, device, Path(tmp) / "ck", Path(tmp) / "ck/live", "bench", log=lambda m: None, progress=False)
        _sync(device)
        t_ours = time.perf_counter() - t0
    return {
        "bench": "ddpm train step", "size": size, "batch": batch, "steps": steps, "dim": dim,
        "trainer_s_per_step": t_lib / steps, "ours_s_per_step": t_ours / steps, "ratio_trainer/ours": t_lib / t_ours,
    }  # fmt: skip


def bench_ddim(device, size: int, dim: int, n: int, counts=(10, 25, 50, 100, 250, 1000)) -> list[dict]:
    torch.manual_seed(0)
    model = registry.model_class("ddpm")(ddpm_net(dim, (1, 2, 4, 8) if size >= 64 else (1, 2, 4)), size).to(device)
    net = model.networks["diffusion"]
    rows, base = [], None
    for k in sorted(counts, reverse=True):
        _sync(device)
        t0 = time.perf_counter()
        model.sample(net, n, device, sampling_timesteps=k, ddim_eta=0.0)
        _sync(device)
        ips = n / (time.perf_counter() - t0)
        base = base or ips  # the first (largest) count is 1000: ancestral sampling
        rows.append({"bench": "ddpm sampling", "size": size, "n": n, "steps": k,
                     "mode": "ancestral" if k == 1000 else "ddim", "images_per_s": ips, "speedup_vs_1000": ips / base})  # fmt: skip
    return rows


MEMORY_CHILD = """
import json, sys, torch
from animegen.models import registry
from animegen.models.base import StepContext
family, net, size, batch, device = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), torch.device(sys.argv[5])
torch.manual_seed(0)
model = registry.model_class(family)(net, size).to(device)
ctx = StepContext(device=device)
x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
for step in range(3):
    model.train_step({"image": x}, step, ctx)
if device.type == "cuda":
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**20
else:  # VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak over
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
print(json.dumps({"peak_mib": peak, "params": sum(model.n_parameters().values())}))
"""


def bench_memory(device, size: int, batch_cap: int | None) -> list[dict]:
    paper = parse_yaml((REPO / "workflow/params/paper.yaml").read_text())
    rows = []
    for name, m in paper["models"].items():
        batch = min(m["train"]["batch_size"], batch_cap) if batch_cap else m["train"]["batch_size"]
        r = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD, m["family"], json.dumps(m["net"]), str(size), str(batch), str(device)],
            capture_output=True, text=True,
        )
        if r.returncode:
            rows.append({"bench": "peak memory", "model": name, "error": r.stderr.strip().splitlines()[-1]})
            continue
        out = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append({"bench": "peak memory", "model": name, "size": size, "batch": batch, "device": device.type,
                     "params_M": out["params"] / 1e6, "peak_MiB": out["peak_mib"]})  # fmt: skip
    return rows


def table(rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--dim", type=int, default=16)
    ap.add_argument("--ddim-n", type=int, default=16)
    ap.add_argument("--ddim-counts", default="10,25,50,100,250,1000")
    ap.add_argument("--memory-size", type=int, default=128)
    ap.add_argument("--memory-batch-cap", type=int, default=0, help="cap the paper batch sizes (CPU runs)")
    ap.add_argument("--only", default="step,ddim,memory")
    args = ap.parse_args()
    device = select_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{os.cpu_count()}"
    print(f"device: {name}; torch {torch.__version__}\n")
    only = set(args.only.split(","))
    if "step" in only:
        table([bench_step(device, args.size, args.batch, args.steps, args.dim)])
    if "ddim" in only:
        table(bench_ddim(device, args.size, args.dim, args.ddim_n, [int(c) for c in args.ddim_counts.split(",")]))
    if "memory" in only:
        table(bench_memory(device, args.memory_size, args.memory_batch_cap or None))
    print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
