"""The checks a JSON schema cannot express: one key against another (a model's dataset exists, a
selection names a declared classifier, minimum below maximum), and local files that must exist."""

from __future__ import annotations

import math
from pathlib import Path

from animegen.config.errors import ParamsError
from animegen.config.schema import SOURCES_ROOT
from animegen.models.registry import FAMILIES
from animegen.recipes import dataset_section, overridden


def workspace_file(key: str, value: str | None, root: Path) -> None:
    """A file a params key names (weights, a model): relative to the workspace (the folder of params.yaml),
    inside it, and there; None names none.  Outside files come in by a link or a copy, so that both
    orchestrators track them and no key can make a stage read e.g. ``../../etc/passwd``."""
    if not value:
        return
    rel = Path(value)
    if rel.is_absolute() or ".." in rel.parts:
        raise ParamsError(f"{key}: must be a path inside the workspace, relative to the folder of params.yaml, "
                          f"without '..' (got {value!r}; link or copy the file in)")  # fmt: skip
    if not (root / rel).is_file():
        raise ParamsError(f"{key}: no such file: {value} (relative to the folder of params.yaml)")


def check(params: dict, root: Path) -> None:
    """What a schema cannot say: cross-key consistency and files that must exist."""
    for name in params["datasets"]:
        _check_recipe(params, name, root)
    _check_models(params)
    _check_cam(params, root)
    _check_derive(params)
    _check_translators(params, root)
    _check_survey(params)
    workspace_file("inception.weights", params["inception"]["weights"], root)
    for name, ds in params["datasets"].items():
        src_dir = root / SOURCES_ROOT / name
        if not src_dir.is_dir():
            raise ParamsError(
                f"datasets.{name}: its source folder {SOURCES_ROOT}/{name}/ does not exist "
                "(create it, even empty: it is the collect stage's tracked input)"
            )
        for i, src in enumerate(ds["sources"]):
            clarity = src.get("parts_clarity")
            if isinstance(clarity, list) and clarity[0] > clarity[1]:
                raise ParamsError(f"datasets.{name}.sources[{i}].parts_clarity: a range is [lo, hi] with lo <= hi")
            if "path" not in src:
                continue
            key = f"datasets.{name}.sources[{i}].path"
            rel = Path(src["path"])
            if rel.is_absolute() or ".." in rel.parts:
                raise ParamsError(
                    f"{key}: must be relative to {SOURCES_ROOT}/{name}/ without '..' "
                    "(link or copy outside data there, so both orchestrators track it)"
                )
            target = src_dir / rel
            if src["type"] == "folder" and not target.is_dir():
                raise ParamsError(f"{key}: no such folder: {SOURCES_ROOT}/{name}/{rel}")
            if src["type"] != "folder" and not target.is_file():
                raise ParamsError(f"{key}: no such file: {SOURCES_ROOT}/{name}/{rel}")


def _check_recipe(params: dict, dataset: str, root: Path) -> None:
    """The data sections as ``dataset`` sees them (its overrides laid over the sections); an error names
    the key where the offending value is written."""

    def key(section: str, k: str) -> str:
        return f"datasets.{dataset}.{section}.{k}" if k in overridden(params, dataset, section) else f"{section}.{k}"

    test = dataset_section(params, dataset, "split")["test"]
    if isinstance(test, float) and (math.isnan(test) or not (0 < test < 1)):
        raise ParamsError(
            f"{key('split', 'test')}: a fraction must be between 0 and 1 (exclusive), got {test} "
            "(a count such as 50 holds out 50 images; 0 trains on every image)"
        )
    cut = dataset_section(params, dataset, "cutout")
    if cut["min_foreground"] >= cut["max_foreground"]:
        raise ParamsError(f"{key('cutout', 'min_foreground')}: must be smaller than cutout.max_foreground ({dataset})")
    if cut["method"] == "onnx" and not cut["onnx_model"]:
        raise ParamsError(f"{key('cutout', 'onnx_model')}: method 'onnx' needs a path to an .onnx segmentation model")
    workspace_file(key("cutout", "onnx_model"), cut["onnx_model"], root)


RESERVED_MODEL_NAMES = {"train", "models", "compare", "summary", "table", "track"}  # would collide under metrics/


