# animegen: the pipeline DAG for Snakemake (dvc.yaml declares the same stages for DVC).
#   snakemake --cores 2 --resources gpu=1 --workflow-profile workflow/profiles/default
# params.yaml is validated before any job runs (exit code 2 on a bad key).
from snakemake.utils import min_version

min_version("9.11")


configfile: "params.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/cam.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/translation.smk"


rule all:
    default_target: True
    input:
        expand(SPLIT, dataset=DATASETS),
        expand(REFERENCE, dataset=DATASETS),  # dvc.yaml makes one per dataset: same DAG in both tools
        expand(DERIVED, dataset=DATASETS),  # (likewise)
        expand(CAM_SELECTION_METRICS, selection=SELECTIONS),
        expand(SAMPLES, model=MODELS),
        expand(TRACK_METRICS, model=MODELS),  # one per model in both tools; an untracked model's says so
        expand(TRANSLATIONS, model=TRANSLATORS),
        expand(TRACK_METRICS, model=TRANSLATORS),
        paths.SURVEY_METRICS,
        paths.SUMMARY,
