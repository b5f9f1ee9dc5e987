"""AnimeGAN's training step, side by side: VGG19 vs MobileNetV2 content features, L1 vs Huber (study D).

Study D reports 100 epochs in 22.36 h with VGG19 vs 19.92 h with MobileNet (0.89x), and 21.94 h with
L1/L2 vs 23.19 h with Huber (1.06x).  This script times, in one process on the same batch and the same
generator and discriminator weights, one training step (after the initialisation phase: adversarial,
content, Gram and colour losses, plus study D's skin and face losses in the ``study D`` rows) for:

* ``vgg19 + L1`` (the reference AnimeGAN) and ``mobilenet_v2 + L1``: the content network alone changes;
* ``mobilenet_v2 + Huber``: the distance alone changes;
* ``study D``: MobileNetV2, Huber everywhere, skin and face losses (face features from MobileNetV2).

Backbones are randomly initialised here (the cost of a network does not depend on its weights; VGG19
weights ship nowhere).  It prints seconds per step, the ratios, and the peak memory: on CUDA the peak
allocated per row, on the CPU the process's peak resident memory after each row (it only grows).
Times are reported, never asserted.

Usage: python benchmarks/animegan.py [--size 256] [--ch 64] [--batch 6] [--steps 3] [--device cpu] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import torch

from animegen.models import animegan, backbones
from animegen.models.base import StepContext

BASE = {
    "generator": "v1", "n_dis": 3, "spectral_norm": True, "init": "he", "lr_g": 8e-5, "lr_d": 1.6e-4, "betas": [0.5, 0.999],
    "init_steps": 0, "init_lr": 1e-4, "adv_weight": 300.0, "d_adv_weight": 300.0, "d_weights": [1.0, 1.0, 1.0, 0.1],
    "content_weight": 1.5, "gram_weight": 3.0, "color_weight": 10.0, "tv_weight": 0.0, "skin_weight": 0.0,
    "face_weight": 0.0, "huber": [], "huber_delta": 1.0,
}  # fmt: skip
STUDY_D = {"content_weight": 3.0, "gram_weight": 3.5, "skin_weight": 2.8, "face_weight": 2.0,
           "huber": ["content", "gram", "color", "skin", "face"]}  # fmt: skip
LAYERS = {"vgg19": "features.25", "mobilenet_v2": "features.6"}
ROWS = (("vgg19 + L1", "vgg19", {}), ("mobilenet_v2 + L1", "mobilenet_v2", {}),
        ("mobilenet_v2 + Huber", "mobilenet_v2", {"huber": ["content", "gram", "color"]}),
        ("study D", "mobilenet_v2", STUDY_D))  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_row(arch: str, over: dict, args, batch: dict, device: torch.device) -> tuple[float, float]:
    spec = {"arch": arch, "weights": "random", "layer": LAYERS[arch]}
    net = {**BASE, "ch": args.ch, "n_res": 8, **over, "content_backbone": spec, "face_backbone": spec}
    torch.manual_seed(0)
    model = animegan.Model(net, args.size)
    model.set_backbones({"content": backbones.load(spec), "face": backbones.load(spec)})
    model.to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ctx = StepContext(device=device)
    model.train_step(batch, 0, ctx)  # warm-up
    sync(device)
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        model.train_step(batch, step, ctx)
    sync(device)
    return (time.perf_counter() - t0) / args.steps, peak_mib(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ch", type=int, default=64, help="base width (the reference: 64)")
    ap.add_argument("--batch", type=int, default=6, help="the reference AnimeGAN's batch size is 6")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all this process may use)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    device = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads; AnimeGAN v1 ch={args.ch} at {args.size} px, batch {args.batch}")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    batch = {k: (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1).to(device) for k in ("a", "b", "b_smooth")}
    faces = torch.zeros(args.batch, 1, args.size, args.size)
    faces[..., args.size // 4 : 3 * args.size // 4, args.size // 4 : 3 * args.size // 4] = 1.0
    batch["a_faces"] = (faces * 2 - 1).expand(-1, 3, -1, -1).to(device)
    results = {label: time_row(arch, over, args, batch, device) for label, arch, over in ROWS}
    base = results["vgg19 + L1"][0]
    memory = "peak allocated MiB" if device.type == "cuda" else "process peak RSS MiB (cumulative)"
    print(f"| run | s / step | ratio to vgg19 + L1 | {memory} |")
    print("|---|---:|---:|---:|")
    for label, (sec, mib) in results.items():
        print(f"| {label} | {sec:.4f} | {sec / base:.2f} | {mib:.0f} |")
    mob, hub = results["mobilenet_v2 + L1"][0], results["mobilenet_v2 + Huber"][0]
    print(f"# MobileNetV2 / VGG19: {mob / base:.2f} (study D: 19.92 h / 22.36 h = 0.89); "
          f"Huber / L1: {hub / mob:.2f} (study D: 23.19 h / 21.94 h = 1.06)")


if __name__ == "__main__":
    main()
