"""Blind rating by people (studies C and D): which items to show, the page that shows them, the answer
rows people send back, and the scores with their uncertainty.

Study C asked 28 people three questions on a 5-point scale (natural as a face; hairstyle and face parts
match the input; atmosphere kept) about 5 + 5 translations with the method hidden; study D had 10 raters
score 100 images 0-10.  Here:

* :func:`choose_items` draws ``per_model`` inputs per model, the same inputs for every model where the
  models share enough of them (raters then compare the models on the same faces), and shuffles all
  items into one seeded order named ``q01``, ``q02``...: the name and the position say nothing about
  the model.
* :func:`render_page` is one self-contained HTML file (images as data URIs, no URL at all) that shows
  input | output per item, the questions as radio buttons over the scale, and exports the answers as a
  CSV ``rater,item,question,score`` (question numbered from 1).  A script can answer it too:
  ``window.surveyAnswerAll(rater, scoreFn)``, or ``#answers=<URL-encoded JSON {"rater", "scores":
  {item: [score per question]}}>`` in the address; either fills the radio buttons and writes the CSV the
  export would download into ``<pre id="export">`` (what a headless browser's ``--dump-dom`` reads).
* :func:`parse_answers` checks every row of every returned file and names the file, the line and the
  value of the first bad one.
* :func:`score_answers` gives each model's mean score per question with a percentile-bootstrap 95 %
  interval that resamples **raters** (a rater's answers are not independent of each other), and for
  each pair of models a Wilcoxon signed-rank test on the raters' paired mean scores.

No params, no paths: the stages ``survey`` and ``survey_score`` read and write.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import json
import math
import re
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

ANSWER_COLUMNS = ("rater", "item", "question", "score")
DISPLAY_PX = 256  # images smaller than this are enlarged by a whole factor (pixelated, not blurred)
TEST = ("Wilcoxon signed-rank test, two-sided (scipy.stats.wilcoxon, zero differences dropped), on each rater's "
        "mean score of one model minus the other over the same questions")  # fmt: skip
INTERVAL = "percentile bootstrap 95 % interval, resampling raters with replacement"


class SurveyError(ValueError):
    """Inputs the survey cannot be built or scored from; ``str(e)`` names the file, line and value."""


# ------------------------------------------------------------------------------------------ the items


def choose_items(pools: Mapping[str, Sequence[tuple[str, str]]], per_model: int, seed: int) -> list[dict]:
    """``per_model`` items per model from its ``(source dataset, input id)`` pool, in one shuffled order.

    Inputs every model translated are drawn first and shown for every model; a model only tops up from
    its own inputs when fewer than ``per_model`` are shared.  Returns ``[{"item", "model", "source",
    "input"}]`` in display order, items named ``q01``, ``q02``... in that order."""
    for model, pool in sorted(pools.items()):
        if len(set(pool)) < per_model:
            raise SurveyError(f"{model} has {len(set(pool))} translated image(s), fewer than per_model = {per_model}")
    rng = np.random.default_rng(seed)
    common = sorted(set.intersection(*(set(p) for p in pools.values())))
    shared = [common[i] for i in rng.permutation(len(common))[:per_model]]
    chosen = []
    for model in sorted(pools):
        rest = sorted(set(pools[model]) - set(shared))
        own = [rest[i] for i in rng.permutation(len(rest))[: per_model - len(shared)]]
        chosen += [(model, key) for key in sorted(shared + own)]
    # The shuffle hides the model: without it the items would come grouped by model.
    order = rng.permutation(len(chosen))
    width = max(2, len(str(len(chosen))))
    return [{"item": f"q{n:0{width}d}", "model": chosen[i][0], "source": chosen[i][1][0], "input": chosen[i][1][1]}
            for n, i in enumerate(order, start=1)]  # fmt: skip


# ------------------------------------------------------------------------------------------- the page


def _data_uri(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), "RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(image: np.ndarray, alt: str) -> str:
    h, w = image.shape[:2]
    factor = max(1, math.ceil(DISPLAY_PX / max(h, w)))
    cls = ' class="enlarged"' if factor > 1 else ""
    return f'<img{cls} alt="{alt}" width="{w * factor}" height="{h * factor}" src="{_data_uri(image)}">'


def _item_html(item: str, source: np.ndarray, output: np.ndarray, questions: Sequence[str], scale: Sequence[int]) -> str:
    lo, hi = scale
    fields = []
    for k, question in enumerate(questions, start=1):
        radios = "".join(f'<label><input type="radio" name="{item}-{k}" value="{s}">{s}</label>' for s in range(lo, hi + 1))
        fields.append(f'<fieldset><legend>{k}. {html.escape(question)}</legend>'
                      f'<span class="end">worst</span>{radios}<span class="end">best</span></fieldset>')  # fmt: skip
    return (f'<section class="item" id="item-{item}" data-item="{item}"><h2>{item}</h2><div class="pair">'
            f'<figure>{_img(source, "input")}<figcaption>input</figcaption></figure>'
            f'<figure>{_img(output, "output")}<figcaption>output</figcaption></figure></div>'
            + "".join(fields) + "</section>\n")  # fmt: skip


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em; color: #222; }
.item { border-top: 1px solid #ccc; padding: 1em 0; }
.pair { display: flex; gap: 2em; flex-wrap: wrap; }
figure { margin: 0; text-align: center; }
img { max-width: 45vw; height: auto; background: #000; }
img.enlarged { image-rendering: pixelated; }
fieldset { border: none; margin: 0.5em 0; padding: 0; }
legend { font-weight: 600; padding: 0; }
fieldset label { display: inline-block; margin: 0 0.4em; }
.end { color: #777; font-size: 0.85em; }
#bar { position: sticky; bottom: 0; background: #f4f4f4; padding: 0.7em; border-top: 1px solid #ccc; }
#export { white-space: pre; font-size: 0.8em; }
"""

