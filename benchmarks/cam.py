"""Grad-CAM throughput: images per second, batched vs one image at a time, with the `grad-cam` library.

The cam_select stage computes the Grad-CAM of every image of a dataset (study C: a few thousand anime
faces).  The library supports batches (one forward and one backward per batch, one target per image);
the reference way people use it, and what its README shows, is one image per call.  This script times
both on the same images and network in one process, through our wrapper (``animegen.cam.gradcam.maps``,
which is the library call plus input preparation), and checks the two give the same maps:

* ``small_cnn`` at 32 px: the demo classifier (width 16, depth 2, layer blocks.1), randomly initialised;
* ``resnet18`` at 128 px: a paper-scale backbone (layer4), randomly initialised (speed does not depend on
  the weights).

Prints images/s for each and the ratio batched / one-at-a-time (above 1 means batching is faster), plus
the largest absolute difference between the maps.  Times are reported, never asserted.

Usage: python benchmarks/cam.py [--n 256] [--batch-size 64] [--device cpu] [--threads 0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from animegen.cam import classifier as clf
from animegen.cam import gradcam


def frozen(arch: str, width: int, depth: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    net = clf.build(arch, width, depth).to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def best_of(fn, repeats: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all this process may use)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    device = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
          f"threads {torch.get_num_threads()}, n {args.n}, batch {args.batch_size}, best of {args.repeats}")  # fmt: skip
    print(f"{'network':<22} {'one-by-one img/s':>17} {'batched img/s':>14} {'ratio':>7} {'max |diff|':>11}")
    rng = np.random.default_rng(0)
    for arch, size, width, depth, layer in (("small_cnn", 32, 16, 2, "blocks.1"), ("resnet18", 128, 0, 0, "layer4")):
        net = frozen(arch, width, depth, device)
        target = clf.target_layer(net, layer)
        images = rng.integers(0, 256, (args.n, size, size, 3), dtype=np.uint8)
        gradcam.maps(net, target, images[:4], arch, 1, device, 4)  # warm-up
        t_one, one = best_of(lambda: gradcam.maps(net, target, images, arch, 1, device, 1)[0], args.repeats)
        t_bat, bat = best_of(lambda: gradcam.maps(net, target, images, arch, 1, device, args.batch_size)[0], args.repeats)
        diff = float(np.abs(one - bat).max())
        print(f"{arch + f' @ {size} px':<22} {args.n / t_one:>17.1f} {args.n / t_bat:>14.1f} "
              f"{t_one / t_bat:>6.2f}x {diff:>11.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
