"""Stage ``survey_score``: score the answers people returned from the ``survey`` page.

Reads:  ``data/survey/key.json`` (which model made each item, the questions, the scale, the seed) and
        every ``*.csv`` in ``data/survey_answers/`` (the files raters exported from ``survey.html``,
        put there by hand like ``data/sources/``); ``params.yaml`` key ``survey.bootstrap``.
Writes: ``metrics/survey.record.json`` and ``metrics/survey.md``: per model and question (and over all
        questions) the mean score, a percentile-bootstrap 95 % interval resampling raters (seeded with
        the key's seed), the number of raters and answers; for each pair of models, per question and
        over all, the raters' paired mean difference, a Wilcoxon signed-rank test's p-value and which
        model scored higher (the test is named in both files); ``metrics/survey.json`` (DVC metrics):
        the numbers of the record.
        With no answer file yet (the state until raters answer) it writes ``raters: 0`` and a note saying
        where the files go, so ``dvc repro`` and ``snakemake`` run through.
Guarantees: nothing is written unless every row of every file is valid: a missing column, an item not
in the key (an answer file for another survey), a question number or a score outside the key's, or a
rater answering one question twice stops the stage with the file, line and value named.
"""

from __future__ import annotations

import sys
from pathlib import Path

from animegen import paths
from animegen.artifacts.records import numbers_of, write_metrics, write_record
from animegen.artifacts.survey import read_answer_files, read_key
from animegen.io import write_text_atomic
from animegen.stages import StageError
from animegen.survey import SurveyError, markdown_report, parse_answers, score_answers


def _write(root: Path, result: dict) -> None:
    """The record (files, questions, methods) and its numbers as the metrics file."""
    write_record(root / paths.SURVEY_RECORD, "survey_score", 1, result)
    write_metrics(root / paths.SURVEY_METRICS, numbers_of(result))


def run(params: dict, target: str | None, root: Path) -> dict:
    key = read_key(root / paths.SURVEY)
    files = read_answer_files(root / paths.SURVEY_ANSWERS)
    if not files:  # the normal state until raters answer: a named outcome, so `dvc repro` runs through
        note = (f"no answer files (*.csv) in {paths.SURVEY_ANSWERS}/ yet: send {paths.SURVEY}/survey.html to raters "
                "and put each exported CSV there")  # fmt: skip
        print(f"survey_score: {note}", file=sys.stderr)
        _write(root, {"raters": 0, "answers": 0, "files": [], "note": note})
        write_text_atomic(root / paths.SURVEY_TABLE, f"# {key['title']}\n\n{note[0].upper() + note[1:]}.\n")
        return {"raters": 0, "answers": 0, "files": 0}
    named = [(p.relative_to(root).as_posix(), columns, rows) for p, columns, rows in files]
    try:
        answers = parse_answers(named, list(key["items"]), len(key["questions"]), key["scale"])
    except SurveyError as e:
        raise StageError(f"survey_score: {e}") from None
    item_models = {item: v["model"] for item, v in key["items"].items()}
    result = score_answers(answers, item_models, len(key["questions"]), params["survey"]["bootstrap"], key["seed"])
    result.update({"title": key["title"], "questions": key["questions"], "scale": key["scale"],
                   "files": [name for name, _, _ in named]})  # fmt: skip
    _write(root, result)
    write_text_atomic(root / paths.SURVEY_TABLE, markdown_report(result, key["title"], key["questions"], key["scale"]))
    return {"raters": result["raters"], "answers": result["answers"], "files": len(files)}
