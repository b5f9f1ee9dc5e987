"""params.yaml: both YAML loaders agree, the schema names the bad key, the CLI exits 2 writing nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, dump_yaml, load_yaml
from ruamel.yaml import YAML

from animegen import cli, codedeps
from animegen.config import ParamsError, load_params, parse_yaml, validate


def test_project_params_read_the_same_with_pyyaml_and_ruamel():
    text = (REPO / "params.yaml").read_text()
    assert yaml.safe_load(text) == YAML(typ="safe", pure=True).load(text)
    assert yaml.load(text, Loader=yaml.FullLoader) == YAML(typ="safe").load(text)


def test_project_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert set(params) == {"datasets", "collect", "cutout", "resize", "split", "train", "sample", "models",
                           "inception", "reference", "metrics", "evaluate", "compare", "cam", "cam_classifier",
                           "cam_select", "track", "translators", "translate", "evaluate_translation", "survey", "derive"}  # fmt: skip


def test_every_stage_reads_the_section_of_its_name_and_shared_settings_live_once():
    params = load_params(REPO / "params.yaml")
    # summary has no settings; train_translator reads the loop's train: and its translators.<t> (as train does)
    # survey_score reads survey.bootstrap (the survey's own section); track_translator track: (as track does)
    assert {s for s in codedeps.stages() if s not in params} == {"summary", "train_translator", "survey_score", "track_translator"}
    # the feature extractor's device and threads, KID and memorisation settings: one place each
    for key in ("device", "cpu_threads", "batch_size"):
        assert [s for s in ("inception", "track", "evaluate", "compare", "reference") if key in params[s]] == (
            ["inception", "track"] if key == "batch_size" else ["inception"])  # track.batch_size is the generator's
    for key in ("kid_subsets", "kid_subset_size", "memorisation_threshold", "seed"):
        assert key in params["metrics"] and key not in params["evaluate"] and key not in params["compare"]


def test_a_typo_in_a_section_name_is_named_with_the_closest_valid_key():
    params = parse_yaml((REPO / "params.yaml").read_text())
    params["cutuot"] = params.pop("cutout")
    with pytest.raises(ParamsError, match=r"^cutuot: unknown key \(did you mean 'cutout'\? allowed here: "):
        validate(params, REPO)


def test_the_paper_profile_is_valid_and_differs_from_the_demo_only_in_values(tmp_path):
    """workflow/params/paper.yaml is one `cp` away: same keys, study A's values (128 px, 12 h, seed 3407)."""
    paper = parse_yaml((REPO / "workflow/params/paper.yaml").read_text())
    demo = load_params(REPO / "params.yaml")
    (tmp_path / "data/sources/illustrator/icons").mkdir(parents=True)
    for name in ("release_early", "release_later", "other_artist"):
        (tmp_path / f"data/sources/{name}/images").mkdir(parents=True)
    validate(paper, tmp_path)
    # study A's four models; the demo adds study C's two DCGANs on a CAM selection and its random control
    assert set(paper) == set(demo) and set(paper["models"]) == set(demo["models"]) - {"dcgan_cam", "dcgan_cam_random"}
    assert paper["cam_select"] == {} and all(m["split"] == m["dataset"] for m in paper["models"].values())
    for name, m in paper["models"].items():
        assert m.keys() == demo["models"][name].keys() and m["net"].keys() == demo["models"][name]["net"].keys()
        assert m["train"]["time_budget_hours"] == 12.0 and m["train"]["hflip"]
    assert paper["train"]["seed"] == 3407 and paper["train"]["tf32"] and paper["sample"]["n"] == 1024
    assert {ds["size"] for ds in paper["datasets"].values()} == {128}
    assert paper["models"]["ddpm"]["net"]["dim"] == 64 and paper["models"]["ddpm"]["net"]["dim_mults"] == [1, 2, 4, 8]
    assert paper["models"]["ddpm_hourglass"]["net"]["dim_mults"] == [1, 4, 16]
    # study A's protocol: every dataset as it is (no cutout, no trimming) with no held-out images, every
    # model measured against all images, seed 3407 with no per-model offset, TF32 in sampling too
    for ds in paper["datasets"].values():
        assert ds["cutout"] == {"method": "none"} and ds["resize"] == {"trim_to_foreground": False}
        assert ds["split"] == {"test": 0}
    assert all(m["reference"] == "all" and m["train"]["seed_offset"] == 0 for m in paper["models"].values())
    assert paper["sample"]["tf32"] and paper["sample"]["seed"] == 3407
    # study A's Table 1 over whole datasets: one artist's two releases, and two artists
    pairs = paper["compare"]["pairs"]
    assert {p["images"] for p in pairs.values()} == {"all"} and len(pairs) == 2
    assert {(p["reference"], p["candidate"]) for p in pairs.values()} == {
        ("release_early", "release_later"), ("release_early", "other_artist")}
    for m in ("ddpm", "ddpm_hourglass"):
        assert paper["models"][m]["net"]["loss"] == "l2" and paper["models"][m]["net"]["objective"] == "pred_v"


