"""The training loop and the train/sample stages on tiny real models (CPU, 32 px, a few steps)."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, assert_params_error, copy_workspace, dump_yaml, load_yaml
from PIL import Image

from animegen import config
from animegen.artifacts import ArtifactError
from animegen.artifacts.model import SnapshotStore
from animegen.artifacts.split import write_split
from animegen.models import registry
from animegen.stages import StageError
from animegen.stages import sample as sample_stage
from animegen.stages import train as train_stage
from animegen.train import ImageBank, LoopConfig, load_checkpoint, train

BIN = Path(sys.executable).parent
TINY = {
    "dcgan": {"nz": 8, "ngf": 4, "ndf": 4, "lr": 0.0002, "betas": [0.5, 0.999]},
    "ddpm": {
        "dim": 4, "dim_mults": [1, 2], "timesteps": 20, "objective": "pred_v", "beta_schedule": "sigmoid", "loss": "l2",
        "dropout": 0.0, "lr": 0.0002, "betas": [0.9, 0.99], "max_grad_norm": 1.0,
    },
    "stylegan2": {
        "z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64, "channel_max": 8, "mbstd_group": 2,
        "lr": 0.002, "mapping_lr_mult": 0.01, "betas": [0.0, 0.99], "r1_gamma": 0.1, "r1_every": 2,
        "pl_weight": 1.0, "pl_every": 2, "pl_decay": 0.01, "style_mixing": 0.5, "diffaugment": "color,translation",
    },
}  # fmt: skip
TRAIN = {"seed": 3407, "device": "cpu", "cpu_threads": 0, "tf32": True, "checkpoint_every_steps": 2, "checkpoint_every_minutes": 10.0, "log_every": 1}


def loop_cfg(steps: int, **over) -> LoopConfig:
    model_train = {
        "steps": steps, "time_budget_hours": 1.0, "batch_size": 4, "seed_offset": 0, "hflip": True,
        "precision": "fp32", "track_fid_every": 0, "ema": {"beta": 0.9, "update_after_step": 1, "update_every": 1},
    }  # fmt: skip
    cfg = LoopConfig.from_params({**TRAIN, **over.pop("train", {})}, model_train)
    return LoopConfig(**{**cfg.__dict__, **over})


def images(n: int = 8, size: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def run_loop(family: str, tmp: Path, steps: int, ckpt: str = "ckpt", net=None, **over):
    torch.manual_seed(0)  # model initialisation; the loop seeds its own stream
    model = registry.model_class(family)(net or TINY[family], 16)
    fingerprint = family + json.dumps(net or TINY[family], sort_keys=True)
    result, ema = train(model, images(), loop_cfg(steps, **over), torch.device("cpu"), tmp / ckpt, tmp / ckpt / "live",
                        fingerprint=fingerprint, log=lambda m: None,
                        snapshots=SnapshotStore(tmp / ckpt / "snapshots", fingerprint))  # fmt: skip
    return model, result, ema


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("family", registry.names("unconditional"))
def test_every_family_trains_with_finite_losses_and_samples(family, tmp_path):
    model, result, ema = run_loop(family, tmp_path, steps=3)
    assert result.steps_done == 3 and result.stop_reason == "steps"
    assert [r["step"] for r in result.history] == [1, 2, 3]
    # (finite by construction: the loop raises on a non-finite loss; test_a_diverging_model_... checks that)
    losses = [{k: v for k, v in r.items() if k != "step"} for r in result.history]
    assert losses[0] and losses[0] != losses[1] != losses[2]  # every step computed its own losses
    out = model.sample(ema, 5, torch.device("cpu"), **({"sampling_timesteps": 4, "ddim_eta": 0.0} if family == "ddpm" else {}))
    # (in [0, 1] by construction: every sampler clamps) five different images, not one repeated
    assert out.shape == (5, 3, 16, 16) and len({tuple(x.flatten().tolist()) for x in out}) == 5


@pytest.mark.parametrize("family", registry.names("unconditional"))
def test_resuming_from_a_checkpoint_equals_an_uninterrupted_run(family, tmp_path):
    whole, r_whole, ema_whole = run_loop(family, tmp_path, steps=6, ckpt="a")
    run_loop(family, tmp_path, steps=3, ckpt="b")  # "interrupted" after step 3 (steps is not in the fingerprint)
    resumed, r_resumed, ema_resumed = run_loop(family, tmp_path, steps=6, ckpt="b")
    assert r_resumed.resumed_from_step == 3 and r_whole.resumed_from_step is None
    for k in whole.networks:
        assert same_weights(whole.networks[k], resumed.networks[k]), k
    assert same_weights(ema_whole, ema_resumed)
    assert r_whole.history == r_resumed.history


def test_resuming_between_two_curve_points_gives_the_same_curves(tmp_path):
    """A mid-run checkpoint between two log rows: the partial loss window travels with it."""
    cadence = {"log_every": 4, "checkpoint_every_steps": 3}
    _, whole, _ = run_loop("dcgan", tmp_path, steps=6, ckpt="w1", train=cadence)
    run_loop("dcgan", tmp_path, steps=5, ckpt="w2", train=cadence)  # checkpoints at step 3 (mid-run) and 5
    for name in ("last.pt", "last.json"):  # keep only the step-3 one, as if killed before step 5
        (tmp_path / "w2" / name).unlink()
    _, resumed, _ = run_loop("dcgan", tmp_path, steps=6, ckpt="w2", train=cadence)
    assert resumed.resumed_from_step == 3 and [r["step"] for r in whole.history] == [4, 6]
    assert resumed.history == whole.history


def test_a_truncated_checkpoint_is_refused_and_the_previous_one_used(tmp_path):
    run_loop("dcgan", tmp_path, steps=4, ckpt="c")  # checkpoints at 2 and 4 (+ the final one at 4)
    last = tmp_path / "c" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(Exception, match="corrupt or truncated"):
        load_checkpoint(last, "dcgan" + json.dumps(TINY["dcgan"], sort_keys=True))
    model, result, _ = run_loop("dcgan", tmp_path, steps=6, ckpt="c")
    assert any("corrupt or truncated" in r for r in result.refused_checkpoints)
    assert result.resumed_from_step == 4  # prev.pt: the step-4 checkpoint written before the final save
    whole, _, _ = run_loop("dcgan", tmp_path, steps=6, ckpt="fresh")
    assert same_weights(whole.networks["G"], model.networks["G"])


def test_every_checkpoint_refusal_names_its_reason_and_resume_falls_back_in_order(tmp_path):
    """load_checkpoint checks the sidecar, its fingerprint, the SHA-256, the unpickling and the inside,
    in that order, before handing a state over; find_resumable takes last, else prev, else nothing."""
    from animegen.io import save_torch_atomic  # noqa: PLC0415
    from animegen.train import CHECKPOINT_FORMAT, CheckpointError, find_resumable, save_checkpoint  # noqa: PLC0415

    state = lambda step, fp="f": {"format": CHECKPOINT_FORMAT, "fingerprint": fp, "step": step, "w": torch.ones(2) * step}  # noqa: E731
    d = tmp_path / "ckpt"
    save_checkpoint(d, state(1))
    save_checkpoint(d, state(2))
    assert json.loads((d / "last.json").read_text())["step"] == 2 and json.loads((d / "prev.json").read_text())["step"] == 1
    assert load_checkpoint(d / "prev.pt", "f")["step"] == 1
    logged = []
    found, refused = find_resumable(d, "f", 5, logged.append)
    assert (found["step"], refused, logged) == (2, [], [])
    found, refused = find_resumable(d, "f", 1, logged.append)  # last is beyond the run's steps: prev
    assert found["step"] == 1 and refused == ["last.pt: at step 2, beyond steps=1"] and logged == ["checkpoint refused: " + refused[0]]
    assert find_resumable(d, "f", 0, logged.append)[0] is None
    assert find_resumable(tmp_path / "none", "f", 5, logged.append) == (None, [])

    def refusal(path, fp="f") -> str:
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(path, fp)
        return str(e.value)

    assert refusal(d / "last.pt", "g") == "last.pt: made by a different configuration or dataset (fingerprint differs)"
    (d / "prev.json").write_text("{not json")
    assert refusal(d / "prev.pt").startswith("prev.pt: no readable sidecar prev.json (")
    (d / "prev.json").unlink()
    assert refusal(d / "prev.pt").startswith("prev.pt: no readable sidecar prev.json (")
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "last.pt").write_bytes(b"not a zip")
    digest = hashlib.sha256(b"not a zip").hexdigest()
    (odd / "last.json").write_text(json.dumps({"step": 1, "sha256": digest, "fingerprint": "f"}))
    assert refusal(odd / "last.pt").startswith("last.pt: cannot be read: ")
    inner = save_torch_atomic(odd / "last.pt", state(1, fp="other"))  # the sidecar agrees, the file does not
    (odd / "last.json").write_text(json.dumps({"step": 1, "sha256": inner, "fingerprint": "f"}))
    assert refusal(odd / "last.pt") == "last.pt: unexpected format or fingerprint inside the file"
    recorded = save_torch_atomic(odd / "last.pt", {**state(1), "format": CHECKPOINT_FORMAT + 1})
    (odd / "last.json").write_text(json.dumps({"step": 1, "sha256": recorded, "fingerprint": "f"}))
    assert refusal(odd / "last.pt") == "last.pt: unexpected format or fingerprint inside the file"
    (odd / "last.pt").unlink()
    assert refusal(odd / "last.pt") == f"last.pt: corrupt or truncated (SHA-256 None != recorded {recorded})"
    found, refused = find_resumable(odd, "f", 5, logged.append)  # a sidecar without its file is a refusal too
    assert found is None and refused == [f"last.pt: corrupt or truncated (SHA-256 None != recorded {recorded})"]


def test_a_checkpoint_of_another_configuration_is_never_loaded(tmp_path):
    run_loop("dcgan", tmp_path, steps=2, ckpt="d")
    other = {**TINY["dcgan"], "lr": 0.001}
    _, result, _ = run_loop("dcgan", tmp_path, steps=2, ckpt="d", net=other)
    assert result.resumed_from_step is None
    assert result.refused_checkpoints and all("different configuration" in r for r in result.refused_checkpoints)


def test_the_time_budget_stops_training_and_says_so(tmp_path):
    _, result, _ = run_loop("dcgan", tmp_path, steps=1000, time_budget_hours=1e-9)
    assert result.stop_reason == "time_budget" and result.steps_done < 1000


def test_batches_are_deterministic_and_flips_follow_the_seed():
    data = images(5)
    a, b = ImageBank(data, torch.device("cpu"), 1, True), ImageBank(data, torch.device("cpu"), 1, True)
    assert torch.equal(a.batch(3, 4), b.batch(3, 4))
    noflip = ImageBank(data, torch.device("cpu"), 1, False)
    x, y = a.batch(0, 5), noflip.batch(0, 5)
    flipped = [not torch.equal(x[i], y[i]) for i in range(5)]
    assert all(torch.equal(x[i], y[i].flip(-1)) for i in range(5) if flipped[i])
    epoch = torch.cat([noflip.batch(s, 1) for s in range(5)])  # one epoch visits every image once
    assert sorted(epoch.sum(dim=(1, 2, 3)).tolist()) == sorted(noflip.data.float().div(127.5).sub(1).sum(dim=(1, 2, 3)).tolist())
    with pytest.raises(ValueError, match="uint8"):
        ImageBank(data.astype(np.float32), torch.device("cpu"), 1, True)


def test_the_batch_order_and_flips_are_pinned_across_processes_and_versions():
    """A resumed run (another process, maybe another machine) must draw the same batches: the epoch
    orders and flips of seed 1 are written here, as computed from SHA-256 seeds (never Python's hash)."""
    from animegen.train import _mix_seed  # noqa: PLC0415

    data = np.arange(5, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    data[:, :, 0, :] += 100  # the left column says whether an image was flipped
    bank = ImageBank(data, torch.device("cpu"), 1, True)
    assert [bank._perm(e).tolist() for e in range(2)] == [[1, 2, 0, 3, 4], [4, 1, 0, 2, 3]]
    assert ImageBank(data, torch.device("cpu"), 1, True, stream=1)._perm(0).tolist() == [1, 3, 4, 2, 0]  # domain b
    right = lambda x: [round((float(v) + 1) * 127.5) for v in x[:, 0, 0, 1]]  # noqa: E731
    assert right(bank.batch(0, 5)) == [1, 2, 100, 103, 104]  # images 0, 3 and 4 flipped
    # items 3..5 and 6..8 of the endless order: epoch 0's last two, then epoch 1's [4, 1, 0, 2, 3]
    assert right(bank.batch(1, 3)) == [103, 104, 104] and right(bank.batch(2, 3)) == [1, 100, 102]
    assert _mix_seed(1, 1, 0) == 1918752589108818065 and _mix_seed(0, 0, 0) == 5392659312917859048
    assert right(ImageBank(data, torch.device("cpu"), 1, False).batch(0, 5)) == [1, 2, 0, 3, 4]


def test_loop_settings_come_from_their_sections_and_only_the_computation_is_fingerprinted():
    train = {**TRAIN, "seed": 10, "tf32": False, "checkpoint_every_steps": 7, "checkpoint_every_minutes": 3.5, "log_every": 9}
    model_train = {"steps": 11, "time_budget_hours": 2.5, "batch_size": 6, "seed_offset": 2, "hflip": False,
                   "precision": "bf16", "track_fid_every": 0, "ema": {"beta": 0.5, "update_after_step": 4, "update_every": 3}}  # fmt: skip
    cfg = LoopConfig.from_params(train, model_train)
    assert cfg == LoopConfig(steps=11, time_budget_hours=2.5, batch_size=6, seed=12, hflip=False, precision="bf16",
                             tf32=False, ema_beta=0.5, ema_update_after_step=4, ema_update_every=3,
                             checkpoint_every_steps=7, checkpoint_every_minutes=3.5, log_every=9, track_fid_every=0)  # fmt: skip
    assert set(cfg.fingerprint_fields()) == {"batch_size", "seed", "hflip", "precision", "tf32", "ema_beta",
                                             "ema_update_after_step", "ema_update_every", "log_every"}  # fmt: skip
    tracked = LoopConfig.from_params(train, {**model_train, "track_fid_every": 5}, paired=True)
    assert tracked.fingerprint_fields()["track_fid_every"] == 5 and tracked.fingerprint_fields()["paired"] is True


def test_precision_picks_the_autocast_and_fp16_needs_cuda():
    from animegen.train import autocast_for  # noqa: PLC0415

    cpu = torch.device("cpu")
    with autocast_for(cpu, "fp32")():
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for(cpu, "bf16")():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with pytest.raises(RuntimeError, match="precision fp16 needs a CUDA device"):
        autocast_for(cpu, "fp16")


# ------------------------------------------------------------------------------------------ the stages


def _workspace(tmp_path: Path, steps: int = 6, family: str = "dcgan") -> Path:
    ws = copy_workspace(tmp_path / "ws")
    params = load_yaml(ws / "params.yaml")
    params["train"].update(checkpoint_every_steps=1, log_every=1, device="cpu")
    params["sample"].update(n=10, batch_size=4, grid=9, device="cpu")
    name = next(n for n, m in params["models"].items() if m["family"] == family)
    params["models"] = {name: params["models"][name]}
    m = params["models"][name]
    m["train"].update(steps=steps, batch_size=4, track_fid_every=0)  # tests/test_track.py turns it on
    m["net"].update({k: v for k, v in TINY[family].items() if k not in ("lr", "betas")})
    if family == "ddpm":
        m["sample"]["sampling_timesteps"] = 3
    dump_yaml(params, ws / "params.yaml")
    ds = m["dataset"]
    folder = ws / f"data/processed/{ds}/images"
    folder.mkdir(parents=True)
    ids = [f"{i:016x}" for i in range(8)]  # image ids are 16 hex digits
    for i, img in zip(ids, images(8, 32)):
        Image.fromarray(img).save(folder / f"{i}.png")
    write_split(ws / f"data/splits/{ds}.json", {"train": ids[:6], "test": ids[6:]})
    return ws


def _params(ws: Path) -> dict:
    return config.load_params(ws / "params.yaml")


def test_sample_writes_exactly_n_valid_images_reproducibly(tmp_path):
    ws = _workspace(tmp_path)
    params = _params(ws)
    train_stage.run(params, "dcgan", ws)
    first = sample_stage.run(params, "dcgan", ws)
    out = ws / "data/samples/dcgan"
    files = sorted((out / "images").glob("*.png"))
    assert first["n"] == 10 and len(files) == 10
    for f in files:
        with Image.open(f) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    assert Image.open(out / "grid.png").size[0] > 32 * 3
    before = [f.read_bytes() for f in files]
    sample_stage.run(params, "dcgan", ws)
    assert [f.read_bytes() for f in sorted((out / "images").glob("*.png"))] == before
    params["sample"]["seed"] += 1
    sample_stage.run(params, "dcgan", ws)
    assert [f.read_bytes() for f in sorted((out / "images").glob("*.png"))] != before


def test_training_outputs_are_byte_identical_across_reruns(tmp_path):
    ws = _workspace(tmp_path)
    train_stage.run(_params(ws), "dcgan", ws)
    first = {p.name: p.read_bytes() for p in (ws / "data/models/dcgan").iterdir()}
    curves = (ws / "metrics/train/dcgan/metrics.json").read_text()
    import shutil

    shutil.rmtree(ws / "data/checkpoints")
    train_stage.run(_params(ws), "dcgan", ws)
    assert {p.name: p.read_bytes() for p in (ws / "data/models/dcgan").iterdir()} == first
    assert (ws / "metrics/train/dcgan/metrics.json").read_text() == curves


def test_killing_the_train_command_and_rerunning_it_resumes_to_the_same_weights(tmp_path):
    ws = _workspace(tmp_path / "killed", steps=400)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "animegen"), "train", "--model", "dcgan"]
    proc = subprocess.Popen(cmd, cwd=ws, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = ws / "data/checkpoints/dcgan/last.json"

    def step() -> int:
        try:
            return json.loads(meta.read_text())["step"]
        except (OSError, ValueError):  # not there yet, or unlinked between two files of a rotation (by design)
            return -1

    while proc.poll() is None:  # wait for a few checkpoints, then kill hard (no clean-up can run)
        if step() >= 5:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert not (ws / "data/models/dcgan").exists()
    subprocess.run(cmd, cwd=ws, env=env, check=True, capture_output=True)
    info = json.loads((ws / "data/models/dcgan/train.json").read_text())
    assert info["resumed_from_step"] >= 5 and info["steps_done"] == 400

    whole = _workspace(tmp_path / "whole", steps=400)
    subprocess.run(cmd, cwd=whole, env=env, check=True, capture_output=True)
    a = torch.load(ws / "data/models/dcgan/model.pt", weights_only=True)
    b = torch.load(whole / "data/models/dcgan/model.pt", weights_only=True)
    for net in a["networks"]:
        assert all(torch.equal(a["networks"][net][k], b["networks"][net][k]) for k in a["networks"][net])
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert (ws / "metrics/train/dcgan/metrics.json").read_text() == (whole / "metrics/train/dcgan/metrics.json").read_text()


def test_a_diverging_model_fails_with_a_clear_message(tmp_path, monkeypatch):
    ws = _workspace(tmp_path)
    Model = registry.model_class("dcgan")
    monkeypatch.setattr(Model, "train_step", lambda self, batch, step, ctx: {"loss_g": float("nan")})
    with pytest.raises(StageError, match="loss_g is nan at step 1: training diverged"):
        train_stage.run(_params(ws), "dcgan", ws)
    assert not (ws / "data/models/dcgan").exists()


def test_fp16_on_the_cpu_names_the_key(tmp_path):
    ws = _workspace(tmp_path)
    params = _params(ws)
    params["models"]["dcgan"]["train"]["precision"] = "fp16"
    with pytest.raises(StageError, match=r"models\.dcgan\.train\.precision: fp16 needs CUDA"):
        train_stage.run(params, "dcgan", ws)


def test_sampling_a_model_trained_with_other_settings_is_refused(tmp_path):
    ws = _workspace(tmp_path)
    params = _params(ws)
    train_stage.run(params, "dcgan", ws)
    params["models"]["dcgan"]["net"]["nz"] = 9
    with pytest.raises(ArtifactError, match="trained with other settings"):
        sample_stage.run(params, "dcgan", ws)
    (ws / "data/models/dcgan/model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="cannot be read"):
        sample_stage.run(_params(ws), "dcgan", ws)


# ------------------------------------------------------------------------------------- params checks


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p["models"]["dcgan"].update(dataset="nope"), r"models\.dcgan\.dataset: no such dataset 'nope'"),
        (lambda p: p["models"]["dcgan"].update(family="vae"), r"models\.dcgan\.family: 'vae' is not one of"),
        (lambda p: p["models"]["dcgan"]["net"].update(foo=1), r"models\.dcgan\.net\.foo: unknown key"),
        (lambda p: p["models"]["ddpm"]["net"].pop("objective"), r"models\.ddpm\.net\.objective: required key is missing"),
        (lambda p: p["models"]["ddpm"]["sample"].update(sampling_timesteps=5000), r"models\.ddpm\.sample\.sampling_timesteps: must not exceed"),
        (lambda p: p["models"]["ddpm"]["net"].update(dim_mults=[1, 2, 4, 8, 16, 32, 64]), r"models\.ddpm\.net\.dim_mults: .* divisible by 64"),
        (lambda p: [p["datasets"]["face_a_early"].update(size=48), p["compare"]["pairs"].clear()], r"models\.dcgan\.dataset: dcgan needs a power-of-two"),
        (lambda p: p["models"]["stylegan2"]["net"].update(diffaugment="colour"), r"models\.stylegan2\.net\.diffaugment"),
        (lambda p: p["models"]["dcgan"]["train"].update(precision="fp8"), r"models\.dcgan\.train\.precision: 'fp8' is not one of"),
        (lambda p: p["train"].update(device="gpu"), r"train\.device: 'gpu' does not match"),
        (lambda p: p["models"]["dcgan"]["train"]["ema"].update(beta=0), r"models\.dcgan\.train\.ema\.beta: 0 keeps no EMA"),
        (lambda p: p["models"].update({"bad@name": p["models"]["dcgan"]}), r"models: name 'bad@name' must match"),
    ],
)  # fmt: skip
def test_bad_model_params_name_the_key(mutate, message):
    assert_params_error(mutate, message)


