"""Training and evaluation entry points: build a task and a model from an experiment config.

An experiment config (``config.yaml: experiments.<name>``) names the ``model``, the ``task``, the
``features`` (extractors, concatenated per step), ``model_args`` shared by all variants,
``variants`` (name → flags overriding ``model_args``, and optionally ``features``: the -noaudio
ablation reads fewer extractors), ``task_args``, ``train`` settings and ``seeds``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vlpipe.atomic import write_json
from vlpipe.experiment_config import SENTENCE_VECTOR_TASKS, SENTENCES_KEY, variant_features
from vlpipe.features import FeatureStore
from vlpipe.models import build_model
from vlpipe.sequences import load_clip_features, quarantined_clips
from vlpipe.tasks import TASKS
from vlpipe.text import Vocabulary, load_embeddings
from vlpipe.training import TrainSettings, train
from vlpipe.training.loop import load_state, resolve_device, seed_everything

log = logging.getLogger(__name__)


def _group_stores(stores: Sequence[str],
                  extractors: Sequence[str]) -> tuple[list[list[str]], str | None]:
    """``["resnet152=a.zarr", ..., "sentences=t.zarr"]`` → store paths grouped in the
    experiment's extractor order, and the text store if given."""
    grouped: dict[str, list[str]] = {name: [] for name in (*extractors, SENTENCES_KEY)}
    for item in stores:
        name, path = item.split("=", 1)
        grouped[name].append(path)
    text_store = grouped[SENTENCES_KEY][0] if grouped[SENTENCES_KEY] else None
    return [grouped[name] for name in extractors], text_store


def sentence_inputs(text_store: str | None, task: str) -> dict:
    """The task's ``sentence_vectors`` argument: per clip (n_sentences, D) from the text store,
    for the tasks that read them (`SENTENCE_VECTOR_TASKS`); nothing for the others."""
    if task not in SENTENCE_VECTOR_TASKS:
        return {}
    if text_store is None:
        raise ValueError(f"task {task!r} reads sentence vectors: pass the text store as "
                         f"{SENTENCES_KEY}=text/sentences.zarr among the stores")
    return {"sentence_vectors": FeatureStore(text_store).read_all("sentence")}


def build_task_and_model(experiment: dict, variant: str, seed: int, clips_path: str,
                         vocab_path: str, stores: Sequence[str], text: dict,
                         task_list_path: str | None = None):
    """The task (data + objective) and a freshly initialised model for one run, and the paths of
    the stores it read (per extractor, then the text store if any)."""
    clips = pd.read_parquet(clips_path)
    vocab = Vocabulary.load(vocab_path)
    store_groups, text_store = _group_stores(stores, variant_features(experiment, variant))
    task_list = pd.read_parquet(task_list_path) if task_list_path else None
    bad = quarantined_clips(store_groups)
    if bad:  # left out of extraction as bad input (runtime.bad_clips: quarantine)
        log.warning("%d quarantined clip(s) left out of training and evaluation: %s", len(bad),
                    sorted(bad)[:5])
        clips = clips[~clips["clip_id"].isin(bad)]
        if task_list is not None:
            task_list = task_list[~task_list["clip_id"].isin(bad)]
    features, blocks = load_clip_features(store_groups, list(clips["clip_id"]))
    task = TASKS[experiment["task"]](clips, features, vocab, task_list=task_list, blocks=blocks,
                                     **sentence_inputs(text_store, experiment["task"]),
                                     **experiment.get("task_args", {}))
    flags = {k: v for k, v in (experiment["variants"][variant] or {}).items() if k != "features"}
    model_args = {**experiment.get("model_args", {}), **flags}
    seed_everything(seed)
    video_dim = task.feature_dim  # after the task's normalisation (PCA may reduce it)
    word_vectors = None
    if text.get("embeddings"):
        word_vectors, _ = load_embeddings(text["embeddings"], vocab,
                                          model_args.get("word_dim", 300), seed)
    model = build_model(experiment["model"], vocab_size=len(vocab), video_dim=video_dim,
                        word_vectors=word_vectors, **task.model_inputs(), **model_args)
    return task, model, store_groups + ([[text_store]] if text_store else [])


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def run_training(experiment: dict, variant: str, seed: int, clips_path: str, vocab_path: str,
                 stores: Sequence[str], text: dict, out_dir: str,
                 task_list_path: str | None = None) -> dict:
    task, model, _ = build_task_and_model(experiment, variant, seed, clips_path, vocab_path,
                                          stores, text, task_list_path)
    settings = TrainSettings(**{**experiment.get("train", {}), "seed": seed})
    store_paths = [item.split("=", 1)[1] for item in stores]
    inputs = [Path(p).stat().st_mtime_ns for p in [clips_path, vocab_path, *store_paths,
                                                   *([task_list_path] if task_list_path else [])]]
    return train(model, task, settings, out_dir,
                 fingerprint=fingerprint(experiment, variant, seed, stores, inputs))


def features_provenance(store_groups: list[list[str]]) -> list[dict]:
    provenance = []
    for paths in store_groups:
        attrs = FeatureStore(paths[0]).attrs["provenance"]
        provenance.append({"extractor": attrs["extractor"], "weights": attrs["weights"],
                           "pretrained": not attrs["weights"].startswith("random-seed")})
    return provenance


def run_evaluation(experiment: dict, name: str, variant: str, seed: int, clips_path: str,
                   vocab_path: str, stores: Sequence[str], text: dict, model_path: str,
                   dataset: str, out_path: str, task_list_path: str | None = None) -> dict:
    task, model, store_groups = build_task_and_model(experiment, variant, seed, clips_path,
                                                     vocab_path, stores, text, task_list_path)
    device = resolve_device(experiment.get("train", {}).get("device", "auto"))
    model.load_state_dict(load_state(model_path)["model"])
    model.to(device)
    result = {"experiment": name, "variant": variant, "seed": seed, "dataset": dataset,
              "task": experiment["task"], "n_test": task.num_items("test"), **task.report_info(),
              "features": features_provenance(store_groups),
              "test": task.evaluate(model, "test", device),
              "val": task.evaluate(model, "val", device)}
    write_json(out_path, json.loads(json.dumps(result, default=_to_builtin)))
    return result


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
