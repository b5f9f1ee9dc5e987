"""Stage ``cam_classifier``: train the classifier of one ``cam_classifier`` entry (positive vs negative).

Reads:  the train and test splits of the ``positive`` and ``negative`` datasets
        (``data/processed/<dataset>/images/``, ``data/splits/<dataset>.json``); ``params.yaml``
        sections ``cam_classifier.<name>`` and ``cam`` (device and threads, shared with ``cam_select``).
Writes: ``data/cam/classifiers/<name>/`` with ``classifier.pt`` (weights, arch, classes, default Grad-CAM
        layer) and ``train.json`` (per-epoch loss and accuracy, the counts and names); ``metrics/cam/classifiers/<name>.json``
        with the held-out accuracy on the two test splits (overall, per class, balanced): numbers only.
Guarantees: outputs appear complete or not at all; on the CPU a rerun gives the same weights (seeded
initialisation, batch order and flips; threads set by the stage).  A class with fewer than
``min_train_images`` train images, or an unreadable image, stops the stage with a message naming it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from animegen import paths
from animegen.artifacts.classifier import write_classifier
from animegen.artifacts.records import pick, write_metrics
from animegen.artifacts.split import load_split_images
from animegen.cam import classifier as clf
from animegen.device import setup as device_setup
from animegen.io import atomic_dir
from animegen.stages import StageError


def _accuracy(probs: np.ndarray, labels: np.ndarray) -> dict:
    pred = probs.argmax(1)
    per_class = {c: float((pred[labels == c] == c).mean()) for c in (0, 1) if (labels == c).any()}
    return {
        "accuracy": float((pred == labels).mean()),
        "accuracy_positive": per_class.get(1),
        "accuracy_negative": per_class.get(0),
        "balanced_accuracy": float(np.mean(list(per_class.values()))),
    }


# the numbers a user compares; names, counts and the device stay in the classifier's train.json
METRICS = ("accuracy", "balanced_accuracy", "accuracy_positive", "accuracy_negative", "train_accuracy", "final_loss")


def run(params: dict, name: str, root: Path) -> dict:
    c = params["cam_classifier"][name]
    key = f"cam_classifier.{name}"
    data = {}
    for role in ("positive", "negative"):
        train_ids, train = load_split_images(root, c[role], "train")
        test_ids, test = load_split_images(root, c[role], "test")
        if len(train_ids) < c["min_train_images"]:
            raise StageError(
                f"cam_classifier {name}: class {role} ({c[role]}) has {len(train_ids)} train images, fewer than "
                f"{key}.min_train_images = {c['min_train_images']}"
            )
        data[role] = (train, test)
    shapes = {data[r][0].shape[1:] for r in data}
    if len(shapes) > 1:
        raise StageError(f"cam_classifier {name}: the classes' images differ in size {sorted(shapes)}")
    device = device_setup(params["cam"], "cam")
    torch.manual_seed(c["seed"])
    try:
        net = clf.build(c["arch"], c["width"], c["depth"], root / c["weights"] if c["weights"] else None)
    except (ValueError, RuntimeError) as e:
        raise StageError(f"{key}.weights: {e}") from None
    x_train = np.concatenate([data["positive"][0], data["negative"][0]])
    y_train = np.concatenate([np.ones(len(data["positive"][0])), np.zeros(len(data["negative"][0]))]).astype(np.int64)
    x_test = np.concatenate([data["positive"][1], data["negative"][1]])
    y_test = np.concatenate([np.ones(len(data["positive"][1])), np.zeros(len(data["negative"][1]))]).astype(np.int64)
    log = lambda msg: print(f"cam_classifier {name}: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"{c['arch']} on {len(x_train)} train images ({c['positive']} vs {c['negative']}) at {x_train.shape[1]} px, "
        f"device {device}")  # fmt: skip
    cfg = clf.FitConfig(c["arch"], c["epochs"], c["batch_size"], c["lr"], c["weight_decay"], c["hflip"], c["seed"])
    try:
        fitted = clf.fit(net, x_train, y_train, cfg, device, log=log)
    except FloatingPointError as e:
        raise StageError(f"cam_classifier {name}: {e} (lower {key}.lr)") from None
    held_out = _accuracy(clf.predict(net, x_test, c["arch"], device), y_test)
    train_acc = _accuracy(clf.predict(net, x_train, c["arch"], device), y_train)["accuracy"]
    metrics = {
        "classifier": name, "arch": c["arch"], "positive": c["positive"], "negative": c["negative"],
        "n_train": {"positive": int(y_train.sum()), "negative": int((1 - y_train).sum())},
        "n_test": {"positive": int(y_test.sum()), "negative": int((1 - y_test).sum())},
        **held_out, "train_accuracy": train_acc, "final_loss": fitted.history[-1]["loss"] if fitted.history else None,
        "device": device.type,
    }  # fmt: skip
    meta = {
        "arch": c["arch"], "width": c["width"], "depth": c["depth"], "image_size": int(x_train.shape[1]),
        "classes": {"0": c["negative"], "1": c["positive"]},
        "default_target_layer": clf.default_target_layer(c["arch"], c["depth"]),
    }  # fmt: skip
    with atomic_dir(root / paths.CAM_CLASSIFIER.format(classifier=name)) as tmp:
        write_classifier(tmp, net, meta, fitted.history, metrics)
    write_metrics(root / paths.CAM_CLASSIFIER_METRICS.format(classifier=name), pick(metrics, METRICS))
    return {k: metrics[k] for k in ("classifier", "accuracy", "balanced_accuracy", "train_accuracy")}