def _check_models(params: dict) -> None:
    for name, pair in params["compare"]["pairs"].items():
        for role in ("reference", "candidate"):
            if pair[role] not in params["datasets"]:
                raise ParamsError(f"compare.pairs.{name}.{role}: no such dataset {pair[role]!r}")
        sizes = {params["datasets"][pair[r]]["size"] for r in ("reference", "candidate")}
        if len(sizes) > 1:
            raise ParamsError(f"compare.pairs.{name}: the two datasets have different sizes {sorted(sizes)}; MAE needs one size")
        if pair["reference"] == pair["candidate"]:
            raise ParamsError(f"compare.pairs.{name}.candidate: compares {pair['reference']!r} with itself")
    for name, m in params["models"].items():
        if name in RESERVED_MODEL_NAMES:
            raise ParamsError(f"models.{name}: reserved name (outputs live under metrics/{name}); choose another")
        if m["dataset"] not in params["datasets"]:
            known = ", ".join(sorted(params["datasets"]))
            raise ParamsError(f"models.{name}.dataset: no such dataset {m['dataset']!r} (declared: {known})")
        usable = split_names(params, m["dataset"])
        if m["split"] not in usable:
            raise ParamsError(
                f"models.{name}.split: {m['split']!r} is not a split of dataset {m['dataset']!r} "
                f"(usable: {', '.join(usable)}; a CAM selection must select from the model's dataset)"
            )
        problem = FAMILIES[m["family"]].check(m, params["datasets"][m["dataset"]]["size"])
        if problem:
            key, message = problem
            raise ParamsError(f"models.{name}.{key}: {message}")
        _check_track_every(m["train"], f"models.{name}")
        if m["train"]["ema"]["beta"] == 0 and params["sample"]["use_ema"]:
            raise ParamsError(f"models.{name}.train.ema.beta: 0 keeps no EMA, but sample.use_ema is true")


def _check_track_every(loop: dict, key: str) -> None:
    every, steps = loop["track_fid_every"], loop["steps"]
    if every > steps:
        raise ParamsError(f"{key}.train.track_fid_every: {every} is more than steps ({steps}); "
                          "FID would be tracked at the last step only (0 turns tracking off)")  # fmt: skip


RANDOM_SUFFIX = "_random"  # <selection>_random: the random control of the same size as the selection


def split_names(params: dict, dataset_name: str) -> list[str]:
    """The splits a model on ``dataset_name`` may train on: the dataset's own, and each CAM selection
    from it with its random control (their files are ``data/splits/<name>.json``)."""
    sel = sorted(s for s, v in params["cam_select"].items() if v["dataset"] == dataset_name)
    return [dataset_name] + [n for s in sel for n in (s, s + RANDOM_SUFFIX)]


def _check_translators(params: dict, root: Path) -> None:
    datasets = params["datasets"]
    for name, t in params["translators"].items():
        key = f"translators.{name}"
        if name in RESERVED_MODEL_NAMES:
            raise ParamsError(f"{key}: reserved name (outputs live under metrics/{name}); choose another")
        if name in params["models"]:
            raise ParamsError(f"{key}: models.{name} has this name too (both write data/models/{name}/); rename one")
        for role in ("source", "target"):
            d = t[role]
            if d["dataset"] not in datasets:
                raise ParamsError(f"{key}.{role}.dataset: no such dataset {d['dataset']!r} (declared: {', '.join(sorted(datasets))})")
            usable = split_names(params, d["dataset"])
            if d["split"] not in usable:
                raise ParamsError(f"{key}.{role}.split: {d['split']!r} is not a split of dataset {d['dataset']!r} "
                                  f"(usable: {', '.join(usable)})")  # fmt: skip
        a, b = t["source"]["dataset"], t["target"]["dataset"]
        if a == b:
            raise ParamsError(f"{key}.target.dataset: the same dataset as source ({a!r}); translation needs two domains")
        if datasets[a]["size"] != datasets[b]["size"]:
            raise ParamsError(f"{key}.target: {b!r} is {datasets[b]['size']} px but the source {a!r} is "
                              f"{datasets[a]['size']} px; both domains need one size")  # fmt: skip
        if dataset_section(params, a, "split")["test"] == 0:
            raise ParamsError(f"{key}.source.dataset: {a!r} holds out no images (its split.test is 0); the translate "
                              "stage translates the source's test split")  # fmt: skip
        if t["classifier"] not in params["cam_classifier"]:
            known = ", ".join(sorted(params["cam_classifier"])) or "none"
            raise ParamsError(f"{key}.classifier: no such classifier {t['classifier']!r} (declared under cam_classifier: "
                              f"{known}); the character ratio and the CAM maps need one")  # fmt: skip
        clf = params["cam_classifier"][t["classifier"]]
        if datasets[clf["positive"]]["size"] != datasets[a]["size"]:
            raise ParamsError(f"{key}.classifier: {t['classifier']!r} takes {datasets[clf['positive']]['size']} px "
                              f"images, the translator {datasets[a]['size']} px")  # fmt: skip
        problem = FAMILIES[t["family"]].check(t, datasets[a]["size"])
        if problem:
            raise ParamsError(f"{key}.{problem[0].replace('dataset', 'source.dataset')}: {problem[1]}")
        _check_pairs(params, key, t)
        _check_track_every(t["train"], key)
        if t["train"]["ema"]["beta"] == 0 and params["translate"]["use_ema"]:
            raise ParamsError(f"{key}.train.ema.beta: 0 keeps no EMA, but translate.use_ema is true")
        if t["family"] == "animegan":
            _check_animegan(params, key, t, root)


