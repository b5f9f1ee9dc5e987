# Helpers shared by the rule files.  Every stage is a whole `animegen <stage>` command; the modules it
# imports are listed as inputs because neither Snakemake nor DVC follows Python imports (the same lists
# appear in dvc.yaml; tests/test_pipeline.py checks both against the real import graph).
import json
import os
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
PAIRS = sorted(config["compare"]["pairs"])


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",
    model="[A-Za-z0-9][A-Za-z0-9_-]*",
    pair="[A-Za-z0-9][A-Za-z0-9_-]*",


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
    "train": code("stages/train", "train", "models/base", "device"),
    "sample": code("stages/sample", "train", "models/base", "device"),
    "reference": code("stages/reference", *FEATURES),
    "evaluate": code("stages/evaluate", *FEATURES, "metrics/kid", "metrics/mae"),
    "compare": code("stages/compare", "stages/evaluate", *FEATURES, "metrics/kid", "metrics/mae"),
    "summary": code("stages/summary"),
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
    """A path of the model's dataset (e.g. its processed images or its split file)."""
    return lambda wc: path.format(dataset=config["models"][wc.model]["dataset"])
