# Study C: a classifier per cam_classifier entry, then a Grad-CAM selection per cam_select entry.
# A selection is written as a split (data/splits/<selection>.json, and <selection>_random.json for its
# random control), so a model trains on it with models.<m>.split.  Both stages run the classifier on
# the device of cam.device and carry resources gpu=1.


rule cam_classifier:
    input:
        positive_images=classifier_input(PROCESSED, "positive"),
        positive_split=classifier_input(SPLIT, "positive"),
        negative_images=classifier_input(PROCESSED, "negative"),
        negative_split=classifier_input(SPLIT, "negative"),
        code=CODE["cam_classifier"],
    output:
        model=directory(CAM_CLASSIFIER),
        metrics=CAM_CLASSIFIER_METRICS,
    params:
        device=P("cam.device"),
        cpu_threads=P("cam.cpu_threads"),
        classifier=lambda wc: P(f"cam_classifier.{wc.classifier}"),
    threads: cpu_threads("cam")
    resources:
        gpu=1,
    log:
        "logs/cam_classifier/{classifier}.log",
    shell:
        "animegen cam_classifier --classifier {wildcards.classifier} > {log} 2>&1"


rule cam_select:
    input:
        classifier=lambda wc: CAM_CLASSIFIER.format(classifier=config["cam_select"][wc.selection]["classifier"]),
        images=selection_input(PROCESSED),
        split=selection_input(SPLIT),
        code=CODE["cam_select"],
    output:
        split=CAM_SPLIT,
        random=CAM_RANDOM_SPLIT,
        evidence=report(
            directory(CAM_SELECTION),
            patterns=["overlay_{end,top|bottom}.png"],
            caption="../report/cam_overlay.rst",
            category="CAM selection",
            labels={"selection": "{selection}", "images": "{end}"},
        ),
        metrics=CAM_SELECTION_METRICS,
    params:
        device=P("cam.device"),
        cpu_threads=P("cam.cpu_threads"),
        selection=lambda wc: P(f"cam_select.{wc.selection}"),
    threads: cpu_threads("cam")
    resources:
        gpu=1,
    log:
        "logs/cam_select/{selection}.log",
    shell:
        "animegen cam_select --selection {wildcards.selection} > {log} 2>&1"
