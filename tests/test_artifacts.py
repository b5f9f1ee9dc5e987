"""Every file that crosses a stage boundary, through its one writer and its one reader: a round trip, and
a file of another format version or kind refused with a message naming the file and both tags."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from animegen.artifacts import ArtifactError, format_tag, images, model, records, reference, samples, split
from animegen.artifacts.classifier import read_classifier, write_classifier
from animegen.cam import classifier as clf
from animegen.models import registry
from animegen.train import export_generator

DCGAN = {"nz": 4, "ngf": 4, "ndf": 4, "lr": 0.0002, "betas": [0.5, 0.999]}


def _retag_json(path, tag):
    data = json.loads(path.read_text())
    data["format"] = tag
    path.write_text(json.dumps(data))


def _retag_torch(path, tag):
    blob = torch.load(path, weights_only=True)
    blob["format"] = tag
    torch.save(blob, path)


def _image_set(folder):
    images.start(folder)
    a, b = "a" * 16, "b" * 16  # image ids are 16 hex digits
    for i in (a, b):
        images.write_image(folder, images.image_file(i), np.full((8, 8, 3), ord(i[0]), np.uint8))
    rows = [{"id": i, "file": images.image_file(i), "extra": {"parts": {"eye": [0, 0, 1, 1]}} if i == a else {}}
            for i in (a, b)]  # fmt: skip
    _write_set(folder, rows, [{"id": "c" * 16, "reason": "truncated"}], ["id", "file", "extra"])
    return folder / "report.json", lambda: images.read_manifest(folder)


def _split(tmp):
    path = tmp / "splits" / "ds.json"
    split.write_split(path, {"train": ["a" * 16], "test": ["b" * 16]})
    return path, lambda: split.read_split(path)


def _samples(tmp):
    folder = tmp / "samples"
    folder.mkdir()
    samples.start(folder)
    samples.write_image(folder, 0, np.zeros((8, 8, 3), np.uint8))
    samples.write_sample_record(folder, {"n": 1, "trained_steps": 3})
    return folder / "sample.json", lambda: samples.read_samples(folder)


def _reference(tmp):
    folder = tmp / "reference"
    folder.mkdir()
    feats = np.random.default_rng(0).normal(size=(5, 3))
    stats = {name: (feats[:n].mean(0), np.cov(feats[:n], rowvar=False)) for name, n in (("train", 4), ("all", 5))}
    sets = {"train": {"n_images": 4, "floor": None}, "all": {"n_images": 5, "floor": None}}
    reference.write_reference(folder, feats, stats,
                              {"ids": list("abcde"), "sets": sets, "weights": {"sha256": "w" * 64, "origin": "test"}})  # fmt: skip
    return folder / "reference.json", lambda: reference.read_reference(folder, "w" * 64, "train", list("abcd"))


def _model(tmp):
    folder = tmp / "model"
    folder.mkdir()
    torch.manual_seed(0)
    m = registry.model_class("dcgan")(DCGAN, 16)
    model.write_model(folder, family="dcgan", net=DCGAN, image_size=16, channels=3, seed_offset=0, step=3,
                      exported=export_generator(m, None))  # fmt: skip
    return folder / "model.pt", lambda: model.read_model(folder, "dcgan", DCGAN)


def _train_record(tmp):
    folder = tmp / "model"
    folder.mkdir()
    model.write_train_record(folder, {"steps_done": 3})
    return folder / "train.json", lambda: model.read_train_record(folder)


def _snapshot(tmp):
    folder = tmp / "model"
    store = model.SnapshotStore(tmp / "ckpt" / "snapshots", "fp")
    store.directory.mkdir(parents=True)
    store.save(2, {"w": torch.ones(2)}, None)
    folder.mkdir()
    assert store.copy_to(folder, 2) == [2]
    return folder / "snapshots" / "step_00000002.pt", lambda: list(model.read_snapshots(folder, "fp", [2]))


def _classifier(tmp):
    folder = tmp / "clf"
    folder.mkdir()
    net = clf.build("small_cnn", 4, 2)
    meta = {"arch": "small_cnn", "width": 4, "depth": 2, "image_size": 16, "classes": {"0": "n", "1": "p"},
            "default_target_layer": "blocks.1"}  # fmt: skip
    write_classifier(folder, net, meta, [], {"accuracy": 1.0})
    return folder / "classifier.pt", lambda: read_classifier(folder, torch.device("cpu"))


KINDS = {  # kind: (build a valid one -> (its tagged file, its reader), rewrite the tag of that file)
    "image_set": (lambda t: _image_set(t / "raw"), _retag_json),
    "split": (_split, _retag_json),
    "samples": (_samples, _retag_json),
    "reference": (_reference, _retag_json),
    "model": (_model, _retag_torch),
    "train": (_train_record, _retag_json),
    "snapshot": (_snapshot, _retag_torch),
    "classifier": (_classifier, _retag_torch),
}
VERSIONS = {"reference": reference.VERSION}  # the others are at 1


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_reader_reads_what_its_writer_wrote(kind, tmp_path):
    build, _ = KINDS[kind]
    (tmp_path / "raw").mkdir()
    path, read = build(tmp_path)
    read()  # no error
    tagged = json.loads(path.read_text()) if path.suffix == ".json" else torch.load(path, weights_only=True)
    assert tagged["format"] == format_tag(kind, VERSIONS.get(kind, 1))


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("tag", ["animegen.{kind}/999", "animegen.split/1", None])
def test_each_reader_refuses_another_version_or_kind_naming_the_file_and_both_tags(kind, tag, tmp_path):
    build, retag = KINDS[kind]
    (tmp_path / "raw").mkdir()
    path, read = build(tmp_path)
    if tag == "animegen.split/1" and kind == "split":
        tag = "animegen.model/1"
    found = tag.format(kind=kind) if tag else None
    retag(path, found)
    with pytest.raises(ArtifactError) as err:
        read()
    msg = str(err.value)
    assert str(path) in msg and format_tag(kind, VERSIONS.get(kind, 1)) in msg, msg
    assert (repr(found) in msg) if found else ("no format tag" in msg), msg


A, B = "a" * 16, "b" * 16  # the ids of _image_set


def test_image_set_round_trip_keeps_rows_and_parses_extra(tmp_path):
    _, read = _image_set(tmp_path)
    rows = read()
    assert [r["id"] for r in rows] == [A, B] and rows[0]["extra"] == {"parts": {"eye": [0, 0, 1, 1]}}
    assert rows[1]["extra"] == {}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["kept"] == 2 and report["rejects_by_reason"] == {"truncated": 1}
    assert images.read_images(tmp_path, [B, A])[0, 0, 0, 0] == ord("b")
    assert images.read_images(tmp_path, []).shape == (0, 0, 0, 3)


def test_image_reader_names_an_unreadable_file_and_a_size_mismatch(tmp_path):
    _image_set(tmp_path)
    Image.fromarray(np.zeros((9, 8, 3), np.uint8)).save(tmp_path / "images" / f"{B}.png")
    with pytest.raises(ArtifactError, match=re.escape(str(tmp_path)) + r": images differ in size"):
        images.read_images(tmp_path, [A, B])
    (tmp_path / "images" / f"{A}.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ArtifactError, match=rf"images/{A}\.png: cannot be read"):
        images.read_images(tmp_path, [A])


@pytest.mark.parametrize("bad_id", ["../../../../tmp/x", "a", "A" * 16, "a" * 17, "g" * 16, "", "aaaaaaaaaaaaaaa/"])
def test_an_id_that_is_not_a_hash_is_refused_wherever_it_is_read(tmp_path, bad_id):
    """Ids are 16 hex digits and nothing else: no manifest or split file can name a path."""
    with pytest.raises(ArtifactError, match="is not an image id"):
        images.image_file(bad_id)
    (tmp_path / "set").mkdir()
    _image_set(tmp_path / "set")
    path = tmp_path / "set" / "manifest.csv"
    path.write_text(path.read_text().replace(A, bad_id, 1))
    with pytest.raises(ArtifactError, match=re.escape(f"{path}, line 2: ") + ".*(not an image id|not the id's own)"):
        images.read_manifest(tmp_path / "set")
    split.write_split(tmp_path / "s.json", {"train": [A, bad_id], "test": []})
    with pytest.raises(ArtifactError, match=r"s\.json \(train\): .* is not an image id"):
        split.read_split(tmp_path / "s.json")


@pytest.mark.parametrize("content", [b"", b"id,file\n", "\x00\xff\xfe garbage".encode("latin-1"), b"a,b\n1,2\n",
                                     b"id,file\naaaaaaaaaaaaaaaa,images/../../x.png\n",
                                     b"id,file\naaaaaaaaaaaaaaaa,images/aaaaaaaaaaaaaaaa.gif\n",
                                     b"id,file\naaaaaaaaaaaaaaaa,images/bbbbbbbbbbbbbbbb.jpg\n"])  # fmt: skip
def test_a_broken_manifest_is_a_named_error_not_a_traceback(tmp_path, content):
    _image_set(tmp_path)
    (tmp_path / "manifest.csv").write_bytes(content)
    try:
        rows = images.read_manifest(tmp_path)
    except ArtifactError as e:
        assert str(tmp_path / "manifest.csv") in str(e)
    else:
        assert rows == []  # an empty manifest (header only, or nothing) is an empty set: its stage says so


def test_a_manifest_may_name_its_ids_own_png_or_jpeg(tmp_path):
    """collect keeps an input JPEG that needs no normalisation as images/<id>.jpg: the one other name allowed."""
    _image_set(tmp_path)
    (tmp_path / "manifest.csv").write_text(f"id,file\n{A},images/{A}.jpg\n{B},images/{B}.png\n")
    assert [r["file"] for r in images.read_manifest(tmp_path)] == [f"images/{A}.jpg", f"images/{B}.png"]


def test_a_processed_image_replaced_after_its_stage_is_refused(tmp_path):
    """resize records each image's pixel_sha256; read_images checks what it loads against it."""
    folder = tmp_path / "processed"
    folder.mkdir()
    images.start(folder)
    arrays = {A: np.full((8, 8, 3), 10, np.uint8), B: np.full((8, 8, 3), 20, np.uint8)}
    rows = []
    for i, arr in arrays.items():
        images.write_image(folder, images.image_file(i), arr)
        rows.append({"id": i, "file": images.image_file(i), "pixel_sha256": images.pixel_digest(arr)})
    _write_set(folder, rows, [], ["id", "file", "pixel_sha256"])
    assert images.read_images(folder, [A, B]).shape == (2, 8, 8, 3)
    Image.fromarray(np.full((8, 8, 3), 11, np.uint8)).save(folder / images.image_file(A))  # another valid image
    with pytest.raises(ArtifactError, match=rf"images/{A}\.png: its pixels differ from the checksum"):
        images.read_images(folder, [A, B])
    with pytest.raises(ArtifactError, match=f"image {'c' * 16} is not in its manifest"):
        images.write_image(folder, images.image_file("c" * 16), arrays[B])
        images.read_images(folder, ["c" * 16])


