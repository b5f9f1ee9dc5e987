"""The ``params.yaml`` schema: one section per stage (or per group of stages that share settings), no
unknown keys, right types, explicit values everywhere (DVC tracks params only when the key is written
in the file).  Each model family's ``net`` and ``sample`` blocks come from :mod:`animegen.models.registry`,
which owns them.

Sections and who reads them: ``datasets`` (every data stage), ``collect``, ``cutout``, ``resize``,
``split``, ``cam`` (device and threads of both CAM stages), ``cam_classifier``, ``cam_select``,
``train``, ``sample``, ``inception`` (the feature extractor of ``reference``, ``evaluate``, ``compare``
and ``track``), ``reference``, ``metrics`` (KID, memorisation and seed of ``evaluate`` and ``compare``),
``evaluate``, ``compare``, ``track``, ``models``, ``translators`` (image-to-image models: their
training, ``translate`` and ``evaluate_translation``), ``survey`` (the blind rating kit: ``survey`` and
``survey_score``), ``derive`` (what AnimeGAN needs once per dataset: edge-smoothed style images, face
masks of photos).  ``summary`` has no settings.  No key overrides
another, except a dataset's recipe (``datasets.<d>.collect``, ``.cutout``, ``.resize``, ``.split``:
partial sections laid over those sections for that dataset, see :mod:`animegen.recipes`).
"""

from __future__ import annotations

import difflib
import math

import jsonschema

from animegen.config.errors import ParamsError, describe, path_str
from animegen.models.registry import FAMILIES, names
from animegen.recipes import DATA_SECTIONS
from animegen.schema_types import BOOL, INT, NONNEG_INT, NONNEG_NUM, OPT_STR, POS_INT, POS_NUM, STR, UNIT, obj

SOURCES_ROOT = "data/sources"
# images a stage makes: study A samples 1024, FID's usual 50k fits; 10**9 would run for weeks
IMAGE_COUNT = {"type": "integer", "minimum": 1, "maximum": 100_000}
DATASET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"

