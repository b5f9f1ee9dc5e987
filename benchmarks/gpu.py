"""A GPU benchmark that fits in ten minutes: does study A's 12-hour budget per model hold on this card?

One command, on one GPU, prints a Markdown table ready for BENCHMARKS.md:

* the card's measured matmul peak (TF32 for fp32 training with ``train.tf32``, bf16 for bf16/fp16), from
  square matmuls in the same process;
* per model family at its paper-profile size (``workflow/params/paper.yaml``: DCGAN, StyleGAN2, DDPM,
  hourglass DDPM at 128 px; ``workflow/params/study_c.yaml``: CycleGAN at 256 px), in the profile's
  batch size and precision: training steps/s and images/s after a warm-up (CUDA-synchronised), peak
  memory, FLOPs per step (``torch.utils.flop_counter.FlopCounterMode`` over one step), achieved
  TFLOP/s and MFU (against the matching peak), the steps that fit in ``time_budget_hours`` and the
  hours the profile's ``train.steps`` would take;
* generating 1024 samples: GANs timed on real batches; DDPM timed per denoising step and projected to
  1000-step ancestral sampling and to DDIM-50 (every step is one U-Net forward of the same batch);
* Inception feature throughput (pool3 at 299 px, full FP32 as the FID stages run it) and the FID
  stage's projected time for 1024 and 10,000 images.

Usage: python benchmarks/gpu.py [--quick]    (refuses with one line on a machine without CUDA)
       python benchmarks/gpu.py --dry-run     (CPU, tiny sizes, every code path: the test suite runs it)
AnimeGAN and Council GAN join the table once their families exist (issues 15, 16).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from animegen.config import parse_yaml
from animegen.models import registry
from animegen.models.base import StepContext
from animegen.train import autocast_for

REPO = Path(__file__).resolve().parents[1]
# --dry-run: the same code at sizes a CPU test can afford
DRY_NETS = {
    "dcgan": {"nz": 8, "ngf": 4, "ndf": 4},
    "stylegan2": {"z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64, "channel_max": 8},
    "ddpm": {"dim": 4, "dim_mults": [1, 2], "timesteps": 20},
    "cyclegan": {"ngf": 4, "ndf": 4, "n_blocks": 1},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int) -> float:
    """Seconds per call of ``fn`` over ``repeat`` calls, after the caller's warm-up."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / repeat


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, repeat: int) -> float:
    """TFLOP/s of n x n matmuls in ``dtype`` (float32 runs as TF32 when allowed)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    return 2 * n**3 / timed(lambda: a @ b, device, repeat) / 1e12


def entries(dry: bool) -> list[tuple[str, dict, int, dict]]:
    """(name, entry, image size, training section) per family at its profile's size; tiny under --dry-run."""
    paper = parse_yaml((REPO / "workflow/params/paper.yaml").read_text())
    study_c = parse_yaml((REPO / "workflow/params/study_c.yaml").read_text())
    out = []
    for profile, section in ((paper, "models"), (study_c, "translators")):
        seen = set()
        for name, m in profile[section].items():
            key = m["family"] + ("_hourglass" if "hourglass" in name else "")  # study A's two DDPMs differ in depth
            if key in seen or (section == "translators" and (m["net"]["cam_generator"] or m["net"]["cam_discriminator"])):
                continue  # one row per family; CycleGAN + CAM needs a trained classifier (benchmarks/translation.py)
            seen.add(key)
            dataset = m["dataset"] if section == "models" else m["source"]["dataset"]
            size = profile["datasets"][dataset]["size"]
            m = {**m, "net": dict(m["net"]), "train": dict(m["train"])}
            if dry:
                m["net"].update(DRY_NETS[m["family"]], **({"dim_mults": [1, 4]} if "hourglass" in key else {}))
                m["train"]["batch_size"], size = 2, 32
            out.append((name, m, size, profile["train"]))
    return out


def batch_of(model, size: int, batch: int, device: torch.device) -> dict:
    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    return {"a": x, "b": torch.rand_like(x) * 2 - 1} if model.kind == "translation" else {"image": x}


def bench_training(name: str, m: dict, size: int, train: dict, device: torch.device, peaks: dict, warmup: int, steps: int) -> dict:
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(train["tf32"])
    model = registry.model_class(m["family"])(m["net"], size).to(device)
    precision, batch = m["train"]["precision"], m["train"]["batch_size"]
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    ctx = StepContext(device=device, autocast=autocast_for(device, precision), scaler=scaler)
    data = batch_of(model, size, batch, device)
    step = iter(range(10**9))
    run = lambda: model.train_step(data, next(step), ctx)  # noqa: E731
    for _ in range(warmup):
        run()
    with FlopCounterMode(display=False) as counter:
        run()
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = timed(run, device, steps)
    peak_key = "bf16" if precision in ("bf16", "fp16") else ("tf32" if train["tf32"] else "fp32")
    tflops = flops / seconds / 1e12
    budget_h = m["train"]["time_budget_hours"]
    return {
        "model": name, "family": m["family"], "px": size, "batch": batch, "precision": precision,
        "steps_per_s": 1 / seconds, "images_per_s": batch / seconds,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan"),
        "gflop_per_step": flops / 1e9, "tflops": tflops, "mfu": tflops / peaks[peak_key],
        "steps_in_budget": budget_h * 3600 / seconds, "budget_h": budget_h, "hours_for_steps": m["train"]["steps"] * seconds / 3600,
        "model_obj": model,
    }  # fmt: skip