# Plain ES5 in one closure: opens from disk in any browser, no server, nothing fetched.
SCRIPT = r"""
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("survey-data").textContent);
  var exported = false;
  function radio(item, k, value) {
    var sel = 'input[name="' + item + "-" + k + '"]' + (value === undefined ? ":checked" : '[value="' + value + '"]');
    return document.querySelector(sel);
  }
  function answers() {
    var rows = [];
    DATA.items.forEach(function (item) {
      for (var k = 1; k <= DATA.questions.length; k++) {
        var r = radio(item, k);
        if (r) rows.push([item, k, r.value]);
      }
    });
    return rows;
  }
  function field(s) {
    s = String(s);
    return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function rater() { return document.getElementById("rater").value.trim(); }
  function csv() {
    var lines = ["rater,item,question,score"];
    answers().forEach(function (a) { lines.push([field(rater()), a[0], a[1], a[2]].join(",")); });
    return lines.join("\n") + "\n";
  }
  function refresh() {
    var total = DATA.items.length * DATA.questions.length;
    document.getElementById("progress").textContent = answers().length + " of " + total + " answered";
    document.getElementById("export").textContent = csv();
  }
  function download() {
    if (!rater()) { alert("Please type your name first."); document.getElementById("rater").focus(); return; }
    var n = answers().length, total = DATA.items.length * DATA.questions.length;
    if (n < total && !confirm(n + " of " + total + " questions answered. Export anyway?")) return;
    var a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([csv()], {type: "text/csv"}));
    a.download = "survey-" + rater().replace(/[^A-Za-z0-9_-]+/g, "_") + ".csv";
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
    exported = true;
  }
  // For scripts and tests: answer every question with scoreFn(item, k) (k from 1) and return the CSV.
  window.surveyAnswerAll = function (name, scoreFn) {
    document.getElementById("rater").value = name;
    DATA.items.forEach(function (item) {
      for (var k = 1; k <= DATA.questions.length; k++) {
        var r = radio(item, k, scoreFn(item, k));
        if (r) r.checked = true;
      }
    });
    refresh();
    return csv();
  };
  window.surveyExportCsv = csv;
  function fromHash() {
    var m = /^#answers=(.*)$/.exec(location.hash);
    if (!m) return;
    var spec = JSON.parse(decodeURIComponent(m[1]));
    window.surveyAnswerAll(spec.rater, function (item, k) { return (spec.scores[item] || [])[k - 1]; });
  }
  document.getElementById("survey").addEventListener("change", function () { exported = false; refresh(); });
  document.getElementById("rater").addEventListener("input", refresh);
  document.getElementById("export-button").addEventListener("click", download);
  window.addEventListener("hashchange", fromHash);
  window.addEventListener("beforeunload", function (e) {
    if (answers().length && !exported) { e.preventDefault(); e.returnValue = ""; }
  });
  refresh();
  fromHash();
})();
"""


def render_page(title: str, questions: Sequence[str], scale: Sequence[int],
                entries: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> str:  # fmt: skip
    """The rating page: ``entries`` are ``(item id, input image, output image)`` (uint8 (H, W, 3)) in
    display order.  Takes no model name, so it cannot show one."""
    lo, hi = scale
    data = {"items": [e[0] for e in entries], "questions": list(questions), "scale": [lo, hi]}
    # "<" escaped: a question holding "</script>" cannot end the data block early.
    data_json = json.dumps(data).replace("<", "\\u003c")
    title_html = html.escape(title)
    items = "".join(_item_html(item, source, output, questions, scale) for item, source, output in entries)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title_html}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title_html}</h1>