def test_every_torch_load_uses_weights_only():
    calls = 0
    for path in (REPO / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                calls += 1
                kw = {k.arg: k.value for k in node.keywords}
                assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, (
                    f"{path}:{node.lineno}: {ast.unparse(node)}"
                )
    assert calls >= 3  # train, sample, inception weights


@pytest.mark.parametrize("objective", ["pred_v", "pred_noise", "pred_x0"])
def test_ddpm_loss_l2_is_the_librarys_own_and_l1_changes_only_the_distance(objective):
    """models.<m>.net.loss: l2 trains with the library's forward; our diffusion_loss with F.mse_loss
    reproduces it draw for draw for each objective's target, so l1 (early releases' loss) differs from
    it in the distance alone."""
    import torch.nn.functional as F

    from animegen.models.base import StepContext
    from animegen.models.ddpm import Model, diffusion_loss

    x01 = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))  # 2 images, 3 channels: never confused
    losses = {}
    for loss in ("l1", "l2"):
        torch.manual_seed(0)
        model = Model({**TINY["ddpm"], "loss": loss, "objective": objective}, 16)
        diffusion = model.networks["diffusion"]
        torch.manual_seed(5)
        library = diffusion(x01)
        ours = {}
        for name, fn in (("l2", F.mse_loss), ("l1", F.l1_loss)):
            torch.manual_seed(5)
            ours[name] = diffusion_loss(diffusion, x01, fn)
        torch.manual_seed(5)
        losses[loss] = model.train_step({"image": x01 * 2 - 1}, 0, StepContext(device=torch.device("cpu")))["loss"]
        assert ours["l2"].item() == pytest.approx(library.item(), rel=1e-6)
        assert losses[loss] == pytest.approx(ours[loss].item(), rel=1e-6)
    assert losses["l1"] != pytest.approx(losses["l2"], rel=1e-5)


