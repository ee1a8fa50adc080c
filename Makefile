# vlpipe — `make demo` sets everything up and runs the demo DAG; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
CORES ?= 2
CLAIMS_CONFIG ?= configs/paper.yaml
BIN := $(abspath $(VENV))/bin
export HF_HUB_OFFLINE := 1
export YOLO_CONFIG_DIR := $(abspath .cache/ultralytics)

.PHONY: setup demo paper demo-tours demo-gaze demo-hollywood2 demo-ctsan demo-stories demo-characters report weights test test-slow test-cluster lint dry-run clean

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

setup: $(VENV)/.installed

demo: setup  ## the quick demo (config.yaml): each system's main model vs its key ablation
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES)

paper: setup  ## every ablation of every paper table, 3 seeds, to a plateau (configs/paper.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/paper.yaml --replace-workflow-config

demo-tours: setup  ## WAL on subtitled tour videos with known noise (configs/tours.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/tours.yaml --replace-workflow-config

demo-gaze: setup  ## the demo + Table 3.2's gaze rows, C3D-Conv/-GRU and ShallowNet (configs/demo-gaze.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/demo-gaze.yaml

demo-hollywood2: setup  ## Table 3.2's Hollywood2 column: gaze on the world in Hollywood2 EM's layout (configs/hollywood2.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/hollywood2.yaml --replace-workflow-config

demo-ctsan: setup  ## the demo + CT-SAN's multiple-choice, retrieval and fill-in-the-blank models against Base-SAN (configs/demo-ctsan.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/demo-ctsan.yaml

demo-stories: setup  ## TAPM's visual storytelling on a world of 5-clip stories (configs/stories.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/stories.yaml --replace-workflow-config

demo-characters: setup  ## CiSIN's who is who on a world with recurring characters (configs/characters.yaml)
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) --configfile configs/characters.yaml --replace-workflow-config

report: setup  ## the HTML report of the finished run (tables, training curves, provenance)
	PATH="$(BIN):$$PATH" snakemake --report results/report.html

weights: setup  ## download the extractors' pretrained weights into $VLPIPE_WEIGHTS (docs/weights.md)
	$(BIN)/python -m vlpipe weights fetch

dry-run: setup
	PATH="$(BIN):$$PATH" snakemake --cores $(CORES) -n

lint: setup  ## ruff, snakefmt --check and snakemake --lint on each shipped config (docs/testing.md)
	$(BIN)/ruff check vlpipe tests benchmarks
	$(BIN)/snakefmt --check Snakefile workflow/
	PATH="$(BIN):$$PATH" snakemake --lint
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/paper.yaml --replace-workflow-config
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/tours.yaml --replace-workflow-config
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/demo-gaze.yaml
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/hollywood2.yaml --replace-workflow-config
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/demo-ctsan.yaml
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/stories.yaml --replace-workflow-config
	PATH="$(BIN):$$PATH" snakemake --lint --configfile configs/characters.yaml --replace-workflow-config

test: lint  ## the default suite (slow tests excluded), < 10 min on 2 cores: one worker per core, a file's tests on one worker
	PATH="$(BIN):$$PATH" python -m pytest -q -n $(CORES) --dist loadfile

test-slow: setup  ## slow tests: torch.compile scoring, the papers' claims on the runs of $(CLAIMS_CONFIG) (built if missing)
	PATH="$(BIN):$$PATH" CLAIMS_CONFIG="$(CLAIMS_CONFIG)" python -m pytest -q -m slow

test-cluster: setup  ## the tiny pipeline through a one-node SLURM cluster on 127.0.0.1 (root, Debian)
	tests/cluster/slurm.sh install
	tests/cluster/slurm.sh start
	PATH="$(BIN):$$PATH" python -m pytest -q -m cluster tests/cluster; \
	  status=$$?; tests/cluster/slurm.sh stop; exit $$status

clean:
	rm -rf results .snakemake