<p>Each of the {len(entries)} items shows an input picture and what a program made of it (output).  Answer every
question about the output from {lo} (worst) to {hi} (best).  Items are in no particular order and say nothing
about how they were made.  When you are done, type your name and press <b>Export answers</b>, then send the
downloaded CSV file back.</p>
<p><label>Your name: <input id="rater" type="text" autocomplete="name"></label></p>
<form id="survey" onsubmit="return false">
{items}</form>
<div id="bar"><button type="button" id="export-button">Export answers</button> <span id="progress"></span></div>
<details><summary>Answers as CSV (what the export downloads)</summary><pre id="export"></pre></details>
<script type="application/json" id="survey-data">{data_json}</script>
<script>{SCRIPT}</script>
</body>
</html>
"""


# ---------------------------------------------------------------------------------------- the answers


@dataclass(frozen=True)
class Answer:
    rater: str
    item: str
    question: int  # 1..k
    score: int


INTEGER = re.compile(r"^[+-]?\d+$")


def parse_answers(files: Sequence[tuple[str, Sequence[str], Sequence[tuple[int, Mapping]]]], items: Sequence[str],
                  n_questions: int, scale: Sequence[int]) -> list[Answer]:  # fmt: skip
    """Every row of every answer file ``(name, header columns, [(line number, row)])``, checked against
    the key's ``items``, question count and scale; the first bad row raises :class:`SurveyError` naming
    the file, the line and the value.  A rater answering one question of one item twice (in one file
    or two) is refused: a file sent twice would count double."""
    known, (lo, hi) = set(items), scale
    seen: dict[tuple[str, str, int], str] = {}
    answers = []
    for name, columns, rows in files:
        missing = [c for c in ANSWER_COLUMNS if c not in columns]
        if missing:
            raise SurveyError(f"{name}: lacks column(s) {', '.join(missing)}; an answer file's header is "
                              f"{','.join(ANSWER_COLUMNS)} (export it again from survey.html)")  # fmt: skip
        if not rows:
            raise SurveyError(f"{name}: no answers, only a header")
        for line, row in rows:
            where = f"{name} line {line}"
            if None in row:  # csv.DictReader files the fields beyond the header under None
                raise SurveyError(f"{where}: more fields than the header's {len(columns)}")
            rater, item, question, score = ((row.get(c) or "").strip() for c in ANSWER_COLUMNS)
            if not rater:
                raise SurveyError(f"{where}: no rater name")
            if item not in known:
                raise SurveyError(f"{where}: unknown item {item!r}, not in the survey key (an answer file for another "
                                  "survey or another draw of items?)")  # fmt: skip
            if not INTEGER.match(question) or not 1 <= int(question) <= n_questions:
                raise SurveyError(f"{where}: question {question!r} is not a question number 1..{n_questions}")
            if not INTEGER.match(score) or not lo <= int(score) <= hi:
                raise SurveyError(f"{where}: score {score!r} is off the scale (an integer {lo}..{hi})")
            cell = (rater, item, int(question))
            if cell in seen:
                raise SurveyError(f"{where}: rater {rater!r} answered item {item} question {question} twice "
                                  f"(first at {seen[cell]})")  # fmt: skip
            seen[cell] = where
            answers.append(Answer(rater, item, int(question), int(score)))
    return answers


# ------------------------------------------------------------------------------------------ the scores


def _mean_with_interval(per_rater: dict[str, list[int]], resamples: int, seed: int) -> dict:
    """Mean of all answers and its bootstrap interval over raters (a drawn rater brings all their answers)."""
    raters = sorted(per_rater)
    if not raters:
        return {"mean": None, "ci95_low": None, "ci95_high": None, "raters": 0, "answers": 0}
    sums = np.array([sum(per_rater[r]) for r in raters], dtype=np.float64)
    counts = np.array([len(per_rater[r]) for r in raters], dtype=np.float64)
    draws = np.random.default_rng(seed).integers(0, len(raters), size=(resamples, len(raters)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(sums.sum() / counts.sum()), "ci95_low": float(low), "ci95_high": float(high),
            "raters": len(raters), "answers": int(counts.sum())}  # fmt: skip


def _paired(a: dict[str, float], b: dict[str, float]) -> dict:
    """Wilcoxon signed-rank test of the raters' means ``a[r] - b[r]`` over the raters in both."""
    from scipy.stats import wilcoxon  # noqa: PLC0415 - scipy only where a survey is scored

    raters = sorted(set(a) & set(b))
    diffs = np.array([a[r] - b[r] for r in raters], dtype=np.float64)
    nonzero = int(np.count_nonzero(diffs))
    if nonzero == 0:  # no rater saw a difference (or none rated both): no evidence either way
        statistic, p = None, 1.0 if raters else None
    else:
        with warnings.catch_warnings():  # scipy warns that the normal approximation is rough for small n
            warnings.simplefilter("ignore", RuntimeWarning)
            result = wilcoxon(diffs)
        statistic, p = float(result.statistic), float(result.pvalue)
    mean = float(diffs.mean()) if raters else None
    return {"mean_difference": mean, "p_value": p, "statistic": statistic, "raters": len(raters), "nonzero": nonzero}


