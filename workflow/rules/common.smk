# Paths and small helpers shared by the rules (wiring only; logic lives in vlpipe).
import json
import os
from pathlib import Path

from vlpipe.experiment_checks import check_experiment
from vlpipe.extractors import check_settings
from vlpipe.planning import (
    SENTENCES_KEY,
    named_paths,
    run_settings,
    upstream_run,
    variant_extractors,
)
from vlpipe.provenance import step_fingerprint
from vlpipe.tasks import task_spec

for _name, _settings in config["extractors"].items():
    check_settings(_name, _settings)  # unknown kinds or settings fail before any job runs
if SENTENCES_KEY in config["extractors"]:
    raise ValueError(f"config extractors: {SENTENCES_KEY!r} names the text store; rename it")
for _name, _experiment in config["experiments"].items():
    # model, model_args, variant flags, task_args, inputs, init_from: before any job runs
    check_experiment(_name, _experiment, config["experiments"], config["extractors"])

# Jobs import vlpipe from this checkout, also inside the per-rule conda environments
# (`--software-deployment-method conda`, envs/*.yaml), which do not install it.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in [workflow.basedir, os.environ.get("PYTHONPATH")] if p
)
ENVS = {group: f"{workflow.basedir}/envs/{group}.yaml" for group in
        ["data", "features", "models", "report"]}

def code_of(step, model=None):
    """A rule's `code` param: the fingerprint of the library code its step runs (for a run:
    of its model family), so that editing that code reruns the rule (`code_reruns: false`:
    "" — reruns do not follow the code; the outputs still record it)."""
    return step_fingerprint(step, model) if config.get("code_reruns", True) else ""


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


def job_line(text):
    """A rule's `message`: its job as one console line, printed instead of Snakemake's block of
    inputs, outputs and resources (which lists every clip file of the synthetic world); with
    `snakemake --verbose`, none: the full block again."""
    return None if workflow.output_settings.verbose else text


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
    stores = {
        extractor: [feature_store(extractor, shard) for shard in SHARDS]
        for extractor in variant_extractors(settings, variant)
    }
    if task_spec(settings["task"]).sentence_vectors:
        stores[SENTENCES_KEY] = [TEXT_STORE]
    return named_paths(stores)


def model_file(experiment, variant, seed):
    return f"{OUT}/models/{experiment}/{variant}/seed-{seed}/model.pt"


def upstream_model(experiment, seed):
    """The model.pt of the run (same seed) this experiment's runs start from, or None."""
    upstream = upstream_run(config["experiments"][experiment])
    return model_file(*upstream, seed) if upstream else None


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