def test_the_ema_moves_away_from_the_initial_weights_and_lags_the_live_ones(tmp_path):
    """Resume tests compare EMA with EMA, so they agree even when it never moves: pin that it does."""
    torch.manual_seed(0)
    initial = registry.model_class("dcgan")(TINY["dcgan"], 16).ema_network()  # run_loop's model, before training
    model, _, ema = run_loop("dcgan", tmp_path, steps=6)
    live = model.ema_network()
    for name, p in ema.named_parameters():
        p0, p_live = initial.get_parameter(name), live.get_parameter(name)
        assert not torch.equal(p, p0), f"{name}: the EMA never moved"
        assert not torch.equal(p, p_live), f"{name}: the EMA is the live weights"
        # beta 0.9 over a few steps: the EMA stays nearer the start than the live weights went
        assert (p - p0).norm() < (p_live - p0).norm(), name


def test_the_seed_offset_changes_the_seed_and_the_batches():
    model_train = {"steps": 1, "time_budget_hours": 1.0, "batch_size": 4, "hflip": True, "precision": "fp32",
                   "track_fid_every": 0, "ema": {"beta": 0.0, "update_after_step": 0, "update_every": 1}}  # fmt: skip
    seed = lambda offset: LoopConfig.from_params(TRAIN, {**model_train, "seed_offset": offset}).seed  # noqa: E731
    assert seed(0) == 3407 and seed(5) == 3412  # train.seed + models.<m>.train.seed_offset
    batch = lambda s: ImageBank(images(), torch.device("cpu"), s, hflip=True).batch(0, 4)  # noqa: E731
    assert not torch.equal(batch(seed(0)), batch(seed(5)))


