"""Stage ``sample``: draw ``sample.n`` images from one trained model.

Reads:  ``data/models/<name>/model.pt``; ``params.yaml`` sections ``sample`` (n, batch size, grid,
        seed, EMA or live generator, device) and ``models.<name>.sample`` (the family's sampling settings,
        e.g. DDIM steps).
Writes: ``data/samples/<name>/`` with ``images/000000.png ...`` (exactly ``n`` RGB PNGs at the training
        size), ``grid.png`` (the first ``grid`` images tiled, for people) and ``sample.json``.
Guarantees: the folder appears complete or not at all; the same seed, batch size and device give the
same images (the seed is ``sample.seed`` plus the model's ``seed_offset``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from animegen import config, paths
from animegen.io import atomic_dir, save_png, write_json_atomic
from animegen.models import registry
from animegen.stages import StageError
from animegen.device import select_device, set_cpu_threads
from animegen.train import generator_for_sampling


def load_model(path: Path):
    """The model saved by ``train`` (``weights_only`` load), rebuilt from the settings stored with it."""
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the file is unusable
        raise StageError(f"{path}: cannot be read ({e}); rerun train") from None
    model = registry.model_class(blob["family"])(blob["net"], blob["image_size"], blob["channels"])
    return model, blob


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> (N, H, W, 3) uint8, rounded as torchvision's save_image does."""
    return images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def tile(images: np.ndarray, pad: int = 2) -> Image.Image:
    n, h, w, _ = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return Image.fromarray(canvas, "RGB")


def run(params: dict, name: str, root: Path) -> dict:
    m = config.model(params, name)
    s = params["sample"]
    try:
        device = select_device(s["device"])
    except RuntimeError as e:
        raise StageError(f"sample.device: {e}") from None
    set_cpu_threads(s["cpu_threads"])
    model, blob = load_model(root / paths.MODEL.format(model=name) / "model.pt")
    if blob["family"] != m["family"] or blob["net"] != m["net"]:
        raise StageError(f"sample {name}: data/models/{name}/model.pt was trained with other settings; rerun train")
    try:
        net = generator_for_sampling(model, blob, s["use_ema"]).to(device)
    except ValueError as e:
        raise StageError(f"sample.use_ema: {e}") from None
    model.to(device)
    seed = s["seed"] + blob["seed_offset"]
    torch.manual_seed(seed)
    grid = []
    with atomic_dir(root / paths.SAMPLES.format(model=name)) as tmp:
        (tmp / "images").mkdir()
        done = 0
        with tqdm(total=s["n"], desc=f"sample {name}", unit="img", disable=None) as bar:
            while done < s["n"]:
                b = min(s["batch_size"], s["n"] - done)
                batch = to_uint8(model.sample(net, b, device, **m["sample"]))
                for j, img in enumerate(batch):
                    save_png(Image.fromarray(img, "RGB"), tmp / "images" / f"{done + j:06d}.png")
                if len(grid) < s["grid"]:
                    grid.extend(batch[: s["grid"] - len(grid)])
                done += b
                bar.update(b)
        if grid:
            save_png(tile(np.stack(grid)), tmp / "grid.png")
        report = {
            "model": name, "n": done, "image_size": blob["image_size"], "seed": seed,
            "batch_size": s["batch_size"], "device": device.type, "use_ema": s["use_ema"],
            "trained_steps": blob["step"], "family_sample_settings": m["sample"],
        }  # fmt: skip
        write_json_atomic(tmp / "sample.json", report)
    return report