def test_the_study_c_profile_is_valid_and_holds_the_studys_comparison_and_ablations(tmp_path):
    """workflow/params/study_c.yaml: same keys as the demo, study C's sizes, counts and networks."""
    study = parse_yaml((REPO / "workflow/params/study_c.yaml").read_text())
    demo = load_params(REPO / "params.yaml")
    for name in ("ffhq", "animeface"):
        (tmp_path / f"data/sources/{name}/images").mkdir(parents=True)
    validate(study, tmp_path)
    assert set(study) == set(demo) and study["models"] == {} and study["compare"]["pairs"] == {}
    assert {ds["size"] for ds in study["datasets"].values()} == {256}
    assert all(ds["split"] == {"test": 50} for ds in study["datasets"].values())  # 50 test images
    sel = study["cam_select"]["ffhq_cam"]
    assert sel["dataset"] == "ffhq" and sel["n"] == 500 and sel["target"] == "negative" and sel["min_confidence"] > 0
    runs = {name: (t["source"]["split"], t["net"]["cam_generator"], t["net"]["cam_discriminator"])
            for name, t in study["translators"].items()}  # fmt: skip
    assert runs == {"cyclegan_random": ("ffhq_cam_random", False, False), "cyclegan_cam": ("ffhq_cam", True, True),
                    "cyclegan_selection_only": ("ffhq_cam", False, False),
                    "cyclegan_attention_only": ("ffhq_cam_random", True, True)}  # fmt: skip
    for t in study["translators"].values():
        assert t.keys() == demo["translators"]["cyclegan"].keys() and t["net"].keys() == demo["translators"]["cyclegan"]["net"].keys()
        net = t["net"]
        assert (net["ngf"], net["ndf"], net["n_blocks"], net["lambda_cyc"], net["lambda_identity"]) == (64, 64, 4, 10.0, 0.0)
        assert t["train"]["steps"] == 100 * 500 and t["train"]["batch_size"] == 1  # 100 epochs of 500 photos
        assert net["lr_constant_steps"] + net["lr_decay_steps"] == t["train"]["steps"]
        assert t["target"]["dataset"] == "animeface" and t["train"]["seed_offset"] == 0


