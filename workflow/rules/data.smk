# Data preparation: collect -> cutout -> resize -> split, one job per dataset declared in params.yaml.


rule collect:
    input:
        sources=source_files,
        code=CODE["collect"],
    output:
        directory(RAW),
    params:
        sources=dataset_param("sources"),
        collect=P("collect"),
    log:
        "logs/collect/{dataset}.log",
    shell:
        "animegen collect --dataset {wildcards.dataset} > {log} 2>&1"


rule cutout:
    input:
        RAW,
        code=CODE["cutout"],
    output:
        directory(CUTOUT),
    params:
        cutout=P("cutout"),
    log:
        "logs/cutout/{dataset}.log",
    shell:
        "animegen cutout --dataset {wildcards.dataset} > {log} 2>&1"


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
    log:
        "logs/resize/{dataset}.log",
    shell:
        "animegen resize --dataset {wildcards.dataset} > {log} 2>&1"


rule split:
    input:
        PROCESSED,
        code=CODE["split"],
    output:
        SPLIT,
    params:
        split=P("split"),
    log:
        "logs/split/{dataset}.log",
    shell:
        "animegen split --dataset {wildcards.dataset} > {log} 2>&1"
