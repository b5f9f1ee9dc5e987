"""The ``animegen`` command: one subcommand per pipeline stage, plus ``validate`` and ``timing``.

Exit codes: 0 success; 1 a stage could not produce a trustworthy output (message says why, nothing
written); 2 a bad ``params.yaml`` or a bad argument (one line naming the key, nothing written).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import sys
import time
from pathlib import Path

from animegen import __version__, gpus, runs
from animegen.config import EXIT_PARAMS, ParamsError, entry, load_params
from animegen.errors import PipelineError
from animegen.stages import StageError

DATASET_STAGES = {
    "collect": "gather raw images of a dataset from its sources (folders, archives, URL lists, synthetic)",
    "cutout": "cut the character out onto a black background (alpha, flood fill + GrabCut, or ONNX model)",
    "resize": "crop, pad to a black square and resize to the dataset's size without silent upscaling",
    "split": "deterministic train/test split by image id",
    "reference": "Inception features and FID floor of a dataset's train split (reused by every model)",
    "derive": "what AnimeGAN needs once per dataset: edge-smoothed copies (style sets), face masks (photo sets)",
}
MODEL_STAGES = {
    "train": "train one model of params.yaml's models: (resumes from its last checkpoint)",
    "sample": "draw sample.n images from one trained model, plus a grid",
    "evaluate": "FID, KID, MAE, NWI, memorisation rate and audit image of one model's samples",
    "track": "FID over training: every generator snapshot of one model (models.<m>.train.track_fid_every)",
}
TRANSLATOR_STAGES = {
    "train_translator": "train one image-to-image model of params.yaml's translators: (resumes from its last checkpoint)",
    "translate": "translate a translator's source test images (ids kept), plus an input | output | reconstruction grid",
    "evaluate_translation": "FID, KID x100 and the character ratio (bootstrap 95 %% interval) of one translator",
    "track_translator": "FID over training of one translator, from its snapshots (translators.<t>.train.track_fid_every)",
}
PAIR_STAGES = {"compare": "FID, KID, MAE and NWI between the two datasets of a compare.pairs entry"}
CLASSIFIER_STAGES = {"cam_classifier": "train a cam_classifier entry (positive vs negative dataset) for Grad-CAM"}
SELECTION_STAGES = {"cam_select": "score a dataset's train images by Grad-CAM concentration and select a training set"}
OTHER_STAGES = {
    "summary": "all models', translators' and pairs' metrics in metrics/summary.json and tables",
    "survey": "a blind rating page (input | output, model hidden) of survey.models' translations, and its key",
    "survey_score": "mean scores, 95 %% intervals and paired tests from the raters' CSV files in data/survey_answers/",
}
# The stages whose rules declare resources gpu=1: each claims a GPU of its own on a machine with several
# (animegen.gpus), before torch starts.
GPU_STAGES = frozenset({"train", "sample", "reference", "evaluate", "track", "compare", "cam_classifier", "cam_select",
                        *TRANSLATOR_STAGES})  # fmt: skip
# The data stages that run over a process pool (animegen.parallel): their `--workers N` overrides the param.
POOLED_STAGES = frozenset({"collect", "cutout", "resize"})
# The params section whose `device` each GPU stage computes on (the others: inception, the feature extractor).
DEVICE_SECTIONS = {"train": "train", "train_translator": "train", "sample": "sample", "translate": "translate",
                   "cam_classifier": "cam", "cam_select": "cam"}  # fmt: skip


def claims_gpu(stage: str, params: dict) -> bool:
    """Whether ``stage`` claims a GPU of its own (animegen.gpus): a GPU stage whose device is ``auto`` or
    ``cuda``.  One set to ``cpu`` needs none, and one pinned to ``cuda:N`` keeps the GPU its user chose."""
    if stage not in GPU_STAGES:
        return False
    return params[DEVICE_SECTIONS.get(stage, "inception")]["device"] in ("auto", "cuda")


# (stages, the flag naming their target, the params.yaml section that declares the targets)
GROUPS = (
    (DATASET_STAGES, "--dataset", "datasets"),
    (MODEL_STAGES, "--model", "models"),
    (TRANSLATOR_STAGES, "--model", "translators"),
    (PAIR_STAGES, "--pair", "compare.pairs"),
    (CLASSIFIER_STAGES, "--classifier", "cam_classifier"),
    (SELECTION_STAGES, "--selection", "cam_select"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animegen", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"animegen {__version__}")
    parser.add_argument("--params", default="params.yaml", help="params file; its folder is the workspace root")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    sub.add_parser("validate", help="check params.yaml and exit", description="Check params.yaml and exit (0 ok, 2 bad).")
    sub.add_parser("timing", help="training and generation wall time per model (study A's budgets), from logs/runs/",
                   description=runs.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    for stages, flag, section in GROUPS:
        flag_help = f"a name declared under {section}: in params.yaml"
        for name, text in stages.items():
            p = sub.add_parser(name, help=text, description=_stage_doc(name), formatter_class=argparse.RawDescriptionHelpFormatter)
            p.add_argument(flag, required=True, help=flag_help)
            if name in POOLED_STAGES:
                p.add_argument("--workers", type=int, metavar="N", help=f"processes, overriding {name}.workers "
                               "(Snakemake passes the cores it gave the job); the outputs are the same for any N")
    for name, text in OTHER_STAGES.items():
        sub.add_parser(name, help=text, description=_stage_doc(name), formatter_class=argparse.RawDescriptionHelpFormatter)
    return parser


def _stage_doc(name: str) -> str:
    """A stage module's docstring, read without importing it (a stage run imports only its own code)."""
    spec = importlib.util.find_spec(f"animegen.stages.{name}")
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    params_path = Path(args.params)
    try:
        params = load_params(params_path)
        if args.command == "validate":
            print(f"{params_path}: ok ({len(params['datasets'])} datasets)")
            return 0
        if args.command == "timing":
            print(runs.timing_table(params, params_path.resolve().parent), end="")
            return 0
        target = None
        for stages, flag, section in GROUPS:
            if args.command in stages:
                target = getattr(args, flag.lstrip("-"))
                entry(params, section, target)  # a name not declared is a params error, before any work
        if getattr(args, "workers", None) is not None and args.workers < 1:
            raise ParamsError(f"--workers: must be at least 1, got {args.workers}")
    except ParamsError as e:
        print(f"animegen: {params_path}: {e}", file=sys.stderr)
        return EXIT_PARAMS
    try:
        gpu = gpus.claim(log=lambda msg: print(f"animegen {args.command}: {msg}", file=sys.stderr, flush=True)) \
            if claims_gpu(args.command, params) else None  # fmt: skip
        stage = importlib.import_module(f"animegen.stages.{args.command}")
        t0, started = time.perf_counter(), time.time()  # once the GPU is ours
        extra = {"workers": args.workers} if getattr(args, "workers", None) is not None else {}
        report = stage.run(params, target, params_path.resolve().parent, **extra)
    except PipelineError as e:  # a stage, an artifact, a device or missing FID weights: the message says why
        where = "" if isinstance(e, StageError) else f"{args.command}: "  # a stage's own message names it already
        print(f"animegen: {where}{e}", file=sys.stderr)
        return 1
    # Timing goes to the log and the run record only: outputs must be byte-identical across reruns (DVC
    # hashes them).  started_at/finished_at (epoch seconds) let a test check that GPU stages never overlapped.
    seconds = round(time.perf_counter() - t0, 3)
    times = {"seconds": seconds, "started_at": round(started, 3), "finished_at": round(time.time(), 3)}
    if gpu is not None:
        times["gpu"] = gpu  # the GPU this run claimed (CUDA_VISIBLE_DEVICES), with the timing: never in an output
    print(json.dumps({"stage": args.command, **report, **times}, sort_keys=True))
    try:
        runs.write_run_record(params_path.resolve().parent, args.command, target, {**report, **times})
    except OSError as e:  # the outputs are complete; only `animegen timing` loses this run
        print(f"animegen: warning: no run record written ({e})", file=sys.stderr)
    return 0
