"""Where each stage reads and writes, relative to the workspace root (the folder of params.yaml).

The Snakefile takes these paths from here and dvc.yaml spells the same ones (``tests/test_pipeline.py``
checks that they agree).  What lies inside each folder is owned by one module of
:mod:`animegen.artifacts`, named in the comment.

Everything a run writes is a DVC-cached output, ``metrics/`` included, and ignored by git: a run leaves
``git status`` clean, and results are shared by committing ``dvc.lock`` (and ``dvc push``).  A metrics
file holds only the numbers a user compares; its ``*.record.json`` beside it holds the same result with
its provenance (see :mod:`animegen.artifacts.records`).
"""

SOURCES = "data/sources/{dataset}"  # user-supplied local inputs of collect (folders, archives, URL lists)
RAW = "data/raw/{dataset}"  # collect: an image set (artifacts.images)
CUTOUT = "data/interim/cutout/{dataset}"  # cutout: an image set on black, with masks (artifacts.images)
PROCESSED = "data/processed/{dataset}"  # resize: an image set at the dataset's size (artifacts.images)
SPLIT = "data/splits/{dataset}.json"  # split: train and test ids (artifacts.split)
CAM_SPLIT = "data/splits/{selection}.json"  # cam_select: the selection as a split (artifacts.split)
CAM_RANDOM_SPLIT = "data/splits/{selection}_random.json"  # cam_select: a random control of the same size
CAM_CLASSIFIER = "data/cam/classifiers/{classifier}"  # cam_classifier: classifier.pt, train.json (artifacts.classifier)
CAM_CLASSIFIER_METRICS = "metrics/cam/classifiers/{classifier}.json"  # cam_classifier: held-out accuracy (record: in CAM_CLASSIFIER)
CAM_SELECTION = "data/cam/selections/{selection}"  # cam_select: scores.csv, overlays, selection.json (for people)
CAM_SELECTION_METRICS = "metrics/cam/selections/{selection}.json"  # cam_select: the evidence (record: selection.json in CAM_SELECTION)
MODEL = "data/models/{model}"  # train: model.pt, train.json, snapshots/, curves.png (artifacts.model)
CHECKPOINTS = "data/checkpoints/{model}"  # train's resumable state (not an output: survives interruptions)
TRAIN_METRICS = "metrics/train/{model}"  # train: dvclive metrics.json and plots/ (training curves)
SAMPLES = "data/samples/{model}"  # sample: images/, grid.png, sample.json (artifacts.samples)
REFERENCE = "data/reference/{dataset}"  # reference: features.npy, stats.npz, reference.json (artifacts.reference)
EVALUATE = "data/evaluate/{model}"  # evaluate: audit.png (memorisation audit), nearest.csv (for people)
MODEL_METRICS = "metrics/models/{model}.json"  # evaluate: FID, KID, MAE, NWI, memorisation rate, floor (numbers only)
MODEL_RECORD = "metrics/models/{model}.record.json"  # evaluate: the same with provenance (dataset, family, weights, counts)
TRACK = "metrics/track/{model}"  # track: fid.tsv, fid_ema.tsv (dvc plots), fid.png (raw + EMA); empty when untracked
TRACK_METRICS = "metrics/track/{model}.json"  # track: best and last tracked FID (numbers only; empty when untracked)
TRACK_RECORD = "metrics/track/{model}.record.json"  # track: whether tracked and why, the points, provenance
COMPARE = "metrics/compare/{pair}.json"  # compare: FID, KID, MAE, NWI between two datasets (numbers only)
COMPARE_RECORD = "metrics/compare/{pair}.record.json"  # compare: the same with provenance
DERIVED = "data/derived/{dataset}"  # derive: smooth/<id>.png, faces/<id>.png, faces.csv, derive.json (artifacts.derived)
TRANSLATIONS = "data/translations/{model}"  # translate: images/<id>.png, grid.png, translate.json (artifacts.translations)
TRANSLATION_METRICS = "metrics/translation/{model}.json"  # evaluate_translation: FID, KID x100, character ratio (numbers)
TRANSLATION_RECORD = "metrics/translation/{model}.record.json"  # evaluate_translation: the same with provenance
SURVEY = "data/survey"  # survey: survey.html (the blind rating page), key.json (artifacts.survey)
SURVEY_ANSWERS = "data/survey_answers"  # raters' exported CSV files, put there by hand (survey_score's input)
SURVEY_METRICS = "metrics/survey.json"  # survey_score: mean scores with intervals, paired tests (numbers only)
SURVEY_RECORD = "metrics/survey.record.json"  # survey_score: the same with the files, questions and methods
SURVEY_TABLE = "metrics/survey.md"  # survey_score: the same as a table
SUMMARY = "metrics/summary.json"  # summary: every model's and pair's headline metrics (a record, not a DVC metric)
SUMMARY_TABLES = {  # summary: study A's Table 2 (models) and validity table (pairs), Markdown and CSV
    "models": ("metrics/table.md", "metrics/table.csv"),
    "compare": ("metrics/compare.md", "metrics/compare.csv"),
    "translation": ("metrics/translation.md", "metrics/translation.csv"),  # studies B-D: translators
}
