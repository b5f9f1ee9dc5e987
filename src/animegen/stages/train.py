"""Stage ``train``: train one model of ``params.yaml``'s ``models:`` on its dataset's train split.

Reads:  ``data/processed/<dataset>/images/`` and ``data/splits/<split>.json`` (``split`` is the dataset
        itself, or a CAM selection of it and its random control); ``params.yaml`` sections ``train``
        (the loop) and ``models.<name>`` (``family``, ``dataset``, ``split``, ``train``, ``net``).
Writes: ``data/models/<name>/`` with ``model.pt`` (every network's weights and the EMA generator's,
        plus what sampling needs to rebuild the model), ``curves.png`` (the loss curves with an EMA,
        for people and the report), ``train.json`` (steps done, why it stopped,
        resume, refused checkpoints, parameter counts, device) and, when ``train.track_fid_every`` is
        set, ``snapshots/step_NNNNNNNN.pt`` (the generator and its EMA every N steps and at the last
        step, for the track stage); ``metrics/train/<name>/``
        (dvclive ``metrics.json`` and ``plots/``: the training curves).
Keeps:  ``data/checkpoints/<name>/`` (not an output): the resumable state.  Rerunning the stage after an
        interruption continues from the last checkpoint that verifies; delete the folder to start over.
Guarantees: outputs appear complete or not at all; on the CPU a resumed run ends with the same weights
as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

from animegen.artifacts.split import load_split_images
from animegen.fitting import FitError, fit
from animegen.stages import StageError


def run(params: dict, name: str, root: Path) -> dict:
    m = params["models"][name]
    ids, images = load_split_images(root, m["dataset"], split=m["split"])
    if len(ids) < 2:
        raise StageError(f"train {name}: the train split {m['split']} of {m['dataset']} has {len(ids)} image(s); need at least 2")
    record = {"dataset": m["dataset"], "split": m["split"], "n_train_images": len(ids)}
    try:
        return fit(params, "models", name, images, images.shape[1], root, record, title=f"on {m['split']}",
                   data=f"{len(ids)} images of {m['dataset']} (split {m['split']})")  # fmt: skip
    except FitError as e:
        raise StageError(str(e)) from None
