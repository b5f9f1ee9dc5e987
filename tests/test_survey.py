"""The blind rating kit (studies C and D): a self-contained page that hides the model, a seeded shuffled
order on shared inputs, a round trip through headless Chromium (answers in, CSV out, scores back), and
every bad answer file refused with its file, line and value named.  CPU only, a hand-built workspace."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import find_chromium
from PIL import Image
from scipy.stats import wilcoxon

from animegen.artifacts import ArtifactError, translations
from animegen.artifacts import survey as kit
from animegen.stages import StageError, survey_score
from animegen.stages import survey as survey_stage
from animegen.survey import Answer, score_answers

MODELS = ("alpha_gan", "beta_cam", "gamma_ugatit")  # underscores: never inside base64, so a hit is a real leak
SOURCE = "photo_faces"
QUESTIONS = ["natural as a face", "hairstyle and face parts match the input", "atmosphere kept"]
INPUT_IDS = [f"img{i:03d}" for i in range(8)]
SIZE = 16


def settings(**change) -> dict:
    s = {"models": list(MODELS), "per_model": 3, "scale": [0, 10], "questions": QUESTIONS, "seed": 7,
         "title": "Which pictures look right?", "bootstrap": 4000}  # fmt: skip
    return {"survey": {**s, **change}}


def input_image(i: int) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def output_image(model: str, input_id: str) -> np.ndarray:
    """A flat colour that says which model made it from which input (the page check decodes it)."""
    return np.full((SIZE, SIZE, 3), [40 + 80 * MODELS.index(model), 20 * INPUT_IDS.index(input_id), 9], np.uint8)


def workspace(root: Path, ids: dict[str, list[str]] | None = None) -> Path:
    """One translation folder per model, inputs beside outputs (all of INPUT_IDS unless ``ids``)."""
    for m in MODELS:
        mids = (ids or {}).get(m, INPUT_IDS)
        out = root / "data/translations" / m
        out.mkdir(parents=True)
        translations.start(out)
        for i in mids:
            translations.write_pair(out, i, input_image(INPUT_IDS.index(i)), output_image(m, i))
        translations.write_translate_record(out, {"model": m, "family": "cyclegan", "source": SOURCE, "target": "anime",
                                                  "images": "test", "n": len(mids), "ids": mids, "trained_steps": 10,
                                                  "image_size": SIZE})  # fmt: skip
    return root


def page_items(page: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """item id -> (input, output) decoded from the page's data URIs, in page order."""
    found = {}
    for item, body in re.findall(r'<section class="item" id="item-(q\d+)"[^>]*>(.*?)</section>', page, re.S):
        uris = re.findall(r'src="data:image/png;base64,([^"]+)"', body)
        assert len(uris) == 2, item
        found[item] = tuple(np.asarray(Image.open(io.BytesIO(base64.b64decode(u))).convert("RGB")) for u in uris)
    return found


def make_survey(root: Path, **change) -> tuple[str, dict]:
    report = survey_stage.run(settings(**change), None, root)
    assert report["items"] == 3 * len(MODELS)
    return (root / "data/survey/survey.html").read_text(), kit.read_key(root / "data/survey")


# ----------------------------------------------------------------------------------------------- the page


def test_the_page_is_self_contained_blind_and_matches_the_key(tmp_path):
    page, key = make_survey(workspace(tmp_path))
    for url in ("http://", "https://", 'src="//', "href=", "@import", "url("):
        assert url not in page, url
    for m in MODELS:
        assert m not in page.lower() and m not in page.replace("_", "").lower(), f"{m} leaks into the page"
    # every item once, in the key's order, showing the input and the output the key says
    shown = page_items(page)
    assert list(shown) == key["order"] == sorted(key["items"]) and len(shown) == 3 * len(MODELS)
    for item, (source, output) in shown.items():
        k = key["items"][item]
        assert np.array_equal(source, input_image(INPUT_IDS.index(k["input"])))
        assert np.array_equal(output, output_image(k["model"], k["input"]))
    assert sorted(v["model"] for v in key["items"].values()) == sorted(MODELS * 3)
    # small images are enlarged, pixelated, to the display size
    assert f'width="{256}" height="{256}"' in page and "image-rendering: pixelated" in page
    for k, q in enumerate(QUESTIONS, start=1):
        assert f"{k}. {q}" in page
        assert page.count(f'name="q01-{k}"') == 11  # scale 0..10
    assert '<pre id="export">' in page and "Export answers" in page and "new Blob(" in page
    assert key["questions"] == QUESTIONS and key["scale"] == [0, 10] and key["seed"] == 7


