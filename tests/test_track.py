"""FID over training: the loop's generator snapshots and the track stage, on tiny real models and real FID weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_params_error, dump_yaml, load_yaml
from test_train import _workspace, run_loop, same_weights

from animegen import config
from animegen.artifacts import ArtifactError
from animegen.artifacts.model import snapshot_steps
from animegen.plots import ema
from animegen.stages import reference as reference_stage
from animegen.stages import track as track_stage
from animegen.stages import train as train_stage


def _snapshots(directory: Path) -> dict[int, dict]:
    return {s: torch.load(p, weights_only=True) for s, p in snapshot_steps(directory)}


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------- the loop


def test_snapshots_every_n_steps_and_at_the_last_never_change_the_trained_weights(tmp_path):
    tracked, result, ema_tracked = run_loop("dcgan", tmp_path, steps=5, ckpt="on", track_fid_every=2)
    plain, _, ema_plain = run_loop("dcgan", tmp_path, steps=5, ckpt="off")
    snaps = _snapshots(tmp_path / "on" / "snapshots")
    assert sorted(snaps) == [2, 4, 5] and not (tmp_path / "off" / "snapshots").exists()
    assert same_weights(tracked.networks["G"], plain.networks["G"]) and same_weights(ema_tracked, ema_plain)
    assert _equal_states(snaps[5]["generator"], plain.networks["G"].state_dict())
    assert _equal_states(snaps[5]["ema"], ema_plain.state_dict())
    assert not _equal_states(snaps[2]["generator"], snaps[4]["generator"])


def test_a_resumed_run_keeps_exactly_the_snapshots_of_an_uninterrupted_one(tmp_path):
    run_loop("dcgan", tmp_path, steps=6, ckpt="whole", track_fid_every=2)
    run_loop("dcgan", tmp_path, steps=3, ckpt="cut", track_fid_every=2)  # a finished shorter run: 2 and 3
    assert sorted(_snapshots(tmp_path / "cut" / "snapshots")) == [2, 3]
    _, result, _ = run_loop("dcgan", tmp_path, steps=6, ckpt="cut", track_fid_every=2)
    assert result.resumed_from_step == 3
    whole, cut = _snapshots(tmp_path / "whole" / "snapshots"), _snapshots(tmp_path / "cut" / "snapshots")
    assert sorted(whole) == sorted(cut) == [2, 4, 6]  # the off-cadence step-3 point went with the resume
    for step in whole:
        assert _equal_states(whole[step]["generator"], cut[step]["generator"]), step
        assert _equal_states(whole[step]["ema"], cut[step]["ema"]), step


def test_a_fresh_start_drops_snapshots_of_an_earlier_run(tmp_path):
    run_loop("dcgan", tmp_path, steps=4, ckpt="c", track_fid_every=2)
    for name in ("last.pt", "last.json", "prev.pt", "prev.json"):
        (tmp_path / "c" / name).unlink()  # no checkpoint to resume from: training starts at step 0
    stale = tmp_path / "c" / "snapshots" / "step_00000004.pt"
    stale.write_bytes(b"from another run")
    run_loop("dcgan", tmp_path, steps=2, ckpt="c", track_fid_every=2)
    assert sorted(_snapshots(tmp_path / "c" / "snapshots")) == [2]


# ------------------------------------------------------------------------------------------ the stage


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A tiny DCGAN trained with snapshots every 2 of 5 steps, and real reference statistics."""
    ws = _workspace(tmp_path_factory.mktemp("track"), steps=5)
    params = load_yaml(ws / "params.yaml")
    params["models"]["dcgan"]["train"]["track_fid_every"] = 2
    params["track"].update(n=4, batch_size=3)
    params["inception"].update(device="cpu", batch_size=8)
    params["reference"]["floor_splits"] = 2
    dump_yaml(params, ws / "params.yaml")
    p = config.load_params(ws / "params.yaml")
    train_stage.run(p, "dcgan", ws)
    reference_stage.run(p, "face_a_early", ws)
    return ws