def test_the_study_d_profile_is_valid_and_holds_the_studys_comparison(tmp_path):
    """workflow/params/study_d.yaml: same keys as the demo, study D's data, weights and its four models."""
    import torch
    import torchvision

    study = parse_yaml((REPO / "workflow/params/study_d.yaml").read_text())
    demo = load_params(REPO / "params.yaml")
    for name in ("photos", "anime"):
        (tmp_path / f"data/sources/{name}/images").mkdir(parents=True)
    with pytest.raises(ParamsError, match=r"translators\.animegan\.net\.content_backbone\.weights: no such file: weights/vgg19"):
        validate(study, tmp_path)  # VGG19 and ResNet101 are the user's files
    (tmp_path / "weights").mkdir()
    for arch, file in (("vgg19", "vgg19-dcbb9e9d.pth"), ("resnet101", "resnet101-63fe2227.pth")):
        torch.save(getattr(torchvision.models, arch)(weights=None).state_dict(), tmp_path / "weights" / file)
    validate(study, tmp_path)
    assert set(study) == set(demo) and study["models"] == {} and study["cam_select"] == {}
    assert {ds["size"] for ds in study["datasets"].values()} == {256}
    assert study["derive"]["edge_smooth"] == ["anime"] and study["derive"]["faces"] == {"photos": "mtcnn"}
    nets = {name: t["net"] for name, t in study["translators"].items()}
    assert list(nets) == ["animegan", "animegan_skin", "animegan_skin_face", "animegan_d"]
    assert [(n["skin_weight"], n["face_weight"], n["huber"], n["content_backbone"]["arch"]) for n in nets.values()] == [
        (0.0, 0.0, [], "vgg19"), (2.8, 0.0, [], "vgg19"), (2.8, 2.0, [], "vgg19"),
        (2.8, 2.0, ["content", "gram", "color", "skin", "face"], "mobilenet_v2")]  # fmt: skip
    for name, t in study["translators"].items():
        n = t["net"]
        assert t.keys() == demo["translators"]["animegan"].keys() and n.keys() == demo["translators"]["animegan"]["net"].keys()
        assert (n["lr_g"], n["lr_d"], n["adv_weight"], n["color_weight"], n["ch"], n["huber_delta"]) == (8e-5, 1.6e-4, 300.0, 10.0, 64, 1.0)
        assert (n["content_weight"], n["gram_weight"]) == ((1.5, 3.0) if name == "animegan" else (3.0, 3.5))
        assert t["train"]["steps"] == 100 * 834 and t["train"]["batch_size"] == 6 and n["init_steps"] == 5 * 834
    assert study["survey"]["scale"] == [0, 10] and study["survey"]["per_model"] * 2 == 100


@pytest.mark.parametrize("text, value", [("5e-05", 5e-05), ("2e-4", 2e-4), ("2.0e-4", 2e-4), ("yes", "yes"), ("on", "on"),
                                         ("0o17", 15), ("1e+16", 1e16)])  # fmt: skip
def test_params_are_read_as_dvc_reads_them(text, value):
    """YAML 1.2, as DVC reads (and `dvc exp run -S` writes: 0.00005 becomes `5e-05`, which YAML 1.1
    would read as a string); the Snakefile takes its config from the same reader."""
    parsed = parse_yaml(f"a:\n  v: {text}\n")["a"]["v"]
    assert parsed == value and type(parsed) is type(value)


def test_a_yaml_1_1_boolean_is_a_named_type_error():
    params = parse_yaml((REPO / "params.yaml").read_text().replace("use_ema: true", "use_ema: yes", 1))
    with pytest.raises(ParamsError, match=r"use_ema: expected boolean, got string 'yes'"):
        validate(params, root=REPO)