def test_the_same_inputs_for_every_model_when_they_share_enough(tmp_path):
    _, key = make_survey(workspace(tmp_path))
    per_model = {m: sorted(v["input"] for v in key["items"].values() if v["model"] == m) for m in MODELS}
    assert per_model[MODELS[0]] == per_model[MODELS[1]] == per_model[MODELS[2]]
    # with only one shared input, each model tops up from its own
    ids = {"alpha_gan": ["img000", "img001", "img002"], "beta_cam": ["img000", "img003", "img004"]}
    _, key = make_survey(workspace(tmp_path / "few", ids))
    per_model = {m: sorted(v["input"] for v in key["items"].values() if v["model"] == m) for m in MODELS}
    assert per_model["alpha_gan"] == ["img000", "img001", "img002"] and per_model["beta_cam"] == ["img000", "img003", "img004"]
    assert "img000" in per_model["gamma_ugatit"] and len(per_model["gamma_ugatit"]) == 3


def test_the_order_is_seeded_and_shuffled(tmp_path):
    root = workspace(tmp_path)

    def draw(seed):
        page, key = make_survey(root, seed=seed)
        return page, [(key["items"][i]["model"], key["items"][i]["input"]) for i in key["order"]]

    page_a, order_a = draw(1)
    page_again, order_again = draw(1)
    assert page_again == page_a and order_again == order_a  # same seed: the same page, byte for byte
    orders = [draw(s)[1] for s in (2, 3, 4)]
    assert all(o != order_a for o in orders)
    # the shuffle itself follows the seed, not only the draw of inputs
    assert all([m for m, _ in o] != [m for m, _ in order_a] for o in orders)
    for order in [order_a, *orders]:
        models = [m for m, _ in order]
        assert models != sorted(models), "items come grouped by model: the order gives the model away"


def test_a_model_named_on_the_page_or_too_few_images_is_refused(tmp_path):
    root = workspace(tmp_path)
    with pytest.raises(StageError, match="names model 'beta_cam'"):
        survey_stage.run(settings(title="Is Beta_Cam better?"), None, root)
    with pytest.raises(StageError, match="names model 'alpha_gan'"):
        survey_stage.run(settings(questions=["like alpha_gan?"]), None, root)
    with pytest.raises(StageError, match="has 8 translated image.s., fewer than per_model = 9"):
        survey_stage.run(settings(per_model=9), None, root)
    with pytest.raises(StageError, match=r"survey.scale: \[5, 5\]"):
        survey_stage.run(settings(scale=[5, 5]), None, root)
    assert not (root / "data/survey").exists()


def test_the_key_is_tagged(tmp_path):
    make_survey(workspace(tmp_path))
    path = tmp_path / "data/survey/key.json"
    data = json.loads(path.read_text())
    assert data["format"] == "animegen.survey_key/1"
    path.write_text(json.dumps({**data, "format": "animegen.translations/1"}))
    with pytest.raises(ArtifactError, match="animegen.survey_key/1"):
        kit.read_key(tmp_path / "data/survey")


# ------------------------------------------------------------------------------- round trip in Chromium


BASE = {"alpha_gan": 6, "beta_cam": 1, "gamma_ugatit": 3}  # score = base + rater offset (0, 1) + question (1..3)
RATERS = {"ann": 0, "Bob, B.": 1}  # a comma: the export must quote the name


def answer_in_chromium(chromium: str, page: Path, rater: str, scores: dict, profile: Path) -> str:
    """The CSV the page would export after ``#answers=`` filled its radio buttons, read from the DOM."""
    url = page.as_uri() + "#answers=" + urllib.parse.quote(json.dumps({"rater": rater, "scores": scores}), safe="")
    r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                        "--virtual-time-budget=10000", "--dump-dom", url], capture_output=True, text=True, timeout=180)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    found = re.search(r'<pre id="export">(.*?)</pre>', r.stdout, re.S)
    assert found, r.stdout[-2000:]
    return html.unescape(found.group(1))


