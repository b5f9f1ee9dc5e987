"""Where each stage reads and writes, relative to the workspace root (the folder of params.yaml).

The Snakefile and dvc.yaml spell the same paths; ``tests/test_pipeline.py`` checks that they agree.
"""

SOURCES = "data/sources/{dataset}"  # user-supplied local inputs of collect (folders, archives, URL lists)
RAW = "data/raw/{dataset}"  # collect: images/, manifest.csv, rejects.csv, report.json
CUTOUT = "data/interim/cutout/{dataset}"  # cutout: images/ (RGB on black), masks/, manifest.csv, ...
PROCESSED = "data/processed/{dataset}"  # resize: images/ at the dataset's size, manifest.csv, ...
SPLIT = "data/splits/{dataset}.json"  # split: {"train": [ids], "test": [ids], ...}
CAM_SPLIT = "data/splits/{selection}.json"  # cam_select: the selection as a split ({"train": kept ids, "test": ...})
CAM_RANDOM_SPLIT = "data/splits/{selection}_random.json"  # cam_select: a random control of the same size
CAM_CLASSIFIER = "data/cam/classifiers/{classifier}"  # cam_classifier: classifier.pt, train.json
CAM_CLASSIFIER_METRICS = "metrics/cam/classifiers/{classifier}.json"  # cam_classifier: held-out accuracy
CAM_SELECTION = "data/cam/selections/{selection}"  # cam_select: scores.csv, overlay_top.png, overlay_bottom.png
CAM_SELECTION_METRICS = "metrics/cam/selections/{selection}.json"  # cam_select: what was kept, and the evidence
MODEL = "data/models/{model}"  # train: model.pt (generator weights, EMA), train.json
CHECKPOINTS = "data/checkpoints/{model}"  # train's resumable state (not an output: survives interruptions)
TRAIN_METRICS = "metrics/train/{model}"  # train: dvclive metrics.json and plots/ (training curves)
SAMPLES = "data/samples/{model}"  # sample: images/, grid.png, sample.json
REFERENCE = "data/reference/{dataset}"  # reference: features.npz (train-split Inception features + stats), floor.json
EVALUATE = "data/evaluate/{model}"  # evaluate: audit.png (memorisation audit), nearest.csv
MODEL_METRICS = "metrics/models/{model}.json"  # evaluate: FID, KID, MAE, NWI, memorisation rate, provenance
TRACK = "metrics/track/{model}"  # track: fid.tsv, fid_ema.tsv (dvc plots), fid.png (raw + EMA); empty when untracked
TRACK_METRICS = "metrics/track/{model}.json"  # track: whether tracked, the points, best and last tracked FID, provenance
COMPARE = "metrics/compare/{pair}.json"  # compare: FID, KID, MAE, NWI between two datasets
SUMMARY = "metrics/summary.json"  # summary: every model and pair; also metrics/table.{md,csv}, metrics/compare.{md,csv}
SUMMARY_TABLES = ("metrics/table.md", "metrics/table.csv", "metrics/compare.md", "metrics/compare.csv")