def test_track_measures_every_snapshot_and_smooths_the_curve(ws):
    params = config.load_params(ws / "params.yaml")
    assert json.loads((ws / "data/models/dcgan/train.json").read_text())["snapshot_steps"] == [2, 4, 5]
    report = track_stage.run(params, "dcgan", ws)
    out = json.loads((ws / "metrics/track/dcgan.record.json").read_text())
    assert out.pop("format") == "animegen.track/1"
    assert report["tracked"] and out["tracked"] and out["steps"] == [2, 4, 5] and out["points"] == 3
    assert all(np.isfinite(out["fid"])) and len(set(out["fid"])) == 3
    assert out["fid_ema"] == pytest.approx(list(ema(out["fid"], 0.9)))
    assert out["best_fid"] == min(out["fid"]) and out["last_fid"] == out["fid"][-1]
    assert out["n_per_point"] == 4 and out["generator"] == "ema" and len(out["inception_weights"]["sha256"]) == 64
    # the metrics file: the numbers a user compares across experiments, nothing else
    metrics = json.loads((ws / "metrics/track/dcgan.json").read_text())
    assert metrics == {k: out[k] for k in ("best_fid", "best_step", "last_fid", "last_fid_ema")}
    folder = ws / "metrics/track/dcgan"
    rows = [line.split("\t") for line in (folder / "fid.tsv").read_text().splitlines()]
    assert rows[0] == ["step", "fid"] and [int(r[0]) for r in rows[1:]] == [2, 4, 5]
    assert [float(r[1]) for r in rows[1:]] == pytest.approx(out["fid"], abs=1e-6)
    assert (folder / "fid_ema.tsv").read_text().startswith("step\tfid_ema\n")
    assert (folder / "fid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    first = {p.name: p.read_bytes() for p in folder.iterdir()}
    track_stage.run(params, "dcgan", ws)  # the same noise and weights: the same bytes
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first


def test_an_untracked_model_gets_an_empty_curve_and_says_why(ws, tmp_path):
    other = tmp_path / "ws"
    shutil.copytree(ws, other, symlinks=True)
    params = load_yaml(other / "params.yaml")
    params["models"]["dcgan"]["train"]["track_fid_every"] = 0
    dump_yaml(params, other / "params.yaml")
    p = config.load_params(other / "params.yaml")
    train_stage.run(p, "dcgan", other)
    assert not (other / "data/models/dcgan/snapshots").exists()
    assert track_stage.run(p, "dcgan", other) == {"model": "dcgan", "tracked": False}
    out = json.loads((other / "metrics/track/dcgan.record.json").read_text())
    assert out["tracked"] is False and "track_fid_every 0" in out["reason"]
    assert json.loads((other / "metrics/track/dcgan.json").read_text()) == {}  # no number to compare
    assert list((other / "metrics/track/dcgan").iterdir()) == []


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda d: (d / "step_00000004.pt").unlink(), r"holds steps \[2, 5\], train\.json lists \[2, 4, 5\]"),
        (lambda d: (d / "step_00000004.pt").write_bytes(b"truncated"), r"step_00000004\.pt: cannot be read"),
        (lambda d: torch.save({**torch.load(d / "step_00000004.pt", weights_only=True), "fingerprint": "x"},
                              d / "step_00000004.pt"), r"step_00000004\.pt is not a snapshot of this training run"),
    ],
    ids=["missing", "truncated", "foreign"],
)  # fmt: skip
def test_a_damaged_snapshot_stops_the_stage_and_writes_nothing(ws, tmp_path, damage, message):
    other = tmp_path / "ws"
    shutil.copytree(ws, other, symlinks=True)
    shutil.rmtree(other / "metrics/track", ignore_errors=True)  # an earlier test may have tracked it
    damage(other / "data/models/dcgan/snapshots")
    with pytest.raises(ArtifactError, match=message):
        track_stage.run(config.load_params(other / "params.yaml"), "dcgan", other)
    assert not (other / "metrics/track/dcgan").exists() and not (other / "metrics/track/dcgan.json").exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p["track"].update(n=1), r"track\.n: 1 is less than the minimum of 2"),
        (lambda p: p["track"].update(smoothing=1.0), r"track\.smoothing"),
        (lambda p: p["models"]["dcgan"]["train"].update(track_fid_every=-1), r"models\.dcgan\.train\.track_fid_every"),
        (lambda p: p["models"]["dcgan"]["train"].update(steps=300, track_fid_every=301),
         r"models\.dcgan\.train\.track_fid_every: 301 is more than steps \(300\)"),
        (lambda p: p["models"].update(track=p["models"]["dcgan"]), r"models\.track: reserved name"),
    ],
    ids=["n", "smoothing", "negative", "beyond-steps", "reserved-name"],
)  # fmt: skip
def test_bad_tracking_params_name_the_key(mutate, message):
    assert_params_error(mutate, message)


