# vlpipe — `make demo` sets everything up and runs the demo DAG; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
BIN := $(abspath $(VENV))/bin
export HF_HUB_OFFLINE := 1
export YOLO_CONFIG_DIR := $(abspath .cache/ultralytics)

.PHONY: setup demo demo-tours report test test-slow lint dry-run clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup  ## run the whole DAG on config.yaml (the synthetic demo)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES)

demo-tours: setup  ## WAL on subtitled tour videos with known noise (configs/tours.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/tours.yaml --replace-workflow-config

report: setup  ## the HTML report of the finished run (tables, training curves, provenance)
	PATH="$(BIN):$$PATH" snakemake --report results/report.html

dry-run: setup
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) -n

lint: setup
	$(BIN)/ruff check vlpipe tests benchmarks

test: lint  ## the default suite (slow tests excluded), < 10 min on 2 cores
	PATH="$(BIN):$$PATH" python -m pytest -q

test-slow: setup  ## slow tests: torch.compile scoring, the paper's claims on the demo (builds its runs)
	PATH="$(BIN):$$PATH" python -m pytest -q -m slow

clean:
	rm -rf results .snakemake
