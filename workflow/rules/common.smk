# Paths and small helpers shared by the rules (wiring only; logic lives in vlpipe).
import functools
import json
import os
from pathlib import Path

from vlpipe.datasets import has_captions, read_dataset
from vlpipe.experiment_checks import check_experiment, check_tables, check_text_tasks
from vlpipe.extractors import check_settings
from vlpipe.layout import ResultsLayout, shard_names
from vlpipe.manifest import files_digest
from vlpipe.models import model_family
from vlpipe.planning import (
    SENTENCES_KEY,
    named_paths,
    report_tables,
    run_settings,
    upstream_run,
    variant_extractors,
)
from vlpipe.provenance import step_fingerprint
from vlpipe.tasks import task_spec

for _name, _settings in config["extractors"].items():
    check_settings(_name, _settings)  # unknown kinds or settings fail before any job runs
for _reserved, _store in {SENTENCES_KEY: "the text store", "gaze": "the gaze store"}.items():
    if _reserved in config["extractors"]:
        raise ValueError(f"config extractors: {_reserved!r} names {_store}; rename it")
for _name, _experiment in config["experiments"].items():
    # model, model_args, variant flags, task_args, inputs, init_from: before any job runs
    check_experiment(_name, _experiment, config["experiments"], config["extractors"])
check_tables(config.get("tables", {}), config["experiments"])
CAPTIONED = has_captions(config["dataset"]["format"])
check_text_tasks(config["experiments"], config["dataset"]["format"], CAPTIONED)
# report table → the experiments it shows: each experiment's own, and the config's `tables`
TABLES = report_tables(config["experiments"], config.get("tables"))

# Jobs import vlpipe from this checkout, also inside the per-rule conda environments
# (`--software-deployment-method conda`, envs/*.yaml), which do not install it. The workflow
# sets PYTHONPATH itself (a cluster job re-reads this file and sets it again), so it is not an
# `envvars:` entry, which would make it a variable the user must define.
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in [workflow.basedir, os.environ.get("PYTHONPATH")] if p)
)
ENVS = {
    group: f"{workflow.basedir}/envs/{group}.yaml"
    for group in ["data", "features", "models", "report"]
}


def code_of(step, model=None):
    """A rule's `code` param: the fingerprint of the library code its step runs (for a run:
    of its model family), so that editing that code reruns the rule's jobs
    (with `code_reruns: false`, "" — reruns do not follow the code; the outputs still record it)."""
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


LAYOUT = ResultsLayout(OUT)
SHARDS = shard_names(config["shards"])
LOGS = f"{OUT}/logs"
RUNTIME = config.get("runtime", {})
TEXT_STORE = LAYOUT.text_store
TARGET_STORES = {"gaze": LAYOUT.gaze_store}  # stores of tasks' targets (`TaskSpec.targets`)


# Cluster resources per group of rules (SLURM: --gpus/--mem/--time); `runtime.resources` overrides.
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
    return LAYOUT.shard_file(shard)


# clips left out of extraction as bad input (runtime.bad_clips: quarantine), with the reason
QUARANTINE = f"{OUT}/quarantine.csv"


def feature_store(extractor, shard):
    return LAYOUT.feature_store(extractor, shard)


def experiment_stores(experiment, variant):
    """EXTRACTOR=STORE items for every (extractor, shard) a variant of an experiment reads, and
    sentences=STORE (the text store) when its task reads sentence vectors."""
    settings = config["experiments"][experiment]
    stores = {
        extractor: [feature_store(extractor, shard) for shard in SHARDS]
        for extractor in variant_extractors(settings, variant)
    }
    spec = task_spec(settings["task"])
    if spec.sentence_vectors:
        stores[SENTENCES_KEY] = [TEXT_STORE]
    for ref in spec.target_refs():  # what the task predicts (RGP: the gaze maps)
        stores[ref.extractor] = [TARGET_STORES[ref.extractor]]
    return named_paths(stores)


def model_file(experiment, variant, seed):
    return LAYOUT.model(experiment, variant, seed)


def upstream_model(experiment, variant, seed):
    """The model.pt of the run (same seed) this variant's runs start from, or None."""
    upstream = upstream_run(config["experiments"][experiment], variant)
    return model_file(*upstream, seed) if upstream else None


def metrics_file(experiment, variant, seed):
    return f"{OUT}/metrics/{experiment}/{variant}/seed-{seed}.json"


def table_files():
    return [f"{OUT}/report/{name}.{ext}" for name in TABLES for ext in ("md", "tex", "csv")]