_SOURCE_TYPES = {
    "folder": obj({"type": STR, "path": STR, "license": STR, "credit": STR}, ["type", "path"]),
    "archive": obj({"type": STR, "path": STR, "license": STR, "credit": STR}, ["type", "path"]),
    "urls": obj({"type": STR, "path": STR, "license": STR, "credit": STR}, ["type", "path"]),
    "synthetic": obj(
        {
            "type": STR,
            "kind": {"enum": ["face", "body"]},
            "style": {"enum": ["a", "b", "photo"]},  # photo: photo-like human faces (kind face only)
            "variant": {"enum": ["early", "later"]},
            "n": IMAGE_COUNT,
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
            # cutout failure cases (the cutout gate's demo): the character on its own skin or hair colour,
            # or cut by the frame; mixed takes them in turn
            "hazard": {"enum": [None, "skin_background", "hair_background", "cut_by_frame", "mixed"]},
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

WORKERS = {"type": "integer", "minimum": 0, "maximum": 1024}  # processes of a data stage; 0 = every available CPU

COLLECT = obj(
    {
        "workers": WORKERS,
        "max_pixels": POS_INT,
        "min_side": POS_INT,
        "max_aspect_ratio": {"type": "number", "minimum": 1},
        "min_colours": POS_INT,
        "near_duplicate": obj(
            {
                "phash_max_distance": {"type": ["integer", "null"], "minimum": 0, "maximum": 64},
                "colorhash_max_distance": {"type": ["integer", "null"], "minimum": 0},
            }
        ),
        "archive": obj(
            {
                "max_entries": POS_INT,
                "max_entry_bytes": POS_INT,
                "max_total_bytes": POS_INT,
                "max_ratio": POS_NUM,
            }
        ),
        "urls": obj(
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
)
CUTOUT = obj(
    {
        "method": {"enum": ["auto", "alpha", "floodfill", "grabcut", "onnx", "none"]},
        "onnx_model": OPT_STR,
        "onnx_size": POS_INT,
        "flood_tolerance": {"type": "integer", "minimum": 0, "maximum": 255},
        "border_match": {"type": "number", "minimum": 0, "maximum": 1},
        "grabcut_iterations": NONNEG_INT,
        "grabcut_margin": {"type": "number", "minimum": 0, "maximum": 0.45},
        "work_max_side": {"type": "integer", "minimum": 32},
        "min_foreground": {"type": "number", "minimum": 0, "maximum": 1},
        "max_foreground": {"type": "number", "minimum": 0, "maximum": 1},
        "workers": WORKERS,
        "gate": obj(
            {
                "action": {"enum": ["reject", "flag", "off"]},
                "min_largest_part": UNIT,
                "max_holes": UNIT,
                "max_border": UNIT,
                "min_seed_kept": UNIT,
                "contact_sheet": {"type": "integer", "minimum": 0, "maximum": 200},
            }
        ),
    }
)
RESIZE = obj(
    {
        "filter": {"enum": ["lanczos", "bicubic", "box", "area"]},
        "allow_upscale": BOOL,
        "trim_to_foreground": BOOL,
        "margin": {"type": "number", "minimum": 0, "maximum": 1},
        "shoulders_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "workers": WORKERS,
    }
)
SPLIT = obj({"test": NONNEG_NUM, "seed": NONNEG_INT})  # test: 0 = no held-out images
DATA_SECTION_SCHEMAS = {"collect": COLLECT, "cutout": CUTOUT, "resize": RESIZE, "split": SPLIT}


def partial(schema: dict) -> dict:
    """``schema`` with no key required, at any depth: a dataset's override of a section (its keys laid
    over the section's, see :mod:`animegen.recipes`); unknown keys and wrong types are still refused."""
    if schema.get("type") != "object" or "properties" not in schema:
        return schema
    return {**schema, "required": [], "properties": {k: partial(v) for k, v in schema["properties"].items()}}


DATASET = obj(
    {
        "sources": {"type": "array", "items": SOURCE, "minItems": 1},
        "size": {"type": "integer", "minimum": 8, "maximum": 4096},
        "crop": {"enum": ["full", "shoulders_up"]},
        # the dataset's recipe: its own keys of each data stage's section ({} = the section as is)
        **{name: partial(DATA_SECTION_SCHEMAS[name]) for name in DATA_SECTIONS},
    }
)

def named(entry: dict) -> dict:
    """A mapping of user-chosen names (datasets, models, pairs, classifiers, selections) to ``entry``."""
    return {"type": "object", "propertyNames": {"pattern": DATASET_NAME}, "additionalProperties": entry}


IMAGE_SET = {"enum": ["train", "all"]}  # a dataset's train split, or every image (train and test)
DEVICE = {"type": "string", "pattern": r"^(auto|cpu|cuda(:[0-9]+)?)$"}

MODEL_TRAIN = obj(
    {
        "steps": POS_INT,
        "time_budget_hours": POS_NUM,
        "batch_size": POS_INT,
        "seed_offset": NONNEG_INT,
        "hflip": BOOL,
        "precision": {"enum": ["fp32", "bf16", "fp16"]},
        "track_fid_every": NONNEG_INT,  # 0: off; else a generator snapshot every N steps for the track stage
        "ema": obj(
            {
                "beta": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                "update_after_step": NONNEG_INT,
                "update_every": POS_INT,
            }
        ),
    }
)


def _family_blocks(kind: str, keys: tuple[str, ...]) -> list[dict]:
    """The ``kind`` families' own blocks (``net``, ``sample``) from the registry, chosen by ``family``."""
    return [
        {"if": {"properties": {"family": {"const": name}}},
         "then": {"properties": {k: getattr(FAMILIES[name], k) for k in keys}}}
        for name in names(kind)
    ]  # fmt: skip


MODEL = {
    **obj(
        {
            "family": {"enum": names("unconditional")},
            "dataset": STR,
            "split": STR,
            "reference": IMAGE_SET,  # which of the dataset's images evaluate and track score the samples against
            "train": MODEL_TRAIN,
            "net": {"type": "object"},
            "sample": {"type": "object"},
        }
    ),
    "allOf": _family_blocks("unconditional", ("net", "sample")),  # each family's own net/sample keys, from the registry
}


DOMAIN = obj({"dataset": STR, "split": STR})  # a dataset and the split file it trains on (itself, or a CAM selection)
TRANSLATOR = {
    **obj(
        {
            "family": {"enum": names("translation")},
            "source": DOMAIN,  # domain a: what is translated (study C: human face photos)
            "target": DOMAIN,  # domain b: what it should look like (study C: anime faces)
            "paired": BOOL,  # train on pairs: each source image with the target image of the same id, drawn together
            "classifier": STR,  # a cam_classifier entry (source class vs target class): CAM maps and character ratio
            "target_class": {"enum": ["positive", "negative"]},  # the classifier's class of the target domain
            "reference": IMAGE_SET,  # which target images FID and KID compare the translations against
            "train": MODEL_TRAIN,
            "net": {"type": "object"},
        }
    ),
    "allOf": _family_blocks("translation", ("net",)),
}

CAM_CLASSIFIER = obj(
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
CAM_SELECTION = obj(
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
        "min_confidence": UNIT,  # p(target) below this: not recognisable as the class, never selected nor drawn
        "overlay_count": NONNEG_INT,
        "seed": NONNEG_INT,
    }
)

SCHEMA = obj(
    {
        "datasets": {**named(DATASET), "minProperties": 1},
        **DATA_SECTION_SCHEMAS,
        "train": obj(
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
        "sample": obj(
            {
                "n": IMAGE_COUNT,
                "batch_size": POS_INT,
                "grid": NONNEG_INT,
                "seed": NONNEG_INT,
                "use_ema": BOOL,
                "tf32": BOOL,
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
            }
        ),
        "inception": obj(
            {
                "weights": OPT_STR,
                "batch_size": {"anyOf": [POS_INT, {"const": "auto"}]},
                "precision": {"enum": ["fp32", "tf32", "bf16"]},
                "compile": BOOL,
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
            }
        ),
        "reference": obj({"floor_splits": POS_INT, "seed": NONNEG_INT}),
        "track": obj(
            {
                "n": {"type": "integer", "minimum": 2},  # a covariance needs 2 samples
                "batch_size": POS_INT,
                "seed": NONNEG_INT,
                "smoothing": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            }
        ),
        "metrics": obj(
            {
                "kid_subsets": POS_INT,
                "kid_subset_size": {"type": "integer", "minimum": 2},
                "memorisation_threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "seed": NONNEG_INT,
            }
        ),
        "evaluate": obj({"audit_count": POS_INT}),
        "compare": obj({"pairs": named(obj({"reference": STR, "candidate": STR, "images": IMAGE_SET}))}),
        "cam": obj({"device": DEVICE, "cpu_threads": NONNEG_INT}),
        "cam_classifier": named(CAM_CLASSIFIER),
        "cam_select": named(CAM_SELECTION),
        "models": named(MODEL),
        "translate": obj(
            {
                "images": {"enum": ["test", "all"]},  # the source's test split, or every image of it
                "batch_size": POS_INT,
                "grid": NONNEG_INT,  # rows of input | output | reconstruction in grid.png (0: no grid)
                "use_ema": BOOL,  # translate with the EMA generator (needs train.ema.beta > 0)
                "tf32": BOOL,
                "device": DEVICE,
                "cpu_threads": NONNEG_INT,
            }
        ),
        "evaluate_translation": obj(
            {
                "bootstrap": {"type": "integer", "minimum": 100},  # resamples of the character ratio's 95 % interval
                "seed": NONNEG_INT,
            }
        ),
        "translators": named(TRANSLATOR),
        "derive": obj(
            {
                "edge_smooth": {"type": "array", "items": STR, "uniqueItems": True},  # datasets (AnimeGAN style sets)
                "faces": {"type": "object", "additionalProperties": {"enum": ["boxes", "mtcnn"]}},  # dataset: method
                "smooth_kernel": {"type": "integer", "minimum": 3, "maximum": 15, "multipleOf": 1},
                "canny": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 1000}, "minItems": 2, "maxItems": 2},
                "face_shape": {"enum": ["ellipse", "box"]},
                "mtcnn_min_confidence": UNIT,
            }
        ),
        "survey": obj(
            {
                "models": {"type": "array", "items": STR, "uniqueItems": True},  # translators (2 or more; [] = no survey)
                "per_model": POS_INT,
                "scale": {"type": "array", "items": INT, "minItems": 2, "maxItems": 2},
                "questions": {"type": "array", "items": STR, "minItems": 1},
                "seed": NONNEG_INT,
                "title": STR,
                "bootstrap": {"type": "integer", "minimum": 100},
            }
        ),
    }
)


def format_error(err: jsonschema.ValidationError) -> str:
    path = list(err.absolute_path)
    where = path_str(path)
    v = err.validator
    if v == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        key = path_str(path + [extra[0]]) if extra else where
        close = difflib.get_close_matches(extra[0], allowed, n=1) if extra else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{key}: unknown key ({hint}allowed here: {', '.join(allowed)})"
    if v == "required":
        missing = [k for k in err.validator_value if k not in err.instance]
        return f"{path_str(path + [missing[0]])}: required key is missing"
    if v == "type":
        want = err.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"{where}: expected {want}, got {describe(err.instance)}"
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
    # Prefer the deepest error (most specific key path); at one depth an unknown key before a missing
    # one (a typo'd ``cutuot:`` is named as such, not as "cutout: required"); then the schema's order.
    return (-len(err.absolute_path), err.validator != "additionalProperties", str(list(err.absolute_path)))


def _not_finite(value, path=()):
    """The key path of the first number that is inf or nan (YAML's ``.inf``, ``.nan``), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        found = _not_finite(v, (*path, k))
        if found is not None:
            return found
    return None


def check_schema(params: dict) -> None:
    """Raise :class:`ParamsError` for the most specific schema violation, naming its key.  No value may
    be infinite or NaN: no setting means "no limit" that way (``timeout: .inf`` crashed a download)."""
    bad = _not_finite(params)
    if bad is not None:
        raise ParamsError(f"{path_str(bad)}: must be a finite number, got {get_in(params, bad)}")
    errors = sorted(_Validator(SCHEMA).iter_errors(params), key=_error_rank)
    if errors:
        raise ParamsError(format_error(errors[0]))


def get_in(value, path):
    for k in path:
        value = value[k]
    return value