def score_answers(answers: Sequence[Answer], item_models: Mapping[str, str], n_questions: int,
                  resamples: int, seed: int) -> dict:  # fmt: skip
    """Per model and question (``question_<k>``, and ``all_questions``): mean, bootstrap interval over
    raters, raters and answers; per pair ``<a>_vs_<b>`` (sorted names): per question and over all, the
    raters' mean of ``a`` minus ``b``, the Wilcoxon signed-rank p-value and which model scored higher."""
    models = sorted(set(item_models.values()))
    cells: dict[tuple[str, str, int], list[int]] = {}  # (model, rater, question) -> scores
    for a in answers:
        cells.setdefault((item_models[a.item], a.rater, a.question), []).append(a.score)
    raters = sorted({a.rater for a in answers})
    questions = {f"question_{k}": [k] for k in range(1, n_questions + 1)}
    questions["all_questions"] = list(range(1, n_questions + 1))

    per_model = {}
    for m in models:
        per_model[m] = {}
        for label, ks in questions.items():
            per_rater = {r: [s for k in ks for s in cells.get((m, r, k), [])] for r in raters}
            per_model[m][label] = _mean_with_interval({r: v for r, v in per_rater.items() if v}, resamples, seed)

    pairs = {}
    for a, b in itertools.combinations(models, 2):
        pair = {"a": a, "b": b}
        for label, ks in questions.items():
            # Per rater: the mean over the questions both models were rated on, the same ones on both sides.
            means = {a: {}, b: {}}
            for r in raters:
                shared = [k for k in ks if (a, r, k) in cells and (b, r, k) in cells]
                if shared:
                    for m in (a, b):
                        means[m][r] = float(np.mean([np.mean(cells[(m, r, k)]) for k in shared]))
            test = _paired(means[a], means[b])
            d = test["mean_difference"]
            test["higher"] = None if not d else (a if d > 0 else b)
            pair[label] = test
        pairs[f"{a}_vs_{b}"] = pair
    return {"raters": len(raters), "answers": len(answers), "models": per_model, "pairs": pairs, "test": TEST,
            "interval": f"{INTERVAL} ({resamples} resamples, seed {seed})"}  # fmt: skip


def _num(value, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def markdown_report(result: dict, title: str, questions: Sequence[str], scale: Sequence[int]) -> str:
    """``metrics/survey.md``: the means table, the paired tests table and how each was computed."""
    labels = {f"question_{k}": f"{k}. {q}" for k, q in enumerate(questions, start=1)}
    labels["all_questions"] = "all questions"
    lines = [f"# Blind rating: {title}", "",
             f"{result['raters']} rater(s), {result['answers']} answers, scale {scale[0]}..{scale[1]}; the model "
             "of each item was hidden from the raters.", "",
             "## Mean score per model and question", "",
             "| model | question | mean | 95 % interval | raters | answers |", "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for model, cells in result["models"].items():
        for label, c in cells.items():
            interval = "-" if c["mean"] is None else f"[{c['ci95_low']:.2f}, {c['ci95_high']:.2f}]"
            lines.append(f"| {model} | {labels[label]} | {_num(c['mean'])} | {interval} | {c['raters']} | {c['answers']} |")
    lines += ["", f"Interval: {result['interval']}.", ""]
    if result["pairs"]:
        lines += ["## Paired comparisons", "", "| a vs b | question | mean a - b | higher | p | raters |",
                  "|---|---|---:|---|---:|---:|"]  # fmt: skip
        for name, pair in result["pairs"].items():
            for label in labels:
                t = pair[label]
                lines.append(f"| {pair['a']} vs {pair['b']} | {labels[label]} | {_num(t['mean_difference'])} | "
                             f"{t['higher'] or '-'} | {_num(t['p_value'], '.3g')} | {t['raters']} |")  # fmt: skip
        lines += ["", f"Test: {result['test']}.  With few raters the smallest possible p is large (2 raters: 0.5).", ""]
    return "\n".join(lines)
