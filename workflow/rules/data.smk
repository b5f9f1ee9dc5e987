# Data preparation: collect -> cutout -> resize -> split, one job per dataset declared in params.yaml.
# Each stage X reads section X with the dataset's own keys datasets.<dataset>.X laid over it (recipe).


rule collect:
    input:
        sources=source_files,
        code=CODE["collect"],
    output:
        directory(RAW),
    params:
        sources=dataset_param("sources"),
        collect=P("collect"),
        recipe=dataset_param("collect"),
    threads: data_workers("collect")
    log:
        "logs/collect/{dataset}.log",
    shell:
        "animegen collect --dataset {wildcards.dataset} --workers {threads} > {log} 2>&1"


rule cutout:
    input:
        RAW,
        code=CODE["cutout"],
    output:
        report(
            directory(CUTOUT),
            patterns=["{sheet,contact_sheet|onnx_vs_grabcut}.png"],
            caption="../report/contact_sheet.rst",
            category="Data",
            labels={"dataset": "{dataset}", "figure": "{sheet}"},
        ),
    params:
        cutout=P("cutout"),
        recipe=dataset_param("cutout"),
    threads: data_workers("cutout")
    log:
        "logs/cutout/{dataset}.log",
    shell:
        "animegen cutout --dataset {wildcards.dataset} --workers {threads} > {log} 2>&1"


rule resize:
    input:
        CUTOUT,
        code=CODE["resize"],
    output:
        directory(PROCESSED),
    params:
        size=dataset_param("size"),
        crop=dataset_param("crop"),
        resize=P("resize"),
        recipe=dataset_param("resize"),
    threads: data_workers("resize")
    log:
        "logs/resize/{dataset}.log",
    shell:
        "animegen resize --dataset {wildcards.dataset} --workers {threads} > {log} 2>&1"


rule split:
    input:
        PROCESSED,
        code=CODE["split"],
    output:
        SPLIT,
    params:
        split=P("split"),
        recipe=dataset_param("split"),
    log:
        "logs/split/{dataset}.log",
    shell:
        "animegen split --dataset {wildcards.dataset} > {log} 2>&1"