def report_figures():
    """Each experiment's training curves, and the examples figure of each table whose task
    draws one (gaze maps, captions beside the clips' frames)."""
    return [f"{OUT}/report/{name}-training.png" for name in config["experiments"]] + [
        f"{OUT}/report/{name}-examples.png"
        for name, members in TABLES.items()
        if task_spec(config["experiments"][members[0]]["task"]).example_figure
    ]


def text_targets():
    """The sentence-embedding store, when the config names a text encoder and the clips have
    sentences."""
    return [TEXT_STORE] if config["text"].get("encoder") and CAPTIONED else []


def print_tables():
    tables = [path for path in table_files() if Path(path).exists()]
    if tables:
        print("\nvlpipe: result tables")
        for path in tables:
            print(f"  {path}")


# data.smk: the manifest's digest of the videos it reads


@functools.cache
def videos_digest():
    """(path, size, mtime) of every video of an external data set, as one digest: a params value
    of the manifest, so a changed, added or removed video reruns it (Snakemake's params trigger)
    and the shard plan then rewrites only the shards that hold it. Generated (synthetic) videos
    are instead inputs: Snakemake tracks its own outputs."""
    if "synthetic" in config["dataset"]:
        return "generated"
    dataset = config["dataset"]
    tables = read_dataset(dataset["format"], dataset["root"], **dataset.get("options", {}))
    return files_digest(tables.clips["video_path"])


# features.smk: the extraction jobs


def planned_shard(wildcards):
    checkpoints.manifest.get()  # the shard plan exists, with its current mtime
    return shard_file(wildcards.shard)


def extraction_jobs():
    """job name → the extractors it runs (config order)."""
    jobs = {}
    for name, settings in config["extractors"].items():
        jobs.setdefault(settings.get("job", name), []).append(name)
    return jobs


def extractor_settings(name):
    """What an extractor's features depend on (`job` only says where it runs)."""
    return {k: v for k, v in config["extractors"][name].items() if k != "job"}


# models.smk: a run's inputs


def run_inputs(wildcards):
    experiment = config["experiments"][wildcards.experiment]
    task = task_spec(experiment["task"])
    concepts = model_family(experiment["model"]).reads_concepts
    return {
        "clips": LAYOUT.clips_table,
        "vocab": LAYOUT.vocab,
        "task_list": LAYOUT.task_list(task.list_name),
        "stores": [
            item.split("=", 1)[1]
            for item in experiment_stores(wildcards.experiment, wildcards.variant)
        ],
        **({"concepts": LAYOUT.concepts} if concepts else {}),
    }


def concepts_arg(wildcards, input):
    """The concept words of a model that reads them, or "" (none)."""
    return input.concepts if "concepts" in input.keys() else ""


def train_inputs(wildcards):
    """A run's inputs, and the upstream run's model.pt when it starts from one (init_from):
    retraining the upstream reruns this run, and nothing else."""
    upstream = upstream_model(wildcards.experiment, wildcards.variant, wildcards.seed)
    return {**run_inputs(wildcards), **({"upstream": upstream} if upstream else {})}


def init_from_arg(wildcards, input):
    """The upstream model.pt, or "" (none)."""
    return input.upstream if "upstream" in input.keys() else ""


# report.smk: what each experiment's table and curves read


def table_metrics(wildcards):
    """The metrics of every run of the table's experiments."""
    return [
        metrics_file(name, variant, seed)
        for name in TABLES[wildcards.table]
        for variant in config["experiments"][name]["variants"]
        for seed in config["experiments"][name]["seeds"]
    ]


def examples_inputs(wildcards):
    """The table's metrics, and the clips table when its examples figure shows the clips'
    frames (captioning, Fill in the Characters)."""
    task = config["experiments"][TABLES[wildcards.table][0]]["task"]
    frames = task_spec(task).example_figure in ("frames", "sets")
    return {
        "metrics": table_metrics(wildcards),
        **({"clips": LAYOUT.clips_table} if frames else {}),
    }


def clips_arg(wildcards, input):
    """The clips table, or "" (a figure that shows no frames)."""
    return input.clips if "clips" in input.keys() else ""


def table_settings(wildcards):
    """What the table's provenance prints: its experiments' settings and the data's."""
    return as_json(
        {
            "experiments": {name: config["experiments"][name] for name in TABLES[wildcards.table]},
            "dataset": config["dataset"],
            "extractors": config["extractors"],
        }
    )


def experiment_train_logs(wildcards):
    """variant → the train_log.jsonl of each of its seeds."""
    experiment = config["experiments"][wildcards.experiment]
    return {
        variant: [
            rules.train.output.log.format(
                experiment=wildcards.experiment, variant=variant, seed=seed
            )
            for seed in experiment["seeds"]
        ]
        for variant in experiment["variants"]
    }