def test_a_dcgan_generator_step_moves_d_of_g_towards_real():
    """The non-saturating generator loss targets "real": with the discriminator held still (lr 0), the
    generator's steps raise D's logit on the same z; a target flipped to "fake" would lower it."""
    from animegen.models.base import StepContext

    torch.manual_seed(0)
    model = registry.model_class("dcgan")({**TINY["dcgan"], "lr": 0.001}, 16)
    for group in model.optimizers["D"].param_groups:
        group["lr"] = 0.0
    G, D = model.networks["G"], model.networks["D"]
    z = torch.randn(16, TINY["dcgan"]["nz"], 1, 1)
    real = torch.from_numpy(images(16)).permute(0, 3, 1, 2).float().div(127.5).sub(1)

    def logit() -> float:
        with torch.no_grad():
            return float(D(G(z)).mean())

    before = logit()
    for step in range(5):
        model.train_step({"image": real}, step, StepContext(torch.device("cpu")))
    assert logit() > before


def _layers(net: torch.nn.Module) -> list[tuple]:
    """Each layer of a Sequential as (kind, in, out, kernel, stride, padding, bias) or (kind, parameter)."""
    from torch import nn  # noqa: PLC0415

    out = []
    for m in net.main:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            out.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], m.bias is not None))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("BN", m.num_features))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("LeakyReLU", m.negative_slope))
        else:
            out.append((type(m).__name__,))
    return out


