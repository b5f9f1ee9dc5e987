"""What tracking FID over training costs the train stage: the loop with snapshots on vs off.

Study B measures FID every 1000 iterations.  Here training only saves the generator (and its EMA) every
N steps; the track stage measures them later.  This script trains the same model twice in one process,
alternating order over ``--repeats`` rounds, once with ``track_fid_every=0`` and once with
``--every``, and prints the best wall time of each, the ratio on/off (1.0 = free), the bytes per
snapshot, and whether the trained weights are identical (they must be: saving draws no random numbers).
Times are reported, never asserted.

Usage: python benchmarks/track.py [--family dcgan] [--size 32] [--steps 200] [--every 10] [--repeats 2]
       (the network is the demo params.yaml's for that family)
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from animegen.artifacts.model import SnapshotStore, snapshot_steps
from animegen.models import registry
from animegen.train import LoopConfig, train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="dcgan")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    name, m = next((n, m) for n, m in params["models"].items() if m["family"] == args.family)
    data = np.random.default_rng(0).integers(0, 256, (64, args.size, args.size, 3), dtype=np.uint8)
    times: dict[int, list[float]] = {0: [], args.every: []}
    finals, snap_bytes = {}, 0
    for r in range(args.repeats):
        for every in ((0, args.every) if r % 2 == 0 else (args.every, 0)):
            cfg = LoopConfig.from_params({**params["train"], "checkpoint_every_steps": 10**9},
                                         {**m["train"], "steps": args.steps, "track_fid_every": every})  # fmt: skip
            torch.manual_seed(cfg.seed)
            model = registry.model_class(args.family)(m["net"], args.size)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                train(model, data, cfg, torch.device("cpu"), Path(tmp), Path(tmp) / "live", "bench", log=lambda s: None,
                      progress=False, snapshots=SnapshotStore(Path(tmp) / "snapshots", "bench"))  # fmt: skip
                times[every].append(time.perf_counter() - t0)
                snaps = snapshot_steps(Path(tmp) / "snapshots")
                if snaps:
                    snap_bytes = snaps[0][1].stat().st_size
            finals[every] = {k: v.clone() for k, v in model.ema_network().state_dict().items()}
    off, on = min(times[0]), min(times[args.every])
    same = all(torch.equal(finals[0][k], finals[args.every][k]) for k in finals[0])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{name} ({args.family}) at {args.size} px, {args.steps} steps, batch {m['train']['batch_size']}")
    print(f"tracking off: {off:.2f} s   every {args.every}: {on:.2f} s   on / off = {on / off:.3f}")
    print(f"snapshot size: {snap_bytes / 1e6:.2f} MB   identical trained weights: {same}")


if __name__ == "__main__":
    main()