def test_split_reader_refuses_a_file_without_its_id_lists(tmp_path):
    path = tmp_path / "s.json"
    records.write_record(path, "split", 1, {"train": [A]})
    with pytest.raises(ArtifactError, match=r"s\.json: no 'test' id list"):
        split.read_split(path)


def test_sample_reader_counts_the_images_sample_json_promises(tmp_path):
    _, read = _samples(tmp_path)
    (tmp_path / "samples" / "images" / "000000.png").unlink()
    with pytest.raises(ArtifactError, match=r"0 PNGs, sample\.json says 1"):
        read()


def test_reference_reader_refuses_other_weights_and_another_split(tmp_path):
    _, _ = _reference(tmp_path)
    folder = tmp_path / "reference"
    with pytest.raises(ArtifactError, match="not comparable"):
        reference.read_reference(folder, "x" * 64)
    with pytest.raises(ArtifactError, match="out of date with its split"):
        reference.read_reference(folder, "w" * 64, "train", ["a"])
    with pytest.raises(ArtifactError, match="out of date with its split"):
        reference.read_reference(folder, "w" * 64, "all", list("abcd"))  # the train ids are not all of them
    with pytest.raises(ArtifactError, match="no image set 'test'"):
        reference.read_reference(folder, "w" * 64, "test")