def _check_pairs(params: dict, key: str, t: dict) -> None:
    """A paired translator's two datasets hold the same images (ids are content hashes of the collected
    files: the same sources, cropped differently) split the same way; a family that needs pairs has them."""
    if FAMILIES[t["family"]].needs_pairs(t["net"]) and not t["paired"]:
        what = "trains on pairs" if t["family"] != "councilgan" else "has a paired term (net.paired_weight > 0)"
        raise ParamsError(f"{key}.paired: {t['family']} {what}; set paired: true (source and target images of the same id)")
    if not t["paired"]:
        return
    a, b = t["source"]["dataset"], t["target"]["dataset"]
    datasets = params["datasets"]
    if datasets[a]["sources"] != datasets[b]["sources"]:
        raise ParamsError(f"{key}.paired: pairs are images of the same id, so {a!r} and {b!r} need the same sources "
                          f"(a crop of one collection, e.g. crop: shoulders_up of a full-body set); theirs differ")  # fmt: skip
    sa, sb = dataset_section(params, a, "split"), dataset_section(params, b, "split")
    if sa != sb:
        raise ParamsError(f"{key}.paired: a pair shares its split, but {a!r} splits with {sa} and {b!r} with {sb}; "
                          f"give datasets.{a}.split and datasets.{b}.split the same values")  # fmt: skip
    if t["target"]["split"] != b:
        raise ParamsError(f"{key}.target.split: a paired translator's target is its dataset's own split ({b!r}), "
                          f"so every source image finds its partner")  # fmt: skip


def _check_derive(params: dict) -> None:
    d, datasets = params["derive"], params["datasets"]
    for i, name in enumerate(d["edge_smooth"]):
        if name not in datasets:
            raise ParamsError(f"derive.edge_smooth[{i}]: no such dataset {name!r} (declared: {', '.join(sorted(datasets))})")
    for name in d["faces"]:
        if name not in datasets:
            raise ParamsError(f"derive.faces.{name}: no such dataset (declared: {', '.join(sorted(datasets))})")
    if d["smooth_kernel"] % 2 == 0:
        raise ParamsError(f"derive.smooth_kernel: must be odd (a centred Gaussian), got {d['smooth_kernel']}")
    if d["canny"][0] > d["canny"][1]:
        raise ParamsError("derive.canny: [low, high] with low <= high")


def _check_animegan(params: dict, key: str, t: dict, root: Path) -> None:
    """AnimeGAN's inputs: its style set edge-smoothed, its photos' faces when a face loss is on, its backbones."""
    net, d = t["net"], params["derive"]
    target, source = t["target"]["dataset"], t["source"]["dataset"]
    if target not in d["edge_smooth"]:
        raise ParamsError(f"{key}.target.dataset: AnimeGAN's discriminator needs the edge-smoothed copies of {target!r}; "
                          f"add it to derive.edge_smooth")  # fmt: skip
    if (net["skin_weight"] > 0 or net["face_weight"] > 0) and source not in d["faces"]:
        raise ParamsError(f"{key}.net.skin_weight: the skin and face losses need face regions of {source!r}; "
                          f"add {source}: boxes or mtcnn to derive.faces")  # fmt: skip
    if net["init_steps"] > 0 and net["content_weight"] == 0:
        raise ParamsError(f"{key}.net.init_steps: the initialisation phase trains on the content loss alone, "
                          "but net.content_weight is 0")  # fmt: skip
    used = {"content_backbone": net["content_weight"] > 0 or net["gram_weight"] > 0, "face_backbone": net["face_weight"] > 0}
    for which, needed in used.items():
        b = net[which]
        if not needed or b["weights"] == "random":
            continue
        if b["weights"] == "packaged":
            if b["arch"] != "mobilenet_v2":
                raise ParamsError(f"{key}.net.{which}.weights: no package ships {b['arch']} weights (only mobilenet_v2); "
                                  "name a local state dict inside the workspace")  # fmt: skip
            continue
        workspace_file(f"{key}.net.{which}.weights", b["weights"], root)


