# Helpers shared by the rule files.  Every stage is a whole `animegen <stage>` command; the modules it
# imports are listed as inputs because neither Snakemake nor DVC follows Python imports (the same lists
# appear in dvc.yaml; tests/test_pipeline.py checks both against the real import graph).
import json
import sys
from pathlib import Path

from animegen import paths
from animegen.config import EXIT_PARAMS, ParamsError, load_params

try:
    load_params("params.yaml")  # same checks as every stage: unknown keys, types, YAML 1.1/1.2 agreement
except ParamsError as e:
    sys.stderr.write(f"animegen: params.yaml: {e}\n")
    sys.exit(EXIT_PARAMS)

DATASETS = sorted(config["datasets"])
SOURCES, RAW, CUTOUT, PROCESSED, SPLIT = (
    paths.SOURCES, paths.RAW, paths.CUTOUT, paths.PROCESSED, paths.SPLIT
)


wildcard_constraints:
    dataset="[A-Za-z0-9][A-Za-z0-9_-]*",


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
    base = ("__init__", "cli", "config", "io", "paths", "stages/__init__", "data/__init__")
    return [f"src/animegen/{m}.py" for m in base + modules]


CODE = {
    "collect": code(
        "stages/collect", "data/archive", "data/clean", "data/collect", "data/fetch", "data/synthetic"
    ),
    "cutout": code("stages/cutout", "data/cutout"),
    "resize": code("stages/resize", "data/resize"),
    "split": code("stages/split", "data/split"),
}