def test_answers_exported_by_the_page_in_headless_chromium_score_the_right_model_higher(tmp_path):
    chromium = find_chromium()
    root = workspace(tmp_path / "ws")
    _, key = make_survey(root)
    answers = root / "data/survey_answers"
    answers.mkdir(parents=True)
    for n, (rater, offset) in enumerate(RATERS.items()):
        scores = {item: [BASE[v["model"]] + offset + k for k in (1, 2, 3)] for item, v in key["items"].items()}
        csv_text = answer_in_chromium(chromium, root / "data/survey/survey.html", rater, scores, tmp_path / f"profile{n}")
        lines = csv_text.strip().splitlines()
        assert lines[0] == "rater,item,question,score" and len(lines) == 1 + len(key["items"]) * 3, csv_text
        name = '"Bob, B."' if "," in rater else rater
        assert f"{name},{key['order'][0]},1,{scores[key['order'][0]][0]}" in lines
        (answers / f"{n}.csv").write_text(csv_text)

    report = survey_score.run(settings(), None, root)
    assert report == {"raters": 2, "answers": 2 * 9 * 3, "files": 2}
    result = json.loads((root / "metrics/survey.record.json").read_text())
    numbers = json.loads((root / "metrics/survey.json").read_text())  # the metrics: the record's numbers only
    assert numbers["models"] == result["models"] and numbers["raters"] == 2 and "test" not in numbers
    for m, base in BASE.items():
        for k in (1, 2, 3):
            cell = result["models"][m][f"question_{k}"]
            # two raters, base + k and base + 1 + k: resampling them gives means base + k, + 0.5, + 1
            assert cell["mean"] == pytest.approx(base + k + 0.5)
            assert (cell["ci95_low"], cell["ci95_high"]) == pytest.approx((base + k, base + k + 1))
            assert (cell["raters"], cell["answers"]) == (2, 6)
        assert result["models"][m]["all_questions"]["mean"] == pytest.approx(base + 2.5)
    pair = result["pairs"]["alpha_gan_vs_beta_cam"]
    assert (pair["a"], pair["b"]) == ("alpha_gan", "beta_cam")
    for label in ("question_1", "question_2", "question_3", "all_questions"):
        assert pair[label]["higher"] == "alpha_gan" and pair[label]["mean_difference"] == pytest.approx(5.0)
        assert pair[label]["p_value"] == pytest.approx(0.5) and pair[label]["raters"] == 2  # n = 2: the least p
    worse = result["pairs"]["beta_cam_vs_gamma_ugatit"]["all_questions"]
    assert worse["higher"] == "gamma_ugatit" and worse["mean_difference"] == pytest.approx(-2.0)
    assert "Wilcoxon signed-rank" in result["test"]
    table = (root / "metrics/survey.md").read_text()
    assert "Wilcoxon signed-rank" in table and "| alpha_gan | 1. natural as a face | 7.50 | [7.00, 8.00] | 2 | 6 |" in table


def test_the_paired_test_and_the_interval_with_more_raters():
    """Eight raters: the model they all prefer wins with the p-value scipy gives on their mean differences,
    and the interval holds the mean inside the range of the raters' own means."""
    items = {"q01": "x_model", "q02": "y_model", "q03": "x_model", "q04": "y_model"}
    rng = np.random.default_rng(0)
    answers, diffs = [], []
    for r in range(8):
        lift = 1 + r % 3  # every rater likes y better, by 1-3 points
        per = {"x_model": [], "y_model": []}
        for item, model in items.items():
            for q in (1, 2):
                s = int(rng.integers(1, 3)) + (lift if model == "y_model" else 0)
                answers.append(Answer(f"r{r}", item, q, s))
                per[model].append(s)
        diffs.append(np.mean(per["x_model"]) - np.mean(per["y_model"]))
    result = score_answers(answers, items, 2, 2000, 0)
    test = result["pairs"]["x_model_vs_y_model"]["all_questions"]
    assert test["higher"] == "y_model" and test["mean_difference"] == pytest.approx(np.mean(diffs))
    assert test["p_value"] == pytest.approx(wilcoxon(diffs).pvalue) and test["p_value"] < 0.01
    cell = result["models"]["y_model"]["all_questions"]
    assert cell["ci95_low"] < cell["mean"] < cell["ci95_high"] and (cell["raters"], cell["answers"]) == (8, 32)


