"""The ``params.yaml`` schema, validated before any stage does work.

``load_params`` reads the file with both YAML loaders the orchestrators use (ruamel, YAML 1.2, as DVC
does; PyYAML, YAML 1.1, as Snakemake does), refuses a file they read differently (``2e-4`` is a string
to one and a float to the other; ``yes`` a bool to one and a string to the other), checks it against a
JSON schema (no unknown keys, right types, explicit values everywhere: DVC tracks params only when the
key is written in the file), and then checks what a schema cannot (local source folders exist, the
split is a fraction or a count).  Any problem raises :class:`ParamsError` whose message is one line
starting with the dotted key path, e.g. ``collect.min_side: expected integer, got string '12'``; the
command line turns it into exit code 2 before anything is written.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from ruamel.yaml import YAML

from animegen.models.registry import FAMILIES

EXIT_PARAMS = 2
SOURCES_ROOT = "data/sources"
DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


class ParamsError(Exception):
    """A bad ``params.yaml``; ``str(e)`` is one line naming the key path."""


def _obj(properties: dict, required: list[str] | None = None) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


INT = {"type": "integer"}
POS_INT = {"type": "integer", "minimum": 1}
NONNEG_INT = {"type": "integer", "minimum": 0}
NUM = {"type": "number"}
POS_NUM = {"type": "number", "exclusiveMinimum": 0}
BOOL = {"type": "boolean"}
STR = {"type": "string", "minLength": 1}
OPT_STR = {"type": ["string", "null"]}
UNIT = {"type": "number", "minimum": 0, "maximum": 1}

_SOURCE_TYPES = {
    "folder": _obj({"type": STR, "path": STR, "license": STR, "credit": STR}, ["type", "path"]),
    "archive": _obj({"type": STR, "path": STR, "license": STR, "credit": STR}, ["type", "path"]),
    "urls": _obj({"type": STR, "path": STR, "license": STR, "credit": STR}, ["type", "path"]),
    "synthetic": _obj(
        {
            "type": STR,
            "kind": {"enum": ["face", "body"]},
            "style": {"enum": ["a", "b"]},
            "variant": {"enum": ["early", "later"]},
            "n": POS_INT,
            "seed": NONNEG_INT,
            # how visibly eyes and mouth are drawn: 0 leaves them out (a "faceless" negative class for
            # the CAM classifier), 1 draws them bold, [lo, hi] draws it per image from that range;
            # absent or null draws it per image from [0.3, 1]
            "parts_clarity": {
                "oneOf": [
                    {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                    {"type": "array", "items": UNIT, "minItems": 2, "maxItems": 2},
                ]
            },
        },
        ["type", "kind", "style", "variant", "n", "seed"],
    ),
}

SOURCE = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"enum": sorted(_SOURCE_TYPES)}},
    "allOf": [
        {"if": {"properties": {"type": {"const": t}}}, "then": s} for t, s in _SOURCE_TYPES.items()
    ],
}

DATASET = _obj(
    {
        "sources": {"type": "array", "items": SOURCE, "minItems": 1},
        "size": {"type": "integer", "minimum": 8, "maximum": 4096},
        "crop": {"enum": ["full", "shoulders_up"]},
    }
)

DEVICE = {"type": "string", "pattern": r"^(auto|cpu|cuda(:[0-9]+)?)$"}

MODEL_TRAIN = _obj(
    {
        "steps": POS_INT,
        "time_budget_hours": POS_NUM,
        "batch_size": POS_INT,
        "seed_offset": NONNEG_INT,
        "hflip": BOOL,
        "precision": {"enum": ["fp32", "bf16", "fp16"]},
        "track_fid_every": NONNEG_INT,  # 0: off; else a generator snapshot every N steps for the track stage
        "ema": _obj(
            {
                "beta": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "update_after_step": NONNEG_INT,
                "update_every": POS_INT,
            }
        ),
    }
)

MODEL = {
    **_obj(
        {
            "family": {"enum": sorted(FAMILIES)},
            "dataset": STR,
            "split": STR,
            "train": MODEL_TRAIN,
            "net": {"type": "object"},
            "sample": {"type": "object"},
        }
    ),
    # each family's own net/sample keys, from the registry
    "allOf": [
        {
            "if": {"properties": {"family": {"const": name}}},
            "then": {"properties": {"net": f.net, "sample": f.sample}},
        }
        for name, f in FAMILIES.items()
    ],
}

CAM_CLASSIFIER = _obj(
    {
        "positive": STR,
        "negative": STR,
        "arch": {"enum": ["small_cnn", "resnet18", "resnet34", "resnet50"]},
        "width": POS_INT,
        "depth": {"type": "integer", "minimum": 1, "maximum": 6},
        "weights": OPT_STR,
        "epochs": POS_INT,
        "batch_size": POS_INT,
        "lr": POS_NUM,
        "weight_decay": {"type": "number", "minimum": 0},
        "hflip": BOOL,
        "min_train_images": {"type": "integer", "minimum": 2},
        "seed": NONNEG_INT,
    }
)
CAM_SELECTION = _obj(
    {
        "classifier": STR,
        "dataset": STR,
        "target": {"enum": ["positive", "negative"]},
        "target_layer": OPT_STR,
        "batch_size": POS_INT,
        "score": {"enum": ["region_mass", "topk_mass", "entropy"]},
        "regions": {
            "type": "array",
            "items": {"oneOf": [STR, {"type": "array", "items": UNIT, "minItems": 4, "maxItems": 4}]},
        },
        "topk_percent": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        "select": {"enum": ["top_n", "threshold"]},
        "n": {"type": ["integer", "null"], "minimum": 1},
        "threshold": {"type": ["number", "null"]},
        "overlay_count": NONNEG_INT,
        "seed": NONNEG_INT,
    }
)

SCHEMA = _obj(
    {
        "datasets": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": DATASET_NAME},
            "additionalProperties": DATASET,
        },
        "collect": _obj(
            {
                "max_pixels": POS_INT,
                "min_side": POS_INT,
                "max_aspect_ratio": {"type": "number", "minimum": 1},
                "min_colours": POS_INT,
                "near_duplicate": _obj(
                    {
                        "phash_max_distance": {"type": ["integer", "null"], "minimum": 0, "maximum": 64},
                        "colorhash_max_distance": {"type": ["integer", "null"], "minimum": 0},
                    }
                ),
                "archive": _obj(
                    {
                        "max_entries": POS_INT,
                        "max_entry_bytes": POS_INT,
                        "max_total_bytes": POS_INT,
                        "max_ratio": POS_NUM,
                    }
                ),
                "urls": _obj(
                    {
                        "allow_private": BOOL,
                        "max_bytes": POS_INT,
                        "timeout": POS_NUM,
                        "retries": NONNEG_INT,
                        "backoff": {"type": "number", "minimum": 0},
                        "max_redirects": NONNEG_INT,
                        "honor_noai": BOOL,
                        "workers": POS_INT,
                    }
                ),
            }
        ),
        "cutout": _obj(
            {
                "method": {"enum": ["auto", "alpha", "floodfill", "grabcut", "onnx"]},
                "onnx_model": OPT_STR,
                "onnx_size": POS_INT,
                "flood_tolerance": {"type": "integer", "minimum": 0, "maximum": 255},
                "border_match": {"type": "number", "minimum": 0, "maximum": 1},
                "grabcut_iterations": NONNEG_INT,
                "grabcut_margin": {"type": "number", "minimum": 0, "maximum": 0.45},
                "work_max_side": {"type": "integer", "minimum": 32},
                "min_foreground": {"type": "number", "minimum": 0, "maximum": 1},
                "max_foreground": {"type": "number", "minimum": 0, "maximum": 1},
            }
        ),
        "resize": _obj(
            {
                "filter": {"enum": ["lanczos", "bicubic", "box", "area"]},
                "allow_upscale": BOOL,
                "trim_to_foreground": BOOL,
                "margin": {"type": "number", "minimum": 0, "maximum": 1},
                "shoulders_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            }
        ),
        "split": _obj({"test": POS_NUM, "seed": NONNEG_INT}),
        "train": _obj(
            {
                "seed": NONNEG_INT,
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
                "tf32": BOOL,
                "checkpoint_every_steps": POS_INT,
                "checkpoint_every_minutes": POS_NUM,
                "log_every": POS_INT,
            }
        ),
        "sample": _obj(
            {
                "n": POS_INT,
                "batch_size": POS_INT,
                "grid": NONNEG_INT,
                "seed": NONNEG_INT,
                "use_ema": BOOL,
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
            }
        ),
        "inception": _obj(
            {
                "weights": OPT_STR,
                "batch_size": POS_INT,
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
            }
        ),
        "reference": _obj({"floor_splits": POS_INT, "seed": NONNEG_INT}),
        "track": _obj(
            {
                "n": {"type": "integer", "minimum": 2},  # a covariance needs 2 samples
                "batch_size": POS_INT,
                "seed": NONNEG_INT,
                "smoothing": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
            }
        ),
        "evaluate": _obj(
            {
                "kid_subsets": POS_INT,
                "kid_subset_size": {"type": "integer", "minimum": 2},
                "memorisation_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "audit_count": POS_INT,
                "seed": NONNEG_INT,
            }
        ),
        "compare": _obj(
            {
                "kid_subsets": POS_INT,
                "kid_subset_size": {"type": "integer", "minimum": 2},
                "memorisation_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "seed": NONNEG_INT,
                "pairs": {
                    "type": "object",
                    "propertyNames": {"pattern": DATASET_NAME},
                    "additionalProperties": _obj({"reference": STR, "candidate": STR}),
                },
            }
        ),
        "cam": _obj(
            {
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
                "classifiers": {
                    "type": "object",
                    "propertyNames": {"pattern": DATASET_NAME},
                    "additionalProperties": CAM_CLASSIFIER,
                },
                "selections": {
                    "type": "object",
                    "propertyNames": {"pattern": DATASET_NAME},
                    "additionalProperties": CAM_SELECTION,
                },
            }
        ),
        "models": {
            "type": "object",
            "propertyNames": {"pattern": DATASET_NAME},
            "additionalProperties": MODEL,
        },
    }
)


# ------------------------------------------------------------------------------------------ loading


def _path_str(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean {v!r}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"number {v}"
    if isinstance(v, str):
        return f"string {v!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    return type(v).__name__


def _first_difference(a: Any, b: Any, path=()) -> tuple[tuple, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return (path + (k,), a.get(k), b.get(k))
            d = _first_difference(a[k], b[k], path + (k,))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, path + (i,))
            if d:
                return d
        return None
    if type(a) is not type(b) or a != b:
        return (path, a, b)
    return None


def _to_plain(obj):
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    return obj


def parse_yaml_both(text: str) -> dict:
    """Parse with ruamel (YAML 1.2, DVC) and PyYAML (YAML 1.1, Snakemake); refuse any disagreement."""
    try:
        r = _to_plain(YAML(typ="safe", pure=True).load(io.StringIO(text)))
        p = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - any parser error is a params error
        msg = " ".join(str(e).split())
        raise ParamsError(f"(file): not valid YAML: {msg}") from None
    diff = _first_difference(r, p)
    if diff is not None:
        path, rv, pv = diff
        raise ParamsError(
            f"{_path_str(path)}: YAML 1.2 (DVC) reads {_describe(rv)} but YAML 1.1 (Snakemake) reads "
            f"{_describe(pv)}; write it unambiguously (e.g. 0.0002 or 2.0e-4, true/false)"
        )
    if not isinstance(r, dict):
        raise ParamsError("(top level): params.yaml must be a mapping of sections")
    return r


def _format_error(err: jsonschema.ValidationError) -> str:
    path = list(err.absolute_path)
    where = _path_str(path)
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        key = _path_str(path + [extra[0]]) if extra else where
        return f"{key}: unknown key (allowed here: {', '.join(allowed)})"
    if v == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        return f"{_path_str(path + [missing[0]])}: required key is missing"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{where}: expected {want}, got {_describe(err.instance)}"
    if v == "enum":
        return f"{where}: {err.instance!r} is not one of {', '.join(map(str, err.validator_value))}"
    if "propertyNames" in err.schema_path:
        return f"{where}: name {err.instance!r} must match {DATASET_NAME} (no '@', DVC's separator)"
    return f"{where}: {err.message}"


# "integer" means a YAML integer: jsonschema would also accept 32.0, which YAML reads as a float.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, v: isinstance(v, int) and not isinstance(v, bool)
    ),
)


def _error_rank(err: jsonschema.ValidationError):
    # Prefer the deepest error (most specific key path), then the schema's own order.
    return (-len(err.absolute_path), str(list(err.absolute_path)))


def validate(params: dict, root: str | Path = ".") -> dict:
    """Validate a parsed params mapping; return it unchanged or raise :class:`ParamsError`."""
    validator = _Validator(SCHEMA)
    errors = sorted(validator.iter_errors(params), key=_error_rank)
    if errors:
        raise ParamsError(_format_error(errors[0]))
    _check_semantics(params, Path(root))
    return params


def _check_semantics(params: dict, root: Path) -> None:
    test = params["split"]["test"]
    if isinstance(test, float) and not (0 < test < 1):
        raise ParamsError(f"split.test: a fraction must be between 0 and 1 (exclusive), got {test}")
    if isinstance(test, float) and math.isnan(test):
        raise ParamsError("split.test: got NaN")
    cut = params["cutout"]
    if cut["min_foreground"] >= cut["max_foreground"]:
        raise ParamsError("cutout.min_foreground: must be smaller than cutout.max_foreground")
    if cut["method"] == "onnx" and not cut["onnx_model"]:
        raise ParamsError("cutout.onnx_model: method 'onnx' needs a path to an .onnx segmentation model")
    if cut["onnx_model"] and not (root / cut["onnx_model"]).is_file():
        raise ParamsError(f"cutout.onnx_model: no such file: {cut['onnx_model']}")
    _check_models(params)
    _check_cam(params, root)
    weights = params["inception"]["weights"]
    if weights and not (root / weights).is_file():
        raise ParamsError(f"inception.weights: no such file: {weights} (relative to the folder of params.yaml)")
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
        every, steps = m["train"]["track_fid_every"], m["train"]["steps"]
        if every > steps:
            raise ParamsError(f"models.{name}.train.track_fid_every: {every} is more than steps ({steps}); "
                              "FID would be tracked at the last step only (0 turns tracking off)")  # fmt: skip
        if m["train"]["ema"]["beta"] == 0 and params["sample"]["use_ema"]:
            raise ParamsError(f"models.{name}.train.ema.beta: 0 keeps no EMA, but sample.use_ema is true")


RANDOM_SUFFIX = "_random"  # <selection>_random: the random control of the same size as the selection


def split_names(params: dict, dataset_name: str) -> list[str]:
    """The splits a model on ``dataset_name`` may train on: the dataset's own, and each CAM selection
    from it with its random control (their files are ``data/splits/<name>.json``)."""
    sel = sorted(s for s, v in params["cam"]["selections"].items() if v["dataset"] == dataset_name)
    return [dataset_name] + [n for s in sel for n in (s, s + RANDOM_SUFFIX)]


def _check_cam(params: dict, root: Path) -> None:
    datasets = params["datasets"]
    for name, c in params["cam"]["classifiers"].items():
        key = f"cam.classifiers.{name}"
        for role in ("positive", "negative"):
            if c[role] not in datasets:
                raise ParamsError(f"{key}.{role}: no such dataset {c[role]!r}")
        if c["positive"] == c["negative"]:
            raise ParamsError(f"{key}.negative: the same dataset as positive ({c['positive']!r})")
        sizes = {datasets[c[r]]["size"] for r in ("positive", "negative")}
        if len(sizes) > 1:
            raise ParamsError(f"{key}: the two classes have different sizes {sorted(sizes)}; one classifier input size")
        if c["weights"] and c["arch"] == "small_cnn":
            raise ParamsError(f"{key}.weights: small_cnn has no pretrained weights; use null or a torchvision arch")
        if c["weights"] and not (root / c["weights"]).is_file():
            raise ParamsError(f"{key}.weights: no such file: {c['weights']} (relative to the folder of params.yaml)")
    taken = set(datasets)
    for name, s in params["cam"]["selections"].items():
        key = f"cam.selections.{name}"
        for n in (name, name + RANDOM_SUFFIX):
            if n in taken:
                raise ParamsError(f"{key}: {n!r} would name two splits (data/splits/{n}.json); rename the selection")
            taken.add(n)
        if s["classifier"] not in params["cam"]["classifiers"]:
            known = ", ".join(sorted(params["cam"]["classifiers"])) or "none"
            raise ParamsError(f"{key}.classifier: no such classifier {s['classifier']!r} (declared: {known})")
        if s["dataset"] not in datasets:
            raise ParamsError(f"{key}.dataset: no such dataset {s['dataset']!r}")
        clf = params["cam"]["classifiers"][s["classifier"]]
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


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read, cross-check and validate ``params.yaml``; the root for relative paths is its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ParamsError(f"(file): cannot read {path}: {e.strerror}") from None
    return validate(parse_yaml_both(text), root=path.parent)


def dataset(params: dict, name: str) -> dict:
    """The declaration of one dataset, or a :class:`ParamsError` naming the missing key."""
    try:
        return params["datasets"][name]
    except KeyError:
        known = ", ".join(sorted(params["datasets"]))
        raise ParamsError(f"datasets.{name}: no such dataset (declared: {known})") from None


def model(params: dict, name: str) -> dict:
    """The section of one model, or a :class:`ParamsError` naming the missing key."""
    try:
        return params["models"][name]
    except KeyError:
        known = ", ".join(sorted(params["models"])) or "none"
        raise ParamsError(f"models.{name}: no such model (declared: {known})") from None


def section_entry(params: dict, section: str, group: str, name: str) -> dict:
    """``params[section][group][name]`` (e.g. cam.selections.x), or a :class:`ParamsError` naming it."""
    try:
        return params[section][group][name]
    except KeyError:
        known = ", ".join(sorted(params[section][group])) or "none"
        raise ParamsError(f"{section}.{group}.{name}: not declared (declared: {known})") from None


def pair(params: dict, name: str) -> dict:
    """One entry of ``compare.pairs``, or a :class:`ParamsError` naming the missing key."""
    try:
        return params["compare"]["pairs"][name]
    except KeyError:
        known = ", ".join(sorted(params["compare"]["pairs"])) or "none"
        raise ParamsError(f"compare.pairs.{name}: no such pair (declared: {known})") from None