def test_dcgan_at_64_px_is_the_pytorch_examples_network():
    """nz 100, ngf = ndf = 64 at 64 px: layer for layer the examples' netG and netD (its Sigmoid left to
    BCEWithLogits), with their parameter counts; 128 px adds one block to each side, 16 px is the least."""
    from animegen.models import dcgan  # noqa: PLC0415

    G, D = dcgan.Generator(64, 100, 64), dcgan.Discriminator(64, 64)
    ct, cv = "ConvTranspose2d", "Conv2d"
    assert _layers(G) == [
        (ct, 100, 512, 4, 1, 0, False), ("BN", 512), ("ReLU",), (ct, 512, 256, 4, 2, 1, False), ("BN", 256), ("ReLU",),
        (ct, 256, 128, 4, 2, 1, False), ("BN", 128), ("ReLU",), (ct, 128, 64, 4, 2, 1, False), ("BN", 64), ("ReLU",),
        (ct, 64, 3, 4, 2, 1, False), ("Tanh",)]  # fmt: skip
    assert _layers(D) == [
        (cv, 3, 64, 4, 2, 1, False), ("LeakyReLU", 0.2), (cv, 64, 128, 4, 2, 1, False), ("BN", 128), ("LeakyReLU", 0.2),
        (cv, 128, 256, 4, 2, 1, False), ("BN", 256), ("LeakyReLU", 0.2), (cv, 256, 512, 4, 2, 1, False), ("BN", 512),
        ("LeakyReLU", 0.2), (cv, 512, 1, 4, 1, 0, False)]  # fmt: skip
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert (count(G), count(D)) == (3_576_704, 2_765_568)  # the PyTorch DCGAN tutorial's counts
    assert all(m.inplace for m in D.main if isinstance(m, torch.nn.LeakyReLU))
    assert all(m.inplace for m in G.main if isinstance(m, torch.nn.ReLU))
    assert G(torch.zeros(2, 100, 1, 1)).shape == (2, 3, 64, 64) and D(torch.zeros(2, 3, 64, 64)).shape == (2,)
    assert len(dcgan.Generator(128, 100, 64).main) == len(G.main) + 3 and len(dcgan.Discriminator(128, 64).main) == len(D.main) + 3
    assert _layers(dcgan.Generator(16, 8, 4, channels=1))[0] == (ct, 8, 8, 4, 1, 0, False)  # 4x4 -> 16: two doublings, ngf * 2
    assert _layers(dcgan.Generator(16, 8, 4, channels=1))[-2] == (ct, 4, 1, 4, 2, 1, False)
    for bad in (8, 24, 0, -16):
        with pytest.raises(ValueError, match=f"power-of-two image size of at least 16 px, got {bad}"):
            dcgan.Generator(bad, 8, 4)


