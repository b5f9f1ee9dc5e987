# Models: train -> sample, one job per model declared under models: in params.yaml.  Both carry
# resources gpu=1, so `snakemake --cores 8 --resources gpu=1` runs one of them at a time while the CPU
# stages proceed in parallel.  The device is chosen by the stage (train.device / sample.device).


rule train:
    input:
        images=model_input(PROCESSED),
        split=model_split,
        code=model_code("train"),
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
        model=one_of(MODELS),  # train_translator writes the same paths for translators
    params:
        train=P("train"),
        family=model_param("family"),
        dataset=model_param("dataset"),
        split=model_param("split"),
        loop=model_param("train"),
        net=model_param("net"),
    threads: cpu_threads("train")
    resources:
        gpu=1,
    log:
        "logs/train/{model}.log",
    shell:
        "animegen train --model {wildcards.model} > {log} 2>&1"


rule sample:
    input:
        MODEL,
        code=model_code("sample"),
    output:
        report(
            directory(SAMPLES),
            patterns=["{figure,grid}.png"],
            caption="../report/samples.rst",
            category="Samples",
            labels={"model": "{model}"},
        ),
    params:
        sample=P("sample"),
        family_sample=model_param("sample"),
    threads: cpu_threads("sample")
    resources:
        gpu=1,
    log:
        "logs/sample/{model}.log",
    shell:
        "animegen sample --model {wildcards.model} > {log} 2>&1"