def test_a_long_curve_title_stays_inside_the_figure():
    """The track stage's title is long ("<model>: FID of N samples vs <dataset> (<images>), over training"):
    it is wrapped and laid out inside the figure, never cut at its edges."""
    import io

    from PIL import Image

    from animegen.plots import training_curves_png

    title = "dcgan_cam_random: FID of 64 samples vs face_a_mixed (train), over training"
    png = Image.open(io.BytesIO(training_curves_png([{"step": 1, "fid": 3.0}, {"step": 2, "fid": 2.0}], title)))
    ink = np.asarray(png.convert("L")) < 128
    assert not ink[:, :2].any() and not ink[:, -2:].any() and not ink[:2].any()  # nothing touches the edges


@pytest.mark.parametrize("keys, title", [
    (["fid"], "a_model_name_far_longer_than_any_line_of_the_figure_without_spaces: FID of 1024 samples vs face_a_mixed (all), over training"),
    (["loss_d", "loss_g", "r1", "score_fake", "score_real"], "stylegan2 (stylegan2) training losses " * 6),
    ([], "no points yet"),
])  # fmt: skip
def test_every_text_of_a_curve_figure_is_inside_its_canvas(keys, title):
    """Checked at the rendered size: the figure function itself refuses to save a cut title, label,
    tick label or legend (layout_problems; the suite makes its warning an error), so a caller cannot get one."""
    from animegen.plots import training_curves_png

    rows = [{"step": s, **{k: 10.0 ** (s % 5) * (1 + i) for i, k in enumerate(keys)}} for s in range(0, 200000, 25000)]
    assert training_curves_png(rows, title)[:8] == b"\x89PNG\r\n\x1a\n"


def test_layout_problems_names_what_the_canvas_cuts():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from animegen.plots import layout_problems

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title("short")
    ax.set_xticks([]), ax.set_yticks([])  # the default margins (no layout engine) leave no room for tick labels
    assert layout_problems(fig) == []  # nothing cut
    fig.suptitle("a title far too long for a figure two inches wide, never wrapped")
    ax.legend(["a legend placed outside"], loc="upper left", bbox_to_anchor=(1.2, 1.0))
    assert layout_problems(fig) == ["figure of 200x200 px cuts the title, panel 'short' legend at its edges"]
    plt.close(fig)


def test_layout_problems_names_overlapping_tick_labels():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from animegen.plots import layout_problems

    fig, ax = plt.subplots(figsize=(3, 2), layout="constrained")
    ax.set_title("fid")
    ax.plot([0, 175000], [1, 2])
    ax.set_xticks(range(0, 200000, 25000))  # eight six-digit labels in three inches
    assert layout_problems(fig) == ["panel 'fid': its x tick labels overlap"]
    plt.close(fig)


def test_grid_texts_stay_inside_the_image():
    """The audit and translation grids write ids and distances with Pillow, which clips at the edge
    without a word: a long id widens the image instead."""
    from types import SimpleNamespace

    from animegen.plots import audit_image, columns_grid

    def right_edge_ink(img) -> bool:
        return bool((np.asarray(img.convert("L"))[:, -3:] < 128).any())

    rng = np.random.default_rng(0)
    samples, train = rng.integers(0, 255, (2, 2, 16, 16, 3), dtype=np.uint8)
    mae = SimpleNamespace(d1=np.array([1.0, 2.0]), d2=np.array([3.0, 4.0]), ratio=np.array([0.3, 0.5]), nearest_index=np.array([0, 1]))
    long_id = "0123456789abcdef" * 4  # a SHA-256 id
    audit = audit_image(samples, ["000000", "000001"], train, [long_id, "a1"], mae, 2)
    assert audit.width > 300 and not right_edge_ink(audit)  # 300: the width short ids get
    grid = columns_grid([samples, train], ["input", "output"], [long_id, "short"])
    assert grid.width > 2 * (128 + 6) + 6 and not right_edge_ink(grid)
    narrow = columns_grid([samples, train], ["input", "output"], ["a", "b"])
    assert narrow.width == 2 * (128 + 6) + 6  # short labels: the images set the width, as before