def _broken(mutate):
    params = parse_yaml((REPO / "params.yaml").read_text())
    mutate(params)
    with pytest.raises(ParamsError) as e:
        validate(params, root=REPO)
    return str(e.value)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p["collect"].update(foo=1), "collect.foo: unknown key"),
        (lambda p: p.update(trainn={}), "trainn: unknown key"),
        (lambda p: p["collect"].update(min_side="12"), "collect.min_side: expected integer, got string '12'"),
        (lambda p: p["collect"]["urls"].update(timeout="10"), "collect.urls.timeout: expected number"),
        (lambda p: p["cutout"].update(method="magic"), "cutout.method: 'magic' is not one of"),
        (lambda p: p["resize"].pop("filter"), "resize.filter: required key is missing"),
        (lambda p: p["datasets"]["face_a_later"]["sources"][0].update(style="z"), "datasets.face_a_later.sources[0].style:"),
        (lambda p: p["datasets"]["face_a_later"]["sources"][0].update(type="ftp"), "datasets.face_a_later.sources[0].type:"),
        (lambda p: p["datasets"]["face_a_later"]["sources"][0].update(path="x"), "datasets.face_a_later.sources[0].path: unknown key"),
        (lambda p: p["datasets"]["face_a_later"].update(size=32.0), "datasets.face_a_later.size: expected integer"),
        (lambda p: p["datasets"].update({"bad@name": p["datasets"]["face_a_later"]}), "datasets: name 'bad@name'"),
        (lambda p: p["datasets"].update(ghost=p["datasets"]["face_a_later"]), "datasets.ghost: its source folder data/sources/ghost/ does not exist"),
        (lambda p: p["datasets"]["face_a_early"]["sources"][1].update(path="../../etc"), "datasets.face_a_early.sources[1].path: must be relative"),
        (lambda p: p["datasets"]["face_a_early"]["sources"][1].update(path="nowhere"), "datasets.face_a_early.sources[1].path: no such folder"),
        (lambda p: p["split"].update(test=1.5), "split.test: a fraction must be between 0 and 1"),
        (lambda p: p["cutout"].update(method="onnx"), "cutout.onnx_model: method 'onnx' needs a path"),
        (lambda p: p["cutout"].update(min_foreground=0.99), "cutout.min_foreground: must be smaller"),
        # a dataset's recipe: partial sections, checked like the sections themselves
        (lambda p: p["datasets"]["face_a_early"]["cutout"].update(methd="none"),
         "datasets.face_a_early.cutout.methd: unknown key (did you mean 'method'?"),
        (lambda p: p["datasets"]["face_a_early"]["cutout"].update(method="magic"), "datasets.face_a_early.cutout.method: 'magic' is not one of"),
        (lambda p: p["datasets"]["face_a_early"]["resize"].update(allow_upscale="yes"),
         "datasets.face_a_early.resize.allow_upscale: expected boolean, got string"),
        (lambda p: p["datasets"]["face_a_early"]["collect"].update(urls={"timeout": "3"}), "datasets.face_a_early.collect.urls.timeout: expected number"),
        (lambda p: p["datasets"]["face_a_early"]["collect"].update(urls={"tiemout": 3.0}), "datasets.face_a_early.collect.urls.tiemout: unknown key"),
        (lambda p: p["datasets"]["face_a_early"].update(cutuot={}), "datasets.face_a_early.cutuot: unknown key (did you mean 'cutout'?"),
        (lambda p: p["datasets"]["face_a_early"].pop("split"), "datasets.face_a_early.split: required key is missing"),
        (lambda p: p["datasets"]["face_a_early"]["split"].update(test=-1), "datasets.face_a_early.split.test: "),
        (lambda p: p["datasets"]["face_a_early"]["split"].update(test=0.0), "datasets.face_a_early.split.test: a fraction must be between 0 and 1"),
        (lambda p: p["datasets"]["face_a_early"]["cutout"].update(min_foreground=0.98), "datasets.face_a_early.cutout.min_foreground: must be smaller"),
        (lambda p: p["datasets"]["face_a_early"]["cutout"].update(method="onnx"), "cutout.onnx_model: method 'onnx' needs a path"),
        (lambda p: p["datasets"]["face_a_faceless"]["split"].update(test=0), "cam_classifier.face_parts.negative: 'face_a_faceless' holds out no images"),
        # hostile values (issue 13): no infinity, no runaway counts, no file outside the workspace
        (lambda p: p["collect"]["urls"].update(timeout=float("inf")), "collect.urls.timeout: must be a finite number, got inf"),
        (lambda p: p["models"]["dcgan"]["net"].update(lr=float("nan")), "models.dcgan.net.lr: must be a finite number, got nan"),
        (lambda p: p["sample"].update(n=10**9), "sample.n: 1000000000 is greater than the maximum of 100000"),
        (lambda p: p["datasets"]["face_a_later"]["sources"][0].update(n=10**9), "datasets.face_a_later.sources[0].n: 1000000000 is greater"),
        (lambda p: p["inception"].update(weights="../../../../etc/passwd"), "inception.weights: must be a path inside the workspace"),
        (lambda p: p["inception"].update(weights="/etc/passwd"), "inception.weights: must be a path inside the workspace"),
        (lambda p: p["cutout"].update(onnx_model="../model.onnx"), "cutout.onnx_model: must be a path inside the workspace"),
        # the feature extractor (issue 17): reduced precision is a named choice, the batch a number or auto
        (lambda p: p["inception"].update(precision="fp16"), "inception.precision: 'fp16' is not one of"),
        (lambda p: p["inception"].update(batch_size="big"), "inception.batch_size: "),
        (lambda p: p["inception"].update(batch_size=0), "inception.batch_size: "),
        (lambda p: p["inception"].update(compile="no"), "inception.compile: expected boolean"),
    ],
)
def test_schema_errors_name_the_key(mutate, expected):
    msg = _broken(mutate)
    assert msg.startswith(expected), msg
    assert "\n" not in msg


