# Helpers shared by the rule files.  Every stage is a whole `animegen <stage>` command; the modules it
# imports are listed as inputs because neither Snakemake nor DVC follows Python imports (the same lists
# appear in dvc.yaml; tests/test_pipeline.py checks both against the real import graph).
import json
import os
import re
import sys
from pathlib import Path

from animegen import paths
from animegen.config import EXIT_PARAMS, ParamsError, load_params
from animegen.models import registry

try:
    load_params("params.yaml")  # same checks as every stage: unknown keys, types, YAML 1.1/1.2 agreement
except ParamsError as e:
    sys.stderr.write(f"animegen: params.yaml: {e}\n")
    sys.exit(EXIT_PARAMS)

DATASETS = sorted(config["datasets"])
MODELS = sorted(config["models"])
SOURCES, RAW, CUTOUT, PROCESSED, SPLIT = (
    paths.SOURCES, paths.RAW, paths.CUTOUT, paths.PROCESSED, paths.SPLIT
)
MODEL, TRAIN_METRICS, SAMPLES = paths.MODEL, paths.TRAIN_METRICS, paths.SAMPLES
REFERENCE, EVALUATE, MODEL_METRICS, COMPARE = paths.REFERENCE, paths.EVALUATE, paths.MODEL_METRICS, paths.COMPARE
TRACK, TRACK_METRICS = paths.TRACK, paths.TRACK_METRICS
PAIRS = sorted(config["compare"]["pairs"])
CLASSIFIERS = sorted(config["cam"]["classifiers"])
SELECTIONS = sorted(config["cam"]["selections"])
CAM_CLASSIFIER, CAM_CLASSIFIER_METRICS = paths.CAM_CLASSIFIER, paths.CAM_CLASSIFIER_METRICS
CAM_SELECTION, CAM_SELECTION_METRICS = paths.CAM_SELECTION, paths.CAM_SELECTION_METRICS
CAM_SPLIT, CAM_RANDOM_SPLIT = paths.CAM_SPLIT, paths.CAM_RANDOM_SPLIT


def one_of(names):
    """A wildcard constraint matching exactly these names (split and cam_select both write data/splits/)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    dataset=one_of(DATASETS),
    model="[A-Za-z0-9][A-Za-z0-9_-]*",
    pair="[A-Za-z0-9][A-Za-z0-9_-]*",
    classifier="[A-Za-z0-9][A-Za-z0-9_-]*",
    selection=one_of(SELECTIONS),


def P(key):
    """A params.yaml value as canonical JSON: reordering keys in the file is not a change."""
    value = config
    for k in key.split("."):
        value = value[k]
    return json.dumps(value, sort_keys=True)


def dataset_param(key):
    """`key` below datasets.<dataset>, for a rule's params (e.g. dataset_param("size"))."""
    return lambda wc: P(f"datasets.{wc.dataset}.{key}")


def source_files(wc):
    """data/sources/<dataset>/ itself plus every file in it (directory dates miss nested changes)."""
    root = Path(SOURCES.format(dataset=wc.dataset))
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    return [str(root)] + files


def code(*modules):
    base = ("__init__", "cli", "config", "io", "paths", "stages/__init__", "models/__init__", "models/registry")
    return [f"src/animegen/{m}.py" for m in base + modules]


FEATURES = ("device", "metrics/__init__", "metrics/extractor", "metrics/inception", "metrics/features", "metrics/fid",
            "metrics/reference")  # fmt: skip
CODE = {
    "collect": code(
        "data/__init__", "stages/collect", "data/archive", "data/clean", "data/collect", "data/fetch", "data/synthetic"
    ),
    "cutout": code("data/__init__", "stages/cutout", "data/cutout"),
    "resize": code("data/__init__", "stages/resize", "data/resize"),
    "split": code("data/__init__", "stages/split", "data/split"),
    # + src/animegen/models/<family>.py of the model (see model_code)
    "train": code("stages/train", "train", "models/base", "device", "plots"),
    "sample": code("stages/sample", "train", "models/base", "device"),
    "reference": code("stages/reference", *FEATURES),
    "evaluate": code("stages/evaluate", *FEATURES, "metrics/kid", "metrics/mae"),
    # + src/animegen/models/<family>.py of the model (see model_code)
    "track": code("stages/track", *FEATURES, "plots", "stages/sample", "train", "models/base"),
    "compare": code("stages/compare", "stages/evaluate", *FEATURES, "metrics/kid", "metrics/mae"),
    "summary": code("stages/summary"),
    "cam_classifier": code("stages/cam_classifier", "cam/__init__", "cam/classifier", "device"),
    "cam_select": code("stages/cam_select", "cam/__init__", "cam/scores", "cam/gradcam", "cam/classifier", "device"),
}


def model_code(stage):
    """A model stage's code: the shared modules plus its family's file."""
    return lambda wc: CODE[stage] + [registry.module_path(config["models"][wc.model]["family"])]


def cpu_threads(section):
    """The stage's torch thread count (it sets it itself), so the scheduler books as many cores."""
    return config[section]["cpu_threads"] or len(os.sched_getaffinity(0))


def model_param(key):
    """`key` below models.<model>, for a rule's params (e.g. model_param("net"))."""
    return lambda wc: P(f"models.{wc.model}.{key}")


def pair_input(path, role):
    """A path of one dataset of a compare pair (role: reference or candidate)."""
    return lambda wc: path.format(dataset=config["compare"]["pairs"][wc.pair][role])


def model_input(path):
    """A path of the model's dataset (e.g. its processed images)."""
    return lambda wc: path.format(dataset=config["models"][wc.model]["dataset"])


def model_split(wc):
    """The split file the model trains on: its dataset's, or a CAM selection's (models.<m>.split)."""
    return SPLIT.format(dataset=config["models"][wc.model]["split"])


def classifier_input(path, role):
    """A path of the positive or negative dataset of a cam.classifiers entry."""
    return lambda wc: path.format(dataset=config["cam"]["classifiers"][wc.classifier][role])


def selection_input(path):
    """A path of the dataset a cam.selections entry selects from."""
    return lambda wc: path.format(dataset=config["cam"]["selections"][wc.selection]["dataset"])
