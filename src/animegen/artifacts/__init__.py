"""One module per kind of file that crosses a stage boundary: its writer, its reader, its format version.

A stage never opens another stage's file by hand: it calls the reader here, which checks the file's
``format`` tag (``animegen.<kind>/<version>``) and refuses a file of another kind or version with a
message naming the file and both tags.  A format change is then one edit in one module, and a stale or
foreign file stops the stage that would have trusted it (exit code 1, nothing written).

==============================  ==========================  =================================
file                            writer (stage)              module
==============================  ==========================  =================================
``data/raw|interim/cutout|processed/<d>/`` images, ``manifest.csv``, ``report.json``
                                collect, cutout, resize     :mod:`.images`
``data/splits/<s>.json``        split, cam_select           :mod:`.split`
``data/models/<m>/``            train                       :mod:`.model` (``model.pt``,
                                                            ``train.json``, ``snapshots/``)
``data/cam/classifiers/<c>/``   cam_classifier              :mod:`.classifier`
``data/reference/<d>/``         reference                   :mod:`.reference`
``data/samples/<m>/``           sample                      :mod:`.samples`
``metrics/**.json``             evaluate, compare, track,   :mod:`.records` (no tag: DVC shows
                                cam_*, summary              every number as a metric; the
                                                            reader checks the keys it needs)
==============================  ==========================  =================================

Layering: stages -> artifacts -> library (data, metrics, models, cam, train, plots) -> io.  Modules here
may build library objects (a model from its export, a classifier from its weights) but hold no
algorithm of their own.
"""

from __future__ import annotations

from pathlib import Path

from animegen.errors import PipelineError


class ArtifactError(PipelineError):
    """A file that one stage wrote and another reads is missing, unreadable or of another format."""


def format_tag(kind: str, version: int) -> str:
    return f"animegen.{kind}/{version}"


def check_format(path: Path, found, kind: str, version: int) -> None:
    """Refuse ``path`` unless its ``format`` tag is this kind at this version (the message names both)."""
    expected = format_tag(kind, version)
    if found != expected:
        got = "no format tag (written before formats were versioned)" if found is None else f"format {found!r}"
        raise ArtifactError(f"{path}: {got}, but this animegen reads {expected!r}; rerun the stage that writes it")


def load_tagged_torch(path: Path, kind: str, version: int, writer: str) -> dict:
    """A ``torch.save``'d dict (``weights_only`` load, on the CPU) whose tag must be this kind and version;
    ``writer`` names the stage to rerun when it is missing, unreadable or of another format."""
    import torch  # noqa: PLC0415 - the data stages never load a tensor file

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; run {writer}") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise ArtifactError(f"{path}: cannot be read ({e}); rerun {writer}") from None
    check_format(path, blob.get("format") if isinstance(blob, dict) else None, kind, version)
    return blob