def _run_cli(ws: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "animegen", "--params", str(ws / "params.yaml"), *args],
        capture_output=True, text=True, cwd=ws,
    )  # fmt: skip


def test_cli_bad_params_exit_2_and_write_nothing(workspace):
    params = load_yaml(workspace / "params.yaml")
    params["collect"]["min_side"] = "12"
    dump_yaml(params, workspace / "params.yaml")
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    r = _run_cli(workspace, "collect", "--dataset", "face_a_later")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]  # one line
    assert "collect.min_side: expected integer" in r.stderr
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before


def test_cli_unknown_dataset_exit_2(workspace):
    r = _run_cli(workspace, "cutout", "--dataset", "nope")
    assert r.returncode == 2
    assert "datasets.nope: no such dataset (declared: body_a," in r.stderr
    assert not (workspace / "data" / "interim").exists()


def test_cli_validate_ok_and_every_stage_has_help(capsys):
    assert cli.main(["--params", str(REPO / "params.yaml"), "validate"]) == 0
    with pytest.raises(SystemExit) as e:  # argparse formats help texts with %: a bare "95 %" crashed it
        cli.main(["--help"])
    assert e.value.code == 0
    listing = capsys.readouterr().out
    for stages, flag, _ in cli.GROUPS:
        for stage in stages:
            with pytest.raises(SystemExit) as e:
                cli.main([stage, "--help"])
            assert e.value.code == 0 and stage in listing
            out = capsys.readouterr().out
            assert flag in out and "Writes:" in out, stage
    for stage in cli.OTHER_STAGES:
        with pytest.raises(SystemExit) as e:
            cli.main([stage, "--help"])
        assert e.value.code == 0 and stage in listing
        assert "Writes:" in capsys.readouterr().out, stage


def test_a_dataset_recipe_overrides_only_its_keys_and_merges_nested_ones():
    from animegen.recipes import dataset_section

    params = load_params(REPO / "params.yaml")
    params["datasets"]["face_a_early"]["collect"] = {"min_side": 32, "urls": {"timeout": 30.0}}
    mine, other = (dataset_section(params, d, "collect") for d in ("face_a_early", "face_a_later"))
    assert mine["min_side"] == 32 and mine["urls"]["timeout"] == 30.0
    assert mine["urls"]["retries"] == params["collect"]["urls"]["retries"]  # nested keys merge, never drop
    assert other == params["collect"] and params["collect"]["min_side"] == 64  # the section itself is untouched
    assert dataset_section(params, "face_b_later", "split") == {"test": 0, "seed": params["split"]["seed"]}
    with pytest.raises(ValueError, match="not a data stage section"):
        dataset_section(params, "face_a_early", "train")


