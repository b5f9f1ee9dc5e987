"""Stage ``survey``: a blind rating kit for people (studies C and D judged their translators by raters).

Reads:  ``data/translations/<model>/`` for each model of ``survey.models`` (translators' inputs and
        outputs);
        ``params.yaml`` section ``survey`` (``models``, ``per_model``, ``scale``, ``questions``, ``seed``,
        ``title``; ``bootstrap`` is ``survey_score``'s).
Writes: ``data/survey/`` with ``survey.html`` (one self-contained page: input | output per item, the
        questions as radio buttons over the scale, a name field and an "Export answers" button that
        downloads ``rater,item,question,score`` as CSV) and ``key.json`` (item id -> model and input).
        With ``survey.models`` empty (no survey) it writes a page and a key without items.
Guarantees: the folder appears complete or not at all; ``per_model`` items per model, on the same
inputs for every model where the models share enough, in one seeded order (the same seed gives the
same page, byte for byte); the page names no model (items are ``q01``, ``q02``...; the model of each
is written only in the key, which must not go to the raters).
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts import survey as kit
from animegen.artifacts.translations import read_inputs, read_translations
from animegen.io import atomic_dir
from animegen.stages import StageError
from animegen.survey import SurveyError, choose_items, render_page


def _check_settings(s: dict) -> None:
    if len(set(s["models"])) == 1:
        raise StageError(f"survey.models: {len(set(s['models']))} distinct model(s); a blind comparison needs 2 or more")
    lo, hi = s["scale"]
    if not lo < hi:
        raise StageError(f"survey.scale: [{lo}, {hi}] is not a range (low < high)")
    # The page shows the title and the questions: a model named there would unblind every rater.
    for text in [s["title"], *s["questions"]]:
        named = [m for m in s["models"] if m.lower() in text.lower()]
        if named:
            raise StageError(f"survey: {text!r} names model {named[0]!r}; the page must not say which model made an item")


def run(params: dict, target: str | None, root: Path) -> dict:
    s = params["survey"]
    _check_settings(s)
    models = sorted(set(s["models"]))
    if not models:  # no survey configured (study A's profile): an empty kit, so both tools run through
        with atomic_dir(root / paths.SURVEY) as tmp:
            kit.write_page(tmp, render_page(s["title"] + " (no survey: survey.models is empty)", s["questions"], s["scale"], []))
            kit.write_key(tmp, {"items": {}, "order": [], "models": [], "questions": list(s["questions"]),
                                "scale": list(s["scale"]), "per_model": s["per_model"], "seed": s["seed"], "title": s["title"]})  # fmt: skip
        return {"items": 0, "models": 0, "questions": len(s["questions"]), "shared_inputs": 0, "page_bytes": 0}
    pools, outputs = {}, {}
    for m in models:
        ids, images, record = read_translations(root / paths.TRANSLATIONS.format(model=m))
        pools[m] = [(record["source"], i) for i in ids]
        outputs[m] = dict(zip(ids, images))
    try:
        items = choose_items(pools, s["per_model"], s["seed"])
    except SurveyError as e:
        raise StageError(f"survey: {e}; lower survey.per_model or translate more images") from None
    needed: dict[str, list[str]] = {}
    for it in items:
        needed.setdefault(it["source"], [])
        if it["input"] not in needed[it["source"]]:
            needed[it["source"]].append(it["input"])
    inputs = {}
    for m in models:  # each translator's folder holds its inputs beside its outputs (one source per model)
        wanted = [i for src, i in pools[m] if i in needed.get(src, []) and (src, i) not in inputs]
        if wanted:
            src = pools[m][0][0]
            inputs.update({(src, i): img for i, img in zip(wanted, read_inputs(root / paths.TRANSLATIONS.format(model=m), wanted))})
    entries = [(it["item"], inputs[(it["source"], it["input"])], outputs[it["model"]][it["input"]]) for it in items]
    page = render_page(s["title"], s["questions"], s["scale"], entries)
    key = {
        "items": {it["item"]: {k: it[k] for k in ("model", "source", "input")} for it in items},
        "order": [it["item"] for it in items], "models": models, "questions": list(s["questions"]),
        "scale": list(s["scale"]), "per_model": s["per_model"], "seed": s["seed"], "title": s["title"],
    }  # fmt: skip
    with atomic_dir(root / paths.SURVEY) as tmp:
        kit.write_page(tmp, page)
        kit.write_key(tmp, key)
    shared = len(set.intersection(*({(it["source"], it["input"]) for it in items if it["model"] == m} for m in models)))
    return {"items": len(items), "models": len(models), "questions": len(s["questions"]), "shared_inputs": shared,
            "page_bytes": len(page.encode("utf-8"))}  # fmt: skip