def bench_sampling(row: dict, m: dict, device: torch.device, n: int, repeat: int) -> dict:
    model, batch = row.pop("model_obj"), row["batch"]
    if model.kind == "translation":
        x = torch.rand(batch, 3, row["px"], row["px"], device=device) * 2 - 1
        per_batch = timed(lambda: model.translate(model.networks["G_A"], x), device, repeat)
        return {"generate": f"translate {n}: {per_batch * math.ceil(n / batch):.1f} s"}
    net = model.ema_network()
    if m["family"] == "ddpm":  # seconds per denoising step of one batch, from a short DDIM run
        k = 2
        model.sample(net, batch, device, sampling_timesteps=k)
        per_step = timed(lambda: model.sample(net, batch, device, sampling_timesteps=k), device, repeat) / k
        batches = math.ceil(n / batch)
        return {"generate": f"{n}: ancestral {net.num_timesteps} steps {per_step * net.num_timesteps * batches / 60:.1f} min, "
                            f"DDIM-50 {per_step * 50 * batches / 60:.1f} min (projected)"}  # fmt: skip
    model.sample(net, batch, device, **m.get("sample", {}))
    per_batch = timed(lambda: model.sample(net, batch, device, **m.get("sample", {})), device, repeat)
    return {"generate": f"{n}: {per_batch * math.ceil(n / batch):.1f} s"}


def bench_inception(device: torch.device, n: int, batch: int, size: int) -> dict:
    from animegen.metrics.extractor import load_extractor  # noqa: PLC0415
    from animegen.metrics.fid import FrechetReference  # noqa: PLC0415

    settings = {"weights": None, "device": str(device), "cpu_threads": 0, "batch_size": batch, "precision": "fp32",
                "compile": False}  # fmt: skip
    extractor = load_extractor(settings, REPO)  # the stages' extractor: BN folded, channels-last, fp32
    images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    extractor.features(images[:batch])  # warm-up
    sync(device)
    t0 = time.perf_counter()
    feats = extractor.features(images)
    sync(device)
    per_image = (time.perf_counter() - t0) / n
    ref = np.random.default_rng(1).standard_normal((4096, 2048))
    t0 = time.perf_counter()  # a stage prepares its reference once, then scores the set
    FrechetReference(ref.mean(0), np.cov(ref, rowvar=False)).distance_to_features(feats)
    frechet = time.perf_counter() - t0
    return {"images_per_s": 1 / per_image, "fid_1024_s": 1024 * per_image + frechet, "fid_10000_s": 10000 * per_image + frechet,
            "weights": extractor.weights.origin}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="half the measured steps and repeats")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes: every code path, no meaningful number")
    args = ap.parse_args()
    if args.dry_run:
        device = torch.device("cpu")
        warmup, steps, repeat, mm_n, inc_n, inc_batch = 1, 2, 1, 256, 4, 2
    elif not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device here; it measures a GPU (use --dry-run to check the script on a CPU)", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
        warmup, steps, repeat, mm_n, inc_n, inc_batch = 5, 40, 3, 8192, 2000, 200
        if args.quick:
            steps, repeat, inc_n = 20, 2, 1000
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    torch.backends.cuda.matmul.allow_tf32 = True
    peaks = {"tf32": matmul_peak(device, torch.float32, mm_n, repeat * 5)}
    torch.backends.cuda.matmul.allow_tf32 = False
    peaks["fp32"] = matmul_peak(device, torch.float32, mm_n, repeat * 5)
    peaks["bf16"] = matmul_peak(device, torch.bfloat16, mm_n, repeat * 5)
    print(f"## {name}\n\nmatmul peak ({mm_n}^2): TF32 {peaks['tf32']:.1f}, FP32 {peaks['fp32']:.1f}, BF16 {peaks['bf16']:.1f} TFLOP/s\n")
    print("| model | px | batch | precision | steps/s | images/s | peak GiB | GFLOP/step | TFLOP/s | MFU | "
          "steps in budget | h for train.steps | generating |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for model_name, m, size, train in entries(args.dry_run):
        row = bench_training(model_name, m, size, train, device, peaks, warmup, steps)
        row.update(bench_sampling(row, m, device, 16 if args.dry_run else 1024, repeat))
        print(f"| {row['model']} | {row['px']} | {row['batch']} | {row['precision']} | {row['steps_per_s']:.2f} | "
              f"{row['images_per_s']:.1f} | {row['peak_mem_gib']:.2f} | {row['gflop_per_step']:.1f} | {row['tflops']:.2f} | "
              f"{row['mfu']:.1%} | {row['steps_in_budget']:,.0f} in {row['budget_h']:g} h | {row['hours_for_steps']:,.0f} | "
              f"{row['generate']} |", flush=True)  # fmt: skip
    inc = bench_inception(device, inc_n, inc_batch, 32 if args.dry_run else 128)
    print(f"\nInception (pool3, 299 px, FP32, weights {inc['weights']}): {inc['images_per_s']:.0f} images/s; FID stage "
          f"(features + Fréchet distance) for 1024 images {inc['fid_1024_s']:.1f} s, for 10,000 {inc['fid_10000_s']:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