def test_timing_names_models_without_run_records(tmp_path):
    params = load_params(REPO / "params.yaml")
    from animegen.runs import timing_table, write_run_record

    write_run_record(tmp_path, "train", "dcgan", {"training_seconds": 7200.0, "device_name": "GPU X", "steps_done": 5,
                                                 "stop_reason": "time_budget", "finished_at": 0.0})  # fmt: skip
    write_run_record(tmp_path, "sample", "dcgan", {"sampling_seconds": 36.0, "device_name": "GPU X", "n": 256})
    table = timing_table(params, tmp_path)
    assert "| dcgan | 2:00:00 | 12 | 5 | time_budget | GPU X | 0:00:36 | 256 | GPU X | 1970-01-01 00:00 UTC |" in table
    assert "| ddpm | - | 12 | - |" in table
    missing = sorted(set(params["models"]) - {"dcgan"}) + sorted(params["translators"])  # models first
    assert f"No run record for {', '.join(missing)}:" in table


def test_the_study_b_profile_is_valid_and_holds_the_studys_two_settings_and_the_remedy(tmp_path):
    """workflow/params/study_b.yaml: same keys as the demo, study B's baseline and proposal, the paired remedy."""
    study = parse_yaml((REPO / "workflow/params/study_b.yaml").read_text())
    demo = load_params(REPO / "params.yaml")
    for name in study["datasets"]:
        (tmp_path / f"data/sources/{name}/images").mkdir(parents=True)
    validate(study, tmp_path)
    assert set(study) == set(demo) and study["models"] == {} and study["cam_select"] == {} and study["survey"]["models"] == []
    assert all(ds["split"] == {"test": 50} for ds in study["datasets"].values())  # 2000 train / 50 test
    assert study["datasets"]["bodies_bg_256"]["cutout"] == {"method": "none"}  # the baseline keeps the backgrounds
    assert study["datasets"]["bodies_512"]["cutout"] == {} and study["datasets"]["bodies_face_512"]["crop"] == "shoulders_up"
    t = study["translators"]
    settings = {name: (study["datasets"][m["source"]["dataset"]]["size"], m["net"].get("n_councils"), m["net"].get("norm"),
                       m["train"]["batch_size"], m["train"]["steps"], m["paired"]) for name, m in t.items()}  # fmt: skip
    assert settings == {
        "councilgan_baseline": (256, 4, "adain", 3, 400_000, False), "councilgan_proposed": (512, 3, "in", 1, 313_000, False),
        "councilgan_crops": (512, 3, "in", 1, 313_000, False), "councilgan_paired": (512, 3, "in", 1, 313_000, True),
        "pix2pixhd": (512, None, None, 1, 400_000, True)}  # fmt: skip
    for name, m in t.items():
        assert m.keys() == demo["translators"][name if name in demo["translators"] else "councilgan"].keys()
        assert m["net"].keys() == demo["translators"]["pix2pixhd" if m["family"] == "pix2pixhd" else "councilgan"]["net"].keys()
        if m["family"] == "councilgan":  # the reference's anime config
            n = m["net"]
            assert (n["gan_w"], n["council_w"], n["council_start"], n["lr"], n["style_alpha"], n["dim"], n["n_res"]) == (26.0, 6.0, 1000, 1e-4, 0.7, 64, 5)
            assert n["paired_weight"] == (10.0 if name == "councilgan_paired" else 0.0)
    remedy = [t[m]["source"]["dataset"] for m in ("councilgan_crops", "councilgan_paired", "pix2pixhd")]
    assert remedy == ["bodies_face_512"] * 3  # the same test crops for the three
    assert (t["pix2pixhd"]["net"]["ngf"], t["pix2pixhd"]["net"]["n_downsample"], t["pix2pixhd"]["net"]["n_blocks"]) == (64, 4, 9)
    assert study["track"]["smoothing"] == 0.9
