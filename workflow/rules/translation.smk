# Image-to-image translation: train_translator -> translate -> evaluate_translation, and track_translator
# (FID over training), one job each per translator declared under translators: in params.yaml (studies
# B-D).  The four carry gpu=1 like the generators' stages.  derive makes, once per dataset, what AnimeGAN
# needs (edge-smoothed style images, face masks of photos; a dataset that needs neither gets its record
# alone), and every translator depends on its two datasets' derived folders, for the same reason.  Every translator depends on its classifier: the character ratio needs it, and
# CycleGAN + CAM multiplies its Grad-CAM maps in (dvc.yaml cannot make that dependency conditional, so
# neither does this file: both tools keep one DAG).


rule derive:
    input:
        images=PROCESSED,
        code=CODE["derive"],
    output:
        directory(DERIVED),
    params:
        derive=P("derive"),
    log:
        "logs/derive/{dataset}.log",
    shell:
        "animegen derive --dataset {wildcards.dataset} > {log} 2>&1"


rule train_translator:
    input:
        source=translator_input(PROCESSED, "source"),
        source_split=translator_split("source"),
        target=translator_input(PROCESSED, "target"),
        target_split=translator_split("target"),
        classifier=translator_classifier,
        source_derived=translator_input(DERIVED, "source"),
        target_derived=translator_input(DERIVED, "target"),
        code=translator_code("train_translator"),
    output:
        model=report(
            directory(MODEL),
            patterns=["{figure,curves}.png"],
            caption="../report/curves.rst",
            category="Training curves",
            labels={"model": "{model}", "figure": "losses"},
        ),
        metrics=TRAIN_METRICS + "/metrics.json",
        plots=directory(TRAIN_METRICS + "/plots"),
    wildcard_constraints:
        model=one_of(TRANSLATORS),
    params:
        train=P("train"),
        family=translator_param("family"),
        source=translator_param("source"),
        target=translator_param("target"),
        paired=translator_param("paired"),
        classifier=translator_param("classifier"),
        target_class=translator_param("target_class"),
        loop=translator_param("train"),
        net=translator_param("net"),
    threads: cpu_threads("train")
    resources:
        gpu=1,
    log:
        "logs/train_translator/{model}.log",
    shell:
        "animegen train_translator --model {wildcards.model} > {log} 2>&1"


rule translate:
    input:
        MODEL,
        images=translator_input(PROCESSED, "source"),
        split=translator_input(SPLIT, "source"),
        target=translator_input(PROCESSED, "target"),
        target_split=translator_input(SPLIT, "target"),
        classifier=translator_classifier,
        code=translator_code("translate"),
    output:
        report(
            directory(TRANSLATIONS),
            patterns=["{figure,grid}.png"],
            caption="../report/translations.rst",
            category="Translations",
            labels={"model": "{model}"},
        ),
    params:
        translate=P("translate"),
        source=translator_param("source.dataset"),
        target=translator_param("target.dataset"),
        paired=translator_param("paired"),
        classifier=translator_param("classifier"),
        target_class=translator_param("target_class"),
    threads: cpu_threads("translate")
    resources:
        gpu=1,
    log:
        "logs/translate/{model}.log",
    shell:
        "animegen translate --model {wildcards.model} > {log} 2>&1"


rule evaluate_translation:
    input:
        TRANSLATIONS,
        reference=translator_input(REFERENCE, "target"),
        target=translator_input(PROCESSED, "target"),
        target_split=translator_input(SPLIT, "target"),
        classifier=translator_classifier,
        code=CODE["evaluate_translation"],
    output:
        metrics=TRANSLATION_METRICS,
        record=TRANSLATION_RECORD,
    params:
        inception=P("inception"),
        metrics=P("metrics"),
        evaluate_translation=P("evaluate_translation"),
        against=translator_param("reference"),
        classifier=translator_param("classifier"),
        target_class=translator_param("target_class"),
    threads: cpu_threads("inception")
    resources:
        gpu=1,
    log:
        "logs/evaluate_translation/{model}.log",
    shell:
        "animegen evaluate_translation --model {wildcards.model} > {log} 2>&1"


rule track_translator:
    input:
        MODEL,
        images=translator_input(PROCESSED, "source"),
        split=translator_input(SPLIT, "source"),
        reference=translator_input(REFERENCE, "target"),
        target_split=translator_input(SPLIT, "target"),
        classifier=translator_classifier,
        code=translator_code("track_translator"),
    output:
        curve=report(
            directory(TRACK),
            patterns=["{figure,fid}.png"],
            caption="../report/fid_curve.rst",
            category="Training curves",
            labels={"model": "{model}", "figure": "FID over training"},
        ),
        metrics=TRACK_METRICS,
        record=TRACK_RECORD,
    wildcard_constraints:
        model=one_of(TRANSLATORS),
    params:
        track=P("track"),
        inception=P("inception"),
        images=P("translate.images"),  # what translate translates, through the generator it uses
        use_ema=P("translate.use_ema"),
        batch_size=P("translate.batch_size"),
        source=translator_param("source.dataset"),
        against=translator_param("reference"),
        classifier=translator_param("classifier"),
        target_class=translator_param("target_class"),
    threads: cpu_threads("inception")
    resources:
        gpu=1,
    log:
        "logs/track_translator/{model}.log",
    shell:
        "animegen track_translator --model {wildcards.model} > {log} 2>&1"


rule survey:
    input:
        # every translator's translations, as dvc.yaml (all of data/translations): both tools keep one DAG
        expand(TRANSLATIONS, model=TRANSLATORS),
        code=CODE["survey"],
    output:
        directory(paths.SURVEY),
    params:
        survey=lambda wc: json.dumps({k: v for k, v in config["survey"].items() if k != "bootstrap"}, sort_keys=True),
    log:
        "logs/survey/survey.log",
    shell:
        "animegen survey > {log} 2>&1"


def answer_files(wc):
    """data/survey_answers/ and every file in it (the raters' returned CSV files, put there by hand)."""
    root = Path(paths.SURVEY_ANSWERS)
    return [str(root)] + sorted(str(p) for p in root.rglob("*") if p.is_file())


rule survey_score:
    input:
        paths.SURVEY,
        answers=answer_files,
        code=CODE["survey_score"],
    output:
        metrics=paths.SURVEY_METRICS,
        record=paths.SURVEY_RECORD,
        table=paths.SURVEY_TABLE,
    params:
        bootstrap=P("survey.bootstrap"),
    log:
        "logs/survey_score/survey_score.log",
    shell:
        "animegen survey_score > {log} 2>&1"