def test_dcgan_initialisation_optimisers_and_samples_are_the_examples():
    from torch import nn  # noqa: PLC0415

    torch.manual_seed(0)
    model = registry.model_class("dcgan")({"nz": 100, "ngf": 64, "ndf": 64, "lr": 0.0003, "betas": [0.4, 0.98]}, 64)
    G, D = model.networks["G"], model.networks["D"]
    convs = torch.cat([m.weight.detach().flatten() for net in (G, D) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    bns = [m for net in (G, D) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    gammas = torch.cat([m.weight.detach() for m in bns])
    assert abs(float(convs.mean())) < 1e-3 and float(convs.std()) == pytest.approx(0.02, rel=0.01)  # N(0, 0.02)
    assert float(gammas.mean()) == pytest.approx(1.0, abs=0.005) and float(gammas.std()) == pytest.approx(0.02, rel=0.1)
    assert all(float(m.bias.abs().max()) == 0.0 for m in bns)
    for name in ("G", "D"):
        group = model.optimizers[name].param_groups[0]
        assert isinstance(model.optimizers[name], torch.optim.Adam) and (group["lr"], group["betas"]) == (0.0003, (0.4, 0.98))
    assert {id(p) for p in model.optimizers["G"].param_groups[0]["params"]} == {id(p) for p in G.parameters()}
    assert {id(p) for p in model.optimizers["D"].param_groups[0]["params"]} == {id(p) for p in D.parameters()}
    assert model.ema_network() is G
    G.train()
    torch.manual_seed(3)
    x = model.sample(G, 4, torch.device("cpu"))
    assert G.training  # sampling ran in eval mode (BatchNorm's running statistics) and restored the mode
    G.eval()
    torch.manual_seed(3)
    with torch.no_grad():
        expected = G(torch.randn(4, 100, 1, 1)).add(1).div(2)
    torch.testing.assert_close(x, expected)  # tanh's [-1, 1] mapped to [0, 1]


def test_a_dcgan_step_is_one_discriminator_step_then_one_non_saturating_generator_step():
    """The losses a train_step reports, recomputed by hand from copies of the networks taken before it:
    D's loss is BCE(D(x), 1) + BCE(D(G(z)), 0) before any update, G's is BCE(D(G(z)), 1) on the same
    fake batch through the discriminator D has just become."""
    import copy  # noqa: PLC0415

    import torch.nn.functional as F  # noqa: PLC0415

    from animegen.models.base import StepContext  # noqa: PLC0415

    torch.manual_seed(0)
    model = registry.model_class("dcgan")({**TINY["dcgan"], "lr": 0.001}, 16)
    real = torch.from_numpy(images(8)).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    model.train_step({"image": real}, 0, StepContext(torch.device("cpu")))  # away from the initial weights
    G0, D0 = copy.deepcopy(model.networks["G"]), copy.deepcopy(model.networks["D"])
    torch.manual_seed(5)
    losses = model.train_step({"image": real}, 1, StepContext(torch.device("cpu")))
    D1 = model.networks["D"]
    torch.manual_seed(5)
    z = torch.randn(8, TINY["dcgan"]["nz"], 1, 1)  # the step's own draw
    ones, zeros = torch.ones(8), torch.zeros(8)
    with torch.no_grad():
        fake = G0(z)
        loss_d = F.binary_cross_entropy_with_logits(D0(real), ones) + F.binary_cross_entropy_with_logits(D0(fake), zeros)
        loss_g = F.binary_cross_entropy_with_logits(copy.deepcopy(D1)(fake), ones)  # a copy: BN's running stats stay
    assert losses["loss_d"] == pytest.approx(float(loss_d), rel=1e-5)
    assert losses["loss_g"] == pytest.approx(float(loss_g), rel=1e-5)
    assert not torch.equal(next(D0.parameters()), next(D1.parameters()))  # D stepped
    assert not torch.equal(next(G0.parameters()), next(model.networks["G"].parameters()))  # and then G


def test_the_ddpm_gets_every_setting_whose_library_default_changed():
    """timesteps, objective, beta schedule, dropout, channels, [0, 1] images, Adam's settings and the
    clipping norm all reach the library: its defaults moved across releases (module docstring)."""
    from denoising_diffusion_pytorch.denoising_diffusion_pytorch import cosine_beta_schedule, sigmoid_beta_schedule  # noqa: PLC0415

    from animegen.models import ddpm  # noqa: PLC0415

    net = {**TINY["ddpm"], "timesteps": 30, "objective": "pred_x0", "beta_schedule": "cosine", "dropout": 0.25,
           "lr": 0.0003, "betas": [0.8, 0.95], "max_grad_norm": 0.5}  # fmt: skip
    model = ddpm.Model(net, 16, channels=1)
    diffusion = model.networks["diffusion"]
    assert (diffusion.num_timesteps, diffusion.objective, diffusion.channels, diffusion.image_size) == (30, "pred_x0", 1, (16, 16))
    assert model.cfg == net  # the step reads its settings from here (loss, max_grad_norm)
    torch.testing.assert_close(diffusion.betas.double(), cosine_beta_schedule(30).double(), rtol=1e-6, atol=1e-9)
    assert not torch.allclose(cosine_beta_schedule(30).double(), sigmoid_beta_schedule(30).double())
    assert float(diffusion.normalize(torch.zeros(1))) == -1.0  # auto_normalize: the loop hands it [0, 1]
    assert 0.25 in {m.p for m in diffusion.model.modules() if isinstance(m, torch.nn.Dropout)}  # the blocks' dropout
    group = model.optimizers["diffusion"].param_groups[0]
    assert (group["lr"], group["betas"]) == (0.0003, (0.8, 0.95)) and model.ema_network() is diffusion

    from animegen.models.base import StepContext  # noqa: PLC0415

    norms = []

    class Recording(StepContext):
        def backward_step(self, loss, optimizer, max_grad_norm=None):
            norms.append(max_grad_norm)
            super().backward_step(loss, optimizer, max_grad_norm)

    x = torch.rand(2, 1, 16, 16) * 2 - 1
    model.train_step({"image": x}, 0, Recording(torch.device("cpu")))
    ddpm.Model({**net, "max_grad_norm": 0.0}, 16, channels=1).train_step({"image": x}, 0, Recording(torch.device("cpu")))
    assert norms == [0.5, None]  # 0 turns clipping off
    for bad, factor in ((17, 2), (18, 4)):
        with pytest.raises(ValueError, match=f"needs an image size divisible by {factor}, got {bad}"):
            ddpm.Model({**net, "dim_mults": [1, 2] if factor == 2 else [1, 2, 4]}, bad)
    ddpm.check_size({"dim_mults": [1, 2, 4]}, 12)  # divisible by 4: accepted


def test_ddpm_sampling_switches_to_ddim_below_the_training_steps_and_restores_the_mode():
    from animegen.models import ddpm  # noqa: PLC0415

    torch.manual_seed(0)
    model = ddpm.Model({**TINY["ddpm"], "timesteps": 6}, 16)
    net = model.networks["diffusion"]
    net.train()
    seen = []
    original = type(net).sample

    def spy(self, batch_size=16, **kwargs):
        seen.append((self.sampling_timesteps, self.is_ddim_sampling, self.ddim_sampling_eta, self.training))
        return original(self, batch_size=batch_size, **kwargs)

    type(net).sample = spy
    try:
        full = model.sample(net, 2, torch.device("cpu"))
        ddim = model.sample(net, 2, torch.device("cpu"), sampling_timesteps=3, ddim_eta=0.5)
        model.sample(net, 1, torch.device("cpu"), sampling_timesteps=6)
    finally:
        type(net).sample = original
    assert seen == [(6, False, 0.0, False), (3, True, 0.5, False), (6, False, 0.0, False)]
    assert net.training  # eval while sampling, the caller's mode after
    assert full.shape == ddim.shape == (2, 3, 16, 16) and full.dtype == torch.float32
    with pytest.raises(ValueError, match="sampling_timesteps 7 exceeds the model's timesteps 6"):
        model.sample(net, 1, torch.device("cpu"), sampling_timesteps=7)
    net.self_condition = True
    with pytest.raises(ValueError, match="^diffusion_loss supports neither self-conditioning nor offset noise$"):
        ddpm.diffusion_loss(net, torch.rand(1, 3, 16, 16), torch.nn.functional.l1_loss)


def test_samples_become_bytes_as_torchvision_saves_them_in_seeded_batches():
    from animegen.models import sampling  # noqa: PLC0415

    x = torch.tensor([0.0, 1.0, 0.5, 0.998, 0.001, 1.5, -0.2, 127.4 / 255]).view(1, 1, 2, 4).expand(1, 3, 2, 4)
    out = sampling.to_uint8(x.clone())
    assert out.shape == (1, 2, 4, 3) and out.dtype == np.uint8  # channels last
    assert out[0, :, :, 0].ravel().tolist() == [0, 255, 128, 254, 0, 255, 0, 127]  # x * 255 + 0.5, clamped, truncated
    import torchvision.utils  # noqa: PLC0415

    buf = torchvision.utils.make_grid(x.clone(), nrow=1, padding=0).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    assert np.array_equal(out[0], buf.permute(1, 2, 0).numpy())

    net, cpu = torch.nn.Identity(), torch.device("cpu")

    class Fake:
        sizes: list = []

        def sample(self, given, n, device, **cfg):
            assert given is net and device is cpu  # the caller's network and device reach the model
            self.sizes.append((n, cfg))
            return torch.rand(n, 3, 2, 2)

        def translate(self, given, x):
            assert given is net
            return x.add(1).div(2)  # the identity, in [-1, 1] -> [0, 1]

    fake = Fake()
    batches = list(sampling.iter_samples(fake, net, 5, 2, 7, cpu, {"ddim_eta": 0.0}))
    assert [b.shape[0] for b in batches] == [2, 2, 1] and fake.sizes == [(2, {"ddim_eta": 0.0}), (2, {"ddim_eta": 0.0}), (1, {"ddim_eta": 0.0})]
    again = sampling.generate(fake, net, 5, 2, 7, cpu, {"ddim_eta": 0.0})
    assert np.array_equal(np.concatenate(batches), again)  # the seed restarts the stream
    assert not np.array_equal(again, sampling.generate(fake, net, 5, 2, 8, cpu, {"ddim_eta": 0.0}))
    imgs = images(5, size=4)
    assert np.array_equal(sampling.translate_images(fake, net, imgs, 2, cpu), imgs)  # exact round trip

    class OnDevice(Fake):
        def translate(self, given, x):
            assert x.device.type == "meta"  # the batch was moved to the caller's device before the model saw it
            return torch.zeros(x.shape)

    assert sampling.translate_images(OnDevice(), net, imgs, 2, torch.device("meta")).shape == (5, 4, 4, 3)


@pytest.mark.parametrize("dim_mults", [[1, 2, 4, 8], [1, 4, 16]])  # study A's DDPM and its hourglass DDPM
def test_the_ddpm_unet_has_the_configured_depth_and_widths(dim_mults):
    """Without ``dim_mults`` reaching the U-Net, the hourglass DDPM would be the plain one."""
    from torch import nn

    model = registry.model_class("ddpm")({**TINY["ddpm"], "dim_mults": dim_mults}, 16)
    unet = model.networks["diffusion"].model
    assert len(unet.downs) == len(dim_mults) and len(unet.ups) == len(dim_mults)
    widths = [[m.out_channels for m in block.modules() if isinstance(m, nn.Conv2d)][-1] for block in unet.downs]
    assert widths == [TINY["ddpm"]["dim"] * m for m in dim_mults]
    assert unet.mid_block1.block1.proj.out_channels == TINY["ddpm"]["dim"] * dim_mults[-1]
