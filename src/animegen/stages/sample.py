"""Stage ``sample``: draw ``sample.n`` images from one trained model.

Reads:  ``data/models/<name>/model.pt``; ``params.yaml`` sections ``sample`` (n, batch size, grid,
        seed, EMA or live generator, device, TF32) and ``models.<name>.sample`` (the family's sampling
        settings, e.g. DDIM steps).
Writes: ``data/samples/<name>/`` with ``images/000000.png ...`` (exactly ``n`` RGB PNGs at the training
        size), ``grid.png`` (the first ``grid`` images tiled, for people) and ``sample.json``.  The
        generation's wall time and device name go to the run record (``logs/runs/sample/<name>.json``,
        beside the training's; study A budgets 12 hours of each per model on one GPU).
Guarantees: the folder appears complete or not at all; the same seed, batch size and device give the
same images (the seed is ``sample.seed`` plus the model's ``seed_offset``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animegen import paths
from animegen.artifacts import samples
from animegen.artifacts.model import read_model
from animegen.device import device_name, set_tf32
from animegen.device import setup as device_setup
from animegen.io import atomic_dir, save_png
from animegen.models.sampling import iter_samples
from animegen.plots import tile
from animegen.stages import StageError
from animegen.train import generator_for_sampling


def run(params: dict, name: str, root: Path) -> dict:
    m = params["models"][name]
    s = params["sample"]
    device = device_setup(s, "sample")
    set_tf32(s["tf32"])
    model, blob = read_model(root / paths.MODEL.format(model=name), m["family"], m["net"])
    try:
        net = generator_for_sampling(model, blob, s["use_ema"]).to(device)
    except ValueError as e:
        raise StageError(f"sample.use_ema: {e}") from None
    model.to(device)
    seed = s["seed"] + blob["seed_offset"]
    grid, done, t0 = [], 0, time.monotonic()
    with atomic_dir(root / paths.SAMPLES.format(model=name)) as tmp:
        samples.start(tmp)
        with tqdm(total=s["n"], desc=f"sample {name}", unit="img", disable=None) as bar:
            for batch in iter_samples(model, net, s["n"], s["batch_size"], seed, device, m["sample"]):
                for j, img in enumerate(batch):
                    samples.write_image(tmp, done + j, img)
                grid.extend(batch[: max(0, s["grid"] - len(grid))])
                done += len(batch)
                bar.update(len(batch))
        seconds = time.monotonic() - t0
        if grid:
            save_png(tile(np.stack(grid)), tmp / "grid.png")
        report = {
            "model": name, "n": done, "image_size": blob["image_size"], "seed": seed,
            "batch_size": s["batch_size"], "device": device.type, "use_ema": s["use_ema"],
            "trained_steps": blob["step"], "family_sample_settings": m["sample"], "tf32": s["tf32"],
        }  # fmt: skip
        samples.write_sample_record(tmp, report)
    # wall time and device name: the run record only (the outputs are byte-identical across reruns)
    return {**report, "sampling_seconds": round(seconds, 3), "device_name": device_name(device)}