# ------------------------------------------------------------------------------------ bad answer files


def good_rows(key: dict) -> list[list[str]]:
    return [["ann", item, str(k), "5"] for item in key["order"] for k in (1, 2, 3)]


def write_answers(root: Path, rows: list[list[str]], header=("rater", "item", "question", "score"), name="bad.csv") -> None:
    folder = root / "data/survey_answers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(",".join(r) for r in [list(header), *rows]) + "\n")


BAD_FILES = ["unknown-item", "score-above", "score-below", "score-fraction", "question-above", "question-zero",
             "missing-column", "twice", "no-rater", "header-only"]  # fmt: skip


@pytest.mark.parametrize(
    "break_rows, header, message",
    [
        (lambda rows: rows[1].__setitem__(1, "q99"), None, "bad.csv line 3: unknown item 'q99', not in the survey key"),
        (lambda rows: rows[4].__setitem__(3, "11"), None, r"bad.csv line 6: score '11' is off the scale \(an integer 0..10\)"),
        (lambda rows: rows[0].__setitem__(3, "-1"), None, "bad.csv line 2: score '-1' is off the scale"),
        (lambda rows: rows[2].__setitem__(3, "4.5"), None, "bad.csv line 4: score '4.5' is off the scale"),
        (lambda rows: rows[2].__setitem__(2, "4"), None, "bad.csv line 4: question '4' is not a question number 1..3"),
        (lambda rows: rows[2].__setitem__(2, "0"), None, "bad.csv line 4: question '0' is not a question number 1..3"),
        (lambda rows: [r.pop() for r in rows], ("rater", "item", "question"), "bad.csv: lacks column.s. score"),
        (lambda rows: rows.append(list(rows[0])), None, "bad.csv line 29: rater 'bob' answered item q01 question 1 twice"),
        (lambda rows: rows[3].__setitem__(0, ""), None, "bad.csv line 5: no rater name"),
        (lambda rows: rows.clear(), None, "bad.csv: no answers"),
    ],
    ids=BAD_FILES,
)
def test_a_bad_answer_file_stops_with_the_file_line_and_value(tmp_path, break_rows, header, message):
    root = workspace(tmp_path)
    _, key = make_survey(root)
    write_answers(root, good_rows(key), name="good.csv")
    rows = [[c.replace("ann", "bob") for c in r] for r in good_rows(key)]
    break_rows(rows)
    write_answers(root, rows, header or ("rater", "item", "question", "score"))
    with pytest.raises(StageError, match=f"survey_score: data/survey_answers/{message}"):
        survey_score.run(settings(), None, root)
    assert not (root / "metrics").exists()


def test_no_answer_files_is_a_named_empty_result_and_a_rater_sending_twice_stops(tmp_path):
    root = workspace(tmp_path)
    _, key = make_survey(root)
    assert survey_score.run(settings(), None, root) == {"raters": 0, "answers": 0, "files": 0}
    (root / "data/survey_answers").mkdir()
    (root / "data/survey_answers/notes.txt").write_text("not an answer file")
    assert survey_score.run(settings(), None, root)["raters"] == 0
    result = json.loads((root / "metrics/survey.record.json").read_text())
    assert json.loads((root / "metrics/survey.json").read_text()) == {"raters": 0, "answers": 0}
    assert result["raters"] == 0 and "no answer files (*.csv) in data/survey_answers/" in result["note"]
    write_answers(root, good_rows(key), name="a.csv")
    write_answers(root, good_rows(key), name="b.csv")
    with pytest.raises(StageError, match="b.csv line 2: rater 'ann' answered item q01 question 1 twice .first at data/survey_answers/a.csv line 2"):
        survey_score.run(settings(), None, root)
    (root / "data/survey_answers/b.csv").unlink()
    assert survey_score.run(settings(), None, root) == {"raters": 1, "answers": 27, "files": 1}
