# Evaluation: reference statistics per dataset (computed once), metrics per model, FID over training per
# model (track), dataset pairs, summary.
# Inception runs on the GPU when there is one, so these carry gpu=1 too.


rule reference:
    input:
        images=PROCESSED,
        split=SPLIT,
        code=CODE["reference"],
    output:
        directory(REFERENCE),
    params:
        inception=P("inception"),
        reference=P("reference"),
    threads: cpu_threads("inception")
    resources:
        gpu=1,
    log:
        "logs/reference/{dataset}.log",
    shell:
        "animegen reference --dataset {wildcards.dataset} > {log} 2>&1"


rule evaluate:
    input:
        samples=SAMPLES,
        reference=model_input(REFERENCE),
        images=model_input(PROCESSED),
        split=model_input(SPLIT),
        code=CODE["evaluate"],
    output:
        audit=report(
            directory(EVALUATE),
            patterns=["{figure,audit}.png"],
            caption="../report/audit.rst",
            category="Memorisation audit",
            labels={"model": "{model}"},
        ),
        metrics=MODEL_METRICS,
        record=MODEL_RECORD,
    params:
        inception=P("inception"),
        metrics=P("metrics"),
        evaluate=P("evaluate"),
        against=model_param("reference"),
    threads: cpu_threads("inception")
    resources:
        gpu=1,
    log:
        "logs/evaluate/{model}.log",
    shell:
        "animegen evaluate --model {wildcards.model} > {log} 2>&1"


rule track:
    input:
        MODEL,
        reference=model_input(REFERENCE),
        split=model_input(SPLIT),  # the reference is checked against the split's ids
        code=model_code("track"),
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
        model=one_of(MODELS),  # track_translator writes the same paths for translators
    params:
        track=P("track"),
        inception=P("inception"),
        use_ema=P("sample.use_ema"),
        family_sample=model_param("sample"),
        against=model_param("reference"),
    threads: cpu_threads("inception")
    resources:
        gpu=1,
    log:
        "logs/track/{model}.log",
    shell:
        "animegen track --model {wildcards.model} > {log} 2>&1"


rule compare:
    input:
        reference=pair_input(REFERENCE, "reference"),
        candidate=pair_input(REFERENCE, "candidate"),
        reference_images=pair_input(PROCESSED, "reference"),
        candidate_images=pair_input(PROCESSED, "candidate"),
        reference_split=pair_input(SPLIT, "reference"),
        candidate_split=pair_input(SPLIT, "candidate"),
        code=CODE["compare"],
    output:
        metrics=COMPARE,
        record=COMPARE_RECORD,
    params:
        inception=P("inception"),
        metrics=P("metrics"),
        pair=lambda wc: P(f"compare.pairs.{wc.pair}"),
    threads: cpu_threads("inception")
    resources:
        gpu=1,
    log:
        "logs/compare/{pair}.log",
    shell:
        "animegen compare --pair {wildcards.pair} > {log} 2>&1"


rule summary:
    input:
        models=expand(MODEL_RECORD, model=MODELS),  # the records: the numbers with their provenance
        pairs=expand(COMPARE_RECORD, pair=PAIRS),
        translators=expand(TRANSLATION_RECORD, model=TRANSLATORS),
        code=CODE["summary"],
    output:
        summary=paths.SUMMARY,
        table_md=paths.SUMMARY_TABLES["models"][0],
        table_csv=report(paths.SUMMARY_TABLES["models"][1], caption="../report/metrics_table.rst", category="Metrics",
                         labels={"table": "models (study A, Table 2)"}),
        compare_md=paths.SUMMARY_TABLES["compare"][0],
        compare_csv=report(paths.SUMMARY_TABLES["compare"][1], caption="../report/compare_table.rst",
                           category="Dataset comparison", labels={"table": "NWI validity check"}),
        translation_md=paths.SUMMARY_TABLES["translation"][0],
        translation_csv=report(paths.SUMMARY_TABLES["translation"][1], caption="../report/translation_table.rst",
                               category="Metrics", labels={"table": "translators (studies B-D)"}),
    log:
        "logs/summary/summary.log",
    shell:
        "animegen summary > {log} 2>&1"
