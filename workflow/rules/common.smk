# Paths and small helpers shared by the rules (wiring only; logic lives in vlpipe).
import json
import os
from pathlib import Path

from vlpipe.experiment_config import (
    SENTENCE_VECTOR_TASKS,
    SENTENCES_KEY,
    run_settings,
    task_list_name,
    variant_features,
)
from vlpipe.extractors import check_settings

for _name, _settings in config["extractors"].items():
    check_settings(_name, _settings)  # unknown kinds or settings fail before any job runs
if SENTENCES_KEY in config["extractors"]:
    raise ValueError(f"config extractors: {SENTENCES_KEY!r} names the text store; rename it")

# Jobs import vlpipe from this checkout, also inside the per-rule conda environments
# (`--software-deployment-method conda`, envs/*.yaml), which do not install it.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [workflow.basedir, os.environ.get("PYTHONPATH")] if p
)
ENVS = {group: f"{workflow.basedir}/envs/{group}.yaml" for group in
        ["data", "features", "models", "report"]}

OUT = f"{config['results']}/{config['dataset']['name']}"
ROOT = config["dataset"]["root"]

# Every output lies under OUT (the schema keeps names free of path separators): `results` has
# no ".." component, and a synthetic world (written by the workflow) is generated inside it.
if ".." in Path(config["results"]).parts:
    raise ValueError(f"config results: {config['results']!r} has a '..' component")
if "synthetic" in config["dataset"] and not Path(os.path.abspath(ROOT)).is_relative_to(
    os.path.abspath(config["results"])
):
    raise ValueError(
        f"config dataset.root: {ROOT!r} is generated (dataset.synthetic) and must lie under "
        f"results ({config['results']!r})"
    )


wildcard_constraints:
    seed=r"-?\d+",  # reaches the shell unquoted (an integer)

SHARDS = [f"{k:03d}" for k in range(config["shards"])]
LOGS = f"{OUT}/logs"
RUNTIME = config.get("runtime", {})
TEXT_STORE = f"{OUT}/text/sentences.zarr"


# Cluster resources per rule group (SLURM: --gpus/--mem/--time); `runtime.resources` overrides.
# The cheap bookkeeping rules (synth_world, manifest, vocab, report) are local rules.
# Locally they only limit concurrency when given to `--resources` (e.g. `--resources gpu=1`).
DEFAULT_RESOURCES = {
    "extract": {"gpu": 1, "mem_mb": 32000, "runtime": 240},
    "text": {"gpu": 1, "mem_mb": 16000, "runtime": 60},
    "train": {"gpu": 0, "mem_mb": 16000, "runtime": 240},
}


def job_resources(group):
    defaults = dict(DEFAULT_RESOURCES[group])
    if RUNTIME.get("device") == "cpu":  # configured to run without a GPU: ask for none
        defaults["gpu"] = 0
    return {**defaults, **RUNTIME.get("resources", {}).get(group, {})}


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


def shard_file(shard):
    return f"{OUT}/shards/shard-{shard}.parquet"


# clips left out of extraction as bad input (runtime.bad_clips: quarantine), with the reason
QUARANTINE = f"{OUT}/quarantine.csv"


def feature_store(extractor, shard):
    return f"{OUT}/features/{extractor}/shard-{shard}.zarr"


def experiment_stores(experiment, variant):
    """EXTRACTOR=STORE items for every (extractor, shard) a variant of an experiment reads, and
    sentences=STORE (the text store) when its task reads sentence vectors."""
    settings = config["experiments"][experiment]
    stores = [
        f"{extractor}={feature_store(extractor, shard)}"
        for extractor in variant_features(settings, variant)
        for shard in SHARDS
    ]
    if settings["task"] in SENTENCE_VECTOR_TASKS:
        stores.append(f"{SENTENCES_KEY}={TEXT_STORE}")
    return stores


def metrics_file(experiment, variant, seed):
    return f"{OUT}/metrics/{experiment}/{variant}/seed-{seed}.json"


def report_tables():
    return [
        f"{OUT}/report/{name}.{ext}"
        for name in config["experiments"]
        for ext in ("md", "tex", "csv")
    ]


def report_figures():
    return [f"{OUT}/report/{name}-training.png" for name in config["experiments"]]


def text_targets():
    """The sentence-embedding store, when the config names a text encoder."""
    return [TEXT_STORE] if config["text"].get("encoder") else []


def print_tables():
    tables = [path for path in report_tables() if Path(path).exists()]
    if tables:
        print("\nvlpipe: result tables")
        for path in tables:
            print(f"  {path}")