def test_reference_sets_are_prefixes_with_their_own_statistics(tmp_path):
    _reference(tmp_path)
    folder = tmp_path / "reference"
    train = reference.read_reference(folder, "w" * 64, "train", list("abcd"))
    every = reference.read_reference(folder, "w" * 64, "all", list("abcde"))
    assert len(train.features) == 4 and len(every.features) == 5 and train.info["images"] == "train"
    np.testing.assert_array_equal(every.features[:4], train.features)
    np.testing.assert_allclose(every.mu, every.features.astype(np.float64).mean(0), atol=1e-6)
    assert not np.allclose(every.mu, train.mu)


def test_reference_statistics_are_readable_by_pytorch_fid(tmp_path):
    from pytorch_fid.fid_score import compute_statistics_of_path

    _reference(tmp_path)
    ref = reference.read_reference(tmp_path / "reference", "w" * 64)
    mu, sigma = compute_statistics_of_path(str(tmp_path / "reference" / "stats.npz"), None, 1, 2048, "cpu")
    np.testing.assert_array_equal(mu, ref.mu)
    np.testing.assert_array_equal(sigma, ref.sigma)
    every = reference.read_reference(tmp_path / "reference", "w" * 64, "all")
    mu, _ = compute_statistics_of_path(str(tmp_path / "reference" / "stats_all.npz"), None, 1, 2048, "cpu")
    np.testing.assert_array_equal(mu, every.mu)
    assert ref.features.dtype == np.float32


