"""What a run of an experiment depends on, from the config alone (no torch: the Snakefile
imports this while planning the DAG)."""

from __future__ import annotations

# The task list a task reads when it is not its own (tables/tasks/<name>.parquet).
TASK_LISTS = {"correspondence": "retrieval", "captioning": "retrieval"}
# Tasks that read sentence vectors from the text store (text/sentences.zarr), passed among the
# runs' EXTRACTOR=STORE items as SENTENCES_KEY=STORE.
SENTENCE_VECTOR_TASKS = frozenset({"correspondence"})
SENTENCES_KEY = "sentences"


def task_list_name(task: str) -> str:
    return TASK_LISTS.get(task, task)


def variant_features(experiment: dict, variant: str) -> list[str]:
    """The extractors a variant reads: its own ``features`` or the experiment's."""
    if variant not in experiment["variants"]:
        raise KeyError(f"unknown variant {variant!r}; known: {sorted(experiment['variants'])}")
    return (experiment["variants"][variant] or {}).get("features", experiment["features"])


def run_settings(experiment: dict, variant: str) -> dict:
    """The part of an experiment config that one variant's runs depend on (no other variants,
    no seed list), so adding a variant or a seed reruns nothing that exists."""
    settings = {k: v for k, v in experiment.items() if k not in ("variants", "seeds")}
    return {**settings, "variants": {variant: experiment["variants"][variant]}}
