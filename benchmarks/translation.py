"""CycleGAN vs CycleGAN + CAM: the cost of study C's attention per training step, and of computing the
input maps on the fly instead of caching them.

Study C multiplies the normalised Grad-CAM map of a frozen classifier into the generator's residual
blocks and the discriminator's last features.  One CycleGAN step then needs ten maps (each generator's
input, the cycle's second pass, and every image a discriminator judges, real, generated or pooled);
four of them are maps of the real batch, which a cache of the training images' maps could serve.  This
script times, in one process on the same batch and weights:

* ``plain``: CycleGAN (``cam_generator`` and ``cam_discriminator`` off);
* ``cam``: CycleGAN + CAM with every map computed on the fly (what the pipeline does);
* ``cam cached``: the same, with the real batch's maps served from a cache computed beforehand (an
  upper bound on what caching input maps as an artifact would save: with flips the cache would also
  have to flip its maps);

and prints seconds per step, the ratios to ``plain``, one map's cost and the projected time of study
C's run (100 epochs of 500 images at batch 1 = 50,000 steps) on this device.  Times are reported, never
asserted.

Usage: python benchmarks/translation.py [--size 256] [--ngf 64] [--batch 1] [--arch resnet18] [--steps 5]
       [--device cpu] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from animegen.cam import classifier as clf
from animegen.cam.attention import GradCamMaps
from animegen.models import registry
from animegen.models.base import StepContext

STUDY_C_STEPS = 100 * 500  # 100 epochs of 500 photos at batch 1


def net_cfg(ngf: int, cam: bool) -> dict:
    return {"ngf": ngf, "ndf": ngf, "n_blocks": 4, "lambda_cyc": 10.0, "lambda_identity": 0.0, "pool_size": 50,
            "lr": 0.0002, "betas": [0.5, 0.999], "lr_constant_steps": 0, "lr_decay_steps": 0,
            "cam_generator": cam, "cam_discriminator": cam}  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model, batch: dict, steps: int, device: torch.device) -> float:
    ctx = StepContext(device=device)
    model.train_step(batch, 0, ctx)  # warm-up (allocations, cuDNN autotuning)
    sync(device)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        model.train_step(batch, step, ctx)
    sync(device)
    return (time.perf_counter() - t0) / steps


class CachedMaps:
    """Serves the maps of the real batch from a cache; every other image's map is computed."""

    def __init__(self, maps: GradCamMaps, batch: dict):
        self.maps = maps
        self.cache = {(batch[d].data_ptr(), d): maps(batch[d], d) for d in ("a", "b")}
        self.hits = 0

    def __call__(self, x: torch.Tensor, domain: str) -> torch.Tensor:
        key = (x.data_ptr(), domain)
        if key in self.cache:
            self.hits += 1
            return self.cache[key]
        return self.maps(x, domain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ngf", type=int, default=64, help="ngf = ndf (study C: 64)")
    ap.add_argument("--batch", type=int, default=1, help="the reference CycleGAN's batch size is 1")
    ap.add_argument("--arch", default="resnet18", choices=clf.ARCHS)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all this process may use)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    device = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads; CycleGAN ngf=ndf={args.ngf} at {args.size} px, batch {args.batch}, "
          f"classifier {args.arch}")  # fmt: skip
    torch.manual_seed(0)
    classifier = clf.build(args.arch, 16, 2).to(device).eval()
    for p in classifier.parameters():
        p.requires_grad_(False)
    layer = classifier.get_submodule(clf.default_target_layer(args.arch, 2))
    maps = GradCamMaps(classifier, layer, args.arch, {"a": 0, "b": 1})
    g = torch.Generator().manual_seed(0)
    batch = {d: (torch.rand(args.batch, 3, args.size, args.size, generator=g) * 2 - 1).to(device) for d in ("a", "b")}

    results = {}
    for label, cam, fn in (("plain", False, None), ("cam", True, maps), ("cam cached", True, "cached")):
        torch.manual_seed(0)
        model = registry.model_class("cyclegan")(net_cfg(args.ngf, cam), args.size).to(device)
        cached = CachedMaps(maps, batch) if fn == "cached" else None
        model.set_cam(cached or fn)
        results[label] = time_steps(model, batch, args.steps, device)
        if cached is not None:
            hits_per_step = cached.hits / (args.steps + 1)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        maps(batch["a"], "a")
    sync(device)
    one_map = (time.perf_counter() - t0) / args.steps

    print("| run | s / step | ratio to plain | study C (50,000 steps) |")
    print("|---|---:|---:|---:|")
    for label, sec in results.items():
        print(f"| {label} | {sec:.4f} | {sec / results['plain']:.2f} | {sec * STUDY_C_STEPS / 3600:.1f} h |")
    print(f"one Grad-CAM map of the batch: {one_map * 1000:.1f} ms; maps served from the cache per step: {hits_per_step:.0f} of 10")


if __name__ == "__main__":
    main()