def test_model_reader_rebuilds_the_model_and_refuses_other_settings_or_a_broken_file(tmp_path):
    path, read = _model(tmp_path)
    m, blob = read()
    assert type(m).__module__ == "animegen.models.dcgan" and blob["step"] == 3 and blob["ema"] is None
    with pytest.raises(ArtifactError, match="trained with other settings"):
        model.read_model(path.parent, "dcgan", {**DCGAN, "nz": 5})
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match=re.escape(str(path)) + ": cannot be read"):
        read()
    path.unlink()
    with pytest.raises(ArtifactError, match="missing"):
        read()


def test_snapshot_reader_refuses_missing_steps_and_foreign_runs(tmp_path):
    path, _ = _snapshot(tmp_path)
    with pytest.raises(ArtifactError, match=r"holds steps \[2\], train\.json lists \[2, 4\]"):
        model.read_snapshots(path.parent.parent, "fp", [2, 4])
    with pytest.raises(ArtifactError, match="not a snapshot of this training run"):
        list(model.read_snapshots(path.parent.parent, "other", [2]))


def test_snapshot_store_prunes_as_a_resume_needs(tmp_path):
    store = model.SnapshotStore(tmp_path, "fp")
    for step in (2, 3, 4, 6):
        store.save(step, {}, None)
    store.prune(after=4, every=2)  # past the checkpoint (6) and off the cadence (3) go
    assert [s for s, _ in store.steps()] == [2, 4] and store.has(4) and not store.has(3)
    store.prune(after=None, every=2)  # a fresh start: every snapshot goes
    assert store.steps() == []


def test_metrics_files_hold_numbers_only_and_the_record_holds_the_rest(tmp_path):
    """`dvc metrics diff` and `dvc exp show` list every leaf of a metrics file: names, lists and flags
    would be rows and columns of noise, so they go to the stage's record beside it."""
    path = tmp_path / "metrics" / "models" / "m.json"
    records.write_metrics(path, {"fid": 1.0, "n": 3, "pairs": {"a_vs_b": {"p": 0.5}}})
    assert json.loads(path.read_text()) == {"fid": 1.0, "n": 3, "pairs": {"a_vs_b": {"p": 0.5}}}
    for bad, named in (({"model": "dcgan"}, "model"), ({"x": {"ci": [0.1, 0.2]}}, "x.ci"), ({"tracked": True}, "tracked"),
                       ({"fid": None}, "fid")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(f"{path}: metrics hold numbers only; {named} belong")):
            records.write_metrics(path, bad)
    result = {"model": "m", "fid": 2.0, "kid": None, "mae": 3, "weights": {"sha256": "ab"}, "ci": [1, 2]}
    records.write_result(path, tmp_path / "m.record.json", "evaluate", result, ["fid", "kid", "mae"])
    assert json.loads(path.read_text()) == {"fid": 2.0, "mae": 3}  # None (not measured) is left out
    assert records.read_record(tmp_path / "m.record.json", "evaluate", 1) == result
    assert records.numbers_of({"a": 1, "b": True, "c": "x", "d": {"e": 2.5, "f": [1]}, "g": {"h": None}, "i": None}) == {
        "a": 1, "d": {"e": 2.5}}
    assert list(records.pick({"b": 1, "a": 0, "c": None, "d": 2.0}, ["a", "b", "c", "e"])) == ["a", "b"]  # order of keys; 0 kept


def _write_set(folder, kept, rejects, columns):
    """An image set's manifest, rejects and report, as a stage writes them (ImageSetWriter)."""
    with images.ImageSetWriter(folder, "ds", columns, ["id", "reason"]) as out:
        for row in kept:
            out.keep(row)
        for row in rejects:
            out.reject(row)
        out.finish()