def _check_survey(params: dict) -> None:
    s = params["survey"]
    if len(s["models"]) == 1:
        raise ParamsError("survey.models: one model; a blind comparison needs 2 or more ([] turns the survey off)")
    for i, m in enumerate(s["models"]):
        if m not in params["translators"]:
            known = ", ".join(sorted(params["translators"])) or "none"
            raise ParamsError(f"survey.models[{i}]: no such translator {m!r} (declared under translators: {known})")
    if s["scale"][0] >= s["scale"][1]:
        raise ParamsError(f"survey.scale: {s['scale']} is not a range [low, high] with low < high")


def _check_cam(params: dict, root: Path) -> None:
    datasets = params["datasets"]
    for name, c in params["cam_classifier"].items():
        key = f"cam_classifier.{name}"
        for role in ("positive", "negative"):
            if c[role] not in datasets:
                raise ParamsError(f"{key}.{role}: no such dataset {c[role]!r}")
        if c["positive"] == c["negative"]:
            raise ParamsError(f"{key}.negative: the same dataset as positive ({c['positive']!r})")
        for role in ("positive", "negative"):
            if dataset_section(params, c[role], "split")["test"] == 0:
                raise ParamsError(f"{key}.{role}: {c[role]!r} holds out no images (its split.test is 0); the "
                                  "classifier's held-out accuracy needs a test split")  # fmt: skip
        sizes = {datasets[c[r]]["size"] for r in ("positive", "negative")}
        if len(sizes) > 1:
            raise ParamsError(f"{key}: the two classes have different sizes {sorted(sizes)}; one classifier input size")
        if c["weights"] and c["arch"] == "small_cnn":
            raise ParamsError(f"{key}.weights: small_cnn has no pretrained weights; use null or a torchvision arch")
        workspace_file(f"{key}.weights", c["weights"], root)
    taken = set(datasets)
    for name, s in params["cam_select"].items():
        key = f"cam_select.{name}"
        for n in (name, name + RANDOM_SUFFIX):
            if n in taken:
                raise ParamsError(f"{key}: {n!r} would name two splits (data/splits/{n}.json); rename the selection")
            taken.add(n)
        if s["classifier"] not in params["cam_classifier"]:
            known = ", ".join(sorted(params["cam_classifier"])) or "none"
            raise ParamsError(f"{key}.classifier: no such classifier {s['classifier']!r} (declared: {known})")
        if s["dataset"] not in datasets:
            raise ParamsError(f"{key}.dataset: no such dataset {s['dataset']!r}")
        clf = params["cam_classifier"][s["classifier"]]
        if datasets[s["dataset"]]["size"] != datasets[clf["positive"]]["size"]:
            raise ParamsError(f"{key}.dataset: size {datasets[s['dataset']]['size']} differs from the classifier's "
                              f"{datasets[clf['positive']]['size']}")  # fmt: skip
        if s["score"] == "region_mass" and not s["regions"]:
            raise ParamsError(f"{key}.regions: score region_mass needs at least one region")
        for i, r in enumerate(s["regions"]):
            if isinstance(r, list) and not (r[0] < r[2] and r[1] < r[3]):
                raise ParamsError(f"{key}.regions[{i}]: a box is [x0, y0, x1, y1] with x0 < x1 and y0 < y1")
        if s["select"] == "top_n" and (s["n"] is None or s["threshold"] is not None):
            raise ParamsError(f"{key}.n: select top_n needs n (an integer) and threshold: null")
        if s["select"] == "threshold" and (s["threshold"] is None or s["n"] is not None):
            raise ParamsError(f"{key}.threshold: select threshold needs threshold (a number) and n: null")
