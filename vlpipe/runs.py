"""Training and evaluation of one run (experiment, variant, seed): the task over the run's
feature inputs (streamed from the stores), and the model its family builds for the task.

The experiment config is described in `vlpipe.planning`; ``stores`` are the run's
``NAME=STORE`` arguments: one item per (extractor, shard) store, plus ``sentences=STORE`` (the
text store) for tasks that read sentence vectors.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vlpipe.atomic import write_json
from vlpipe.device import resolve_device
from vlpipe.features import FeatureStore
from vlpipe.features.inputs import ClipArrays
from vlpipe.gaze_maps import WEIGHTS as FIXATIONS
from vlpipe.models import build_model, model_family
from vlpipe.planning import (
    SENTENCES_KEY,
    parse_named_paths,
    upstream_init,
    variant_inputs,
    variant_model_args,
)
from vlpipe.provenance import code_identity
from vlpipe.tasks import task_class, task_spec
from vlpipe.text import Vocabulary, load_embeddings
from vlpipe.text.concepts import load_concept_ids
from vlpipe.text.pretrained import PretrainedTokenizer
from vlpipe.training import TrainSettings, train
from vlpipe.training.loop import load_state, seed_everything

log = logging.getLogger(__name__)


def sentence_inputs(text_store: str | None, task: str) -> dict:
    """The task's ``sentence_vectors`` argument: per clip (n_sentences, D) from the text store,
    for the tasks that read them; nothing for the others."""
    if not task_spec(task).sentence_vectors:
        return {}
    if text_store is None:
        raise ValueError(f"task {task!r} reads sentence vectors: pass the text store as "
                         f"{SENTENCES_KEY}=text/sentences.zarr among the stores")
    return {"sentence_vectors": FeatureStore(text_store).read_all("sentence")}


def without_clips(task_list: pd.DataFrame, clip_ids: Iterable[str]) -> pd.DataFrame:
    """The task list's items that use none of ``clip_ids``: its rows of another clip, or for
    a list of clip sets (storytelling's ``clip_ids``) the sets without any of them."""
    left_out = set(clip_ids)
    if "clip_ids" in task_list:
        return task_list[[not set(ids) & left_out for ids in task_list["clip_ids"]]]
    return task_list[~task_list["clip_id"].isin(left_out)]


def build_task_and_model(experiment: dict, variant: str, seed: int, clips_path: str,
                         vocab_path: str, stores: Sequence[str], text: dict,
                         task_list_path: str | None = None, concepts_path: str | None = None):
    """The task (data + objective) and a freshly initialised model for one run, and the
    provenance of the stores it reads (the feature inputs', then the text store's).
    ``concepts_path``: the concept words of a model family that reads them (CT-SAN)."""
    clips = pd.read_parquet(clips_path)
    model_args = variant_model_args(experiment, variant)
    vocab = text_vocabulary(experiment, model_args, vocab_path)
    concepts = ({"concept_ids": load_concept_ids(concepts_path, vocab)} if concepts_path
                else {})
    groups = parse_named_paths(stores)
    text_store = groups.pop(SENTENCES_KEY, [None])[0]
    targets = task_spec(experiment["task"]).target_refs()  # what it predicts, on one timeline
    arrays = ClipArrays(variant_inputs(experiment, variant) + targets, groups)
    task_list = pd.read_parquet(task_list_path) if task_list_path else None
    bad = arrays.quarantined()
    if bad:  # left out of extraction as bad input (runtime.bad_clips: quarantine)
        log.warning("%d quarantined clip(s) left out of training and evaluation: %s", len(bad),
                    sorted(bad)[:5])
        clips = clips[~clips["clip_id"].isin(bad)]
        if task_list is not None:
            task_list = without_clips(task_list, bad)
    encoder = ({"text_encoder": text.get("encoder")} if task_spec(experiment["task"]).text_encoder
               else {})
    task = task_class(experiment["task"])(clips, arrays, vocab, task_list=task_list,
                                          **sentence_inputs(text_store, experiment["task"]),
                                          **encoder,
                                          **concepts, **experiment.get("task_args", {}))
    seed_everything(seed)
    word_vectors = None
    # word vectors of the data set's words (a pretrained language model embeds its own tokens)
    if text.get("embeddings") and isinstance(vocab, Vocabulary):
        word_dim = model_family(experiment["model"]).settings(
            model_args, task.spec.predicts).get("word_dim", 300)  # presets may set it
        word_vectors, _ = load_embeddings(text["embeddings"], vocab, word_dim, seed)
    model = build_model(experiment["model"], model_args, task.model_inputs(word_vectors))
    provenance = store_provenance(arrays.store_paths() + ([text_store] if text_store else []))
    return task, model, provenance


def language_model(experiment: dict, model_args: dict) -> dict | None:
    """The language model a run generates with (`ModelFamily.language_model`), None if none."""
    family = model_family(experiment["model"])
    return family.language_model(family.settings(model_args,
                                                 task_spec(experiment["task"]).predicts))


def text_vocabulary(experiment: dict, model_args: dict, vocab_path: str):
    """The data set's vocabulary, or the tokenizer of the run's pretrained language model."""
    model = language_model(experiment, model_args)
    if model and model["weights"]:
        return PretrainedTokenizer(model["weights"])
    return Vocabulary.load(vocab_path)


def store_provenance(paths: Sequence[str]) -> list[dict]:
    """Per store: what made it (extractor, code), with which weights, and whether they are
    pretrained (None for a store no network made)."""
    provenance = []
    for path in paths:
        store_attrs = FeatureStore(path).attrs
        attrs = store_attrs["provenance"]
        # None: made by no network (the gaze store's maps come from recorded fixations)
        pretrained = (None if attrs["weights"] == FIXATIONS
                      else not attrs["weights"].startswith("random-seed"))
        provenance.append({"extractor": attrs["extractor"], "weights": attrs["weights"],
                           "pretrained": pretrained,
                           "code": store_attrs.get("code")})
    return provenance


def fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def start_from(model: torch.nn.Module, path: str, freeze: bool) -> list[str]:
    """Copy an upstream run's trained weights (``model.pt``) into ``model``: every parameter
    and buffer whose name and shape match, or whatever the model's own
    ``load_upstream(state, freeze)`` takes (a family that nests another under a prefix);
    ``freeze`` stops the copied parameters from training. Returns the names copied."""
    state = load_state(path)["model"]
    if hasattr(model, "load_upstream"):
        copied = model.load_upstream(state, freeze)
    else:
        own = model.state_dict()
        matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(matching, strict=False)
        copied = sorted(matching)
        if freeze:
            for name, parameter in model.named_parameters():
                if name in matching:
                    parameter.requires_grad_(False)
    if not copied:
        raise ValueError(f"init_from: no weight of {path} fits this model (no parameter with the "
                         "same name and shape)")
    log.info("started from %s: %d tensors copied%s", path, len(copied),
             ", frozen" if freeze else "")
    return copied


def run_training(experiment: dict, variant: str, seed: int, clips_path: str, vocab_path: str,
                 stores: Sequence[str], text: dict, out_dir: str,
                 task_list_path: str | None = None, concepts_path: str | None = None,
                 upstream_model: str | None = None, tensorboard: bool = False) -> dict:
    """Train one run into ``out_dir`` (`vlpipe.training.train`); ``tensorboard``: also write
    TensorBoard event files there (how it runs, not what it computes: not in the fingerprint)."""
    task, model, _ = build_task_and_model(experiment, variant, seed, clips_path, vocab_path,
                                          stores, text, task_list_path, concepts_path)
    if upstream_model:
        start_from(model, upstream_model,
                   upstream_init(experiment, variant).get("freeze", True))
    settings = TrainSettings(**{**experiment.get("train", {}), "seed": seed,
                                "tensorboard": tensorboard})
    store_paths = [path for paths in parse_named_paths(stores).values() for path in paths]
    inputs = [Path(p).stat().st_mtime_ns for p in [clips_path, vocab_path, *store_paths,
                                                   *([task_list_path] if task_list_path else []),
                                                   *([concepts_path] if concepts_path else []),
                                                   *([upstream_model] if upstream_model else [])]]
    code = code_identity("train", experiment["model"])
    return train(model, task, settings, out_dir, record={"code": code},
                 fingerprint=fingerprint(experiment, variant, seed, stores, inputs,
                                         code["step_fingerprint"]))


def run_evaluation(experiment: dict, name: str, variant: str, seed: int, clips_path: str,
                   vocab_path: str, stores: Sequence[str], text: dict, model_path: str,
                   dataset: str, out_path: str, task_list_path: str | None = None,
                   concepts_path: str | None = None) -> dict:
    task, model, provenance = build_task_and_model(experiment, variant, seed, clips_path,
                                               vocab_path, stores, text, task_list_path,
                                               concepts_path)
    device = resolve_device(experiment.get("train", {}).get("device", "auto"))
    generator = language_model(experiment, variant_model_args(experiment, variant))
    trained = load_state(model_path)
    model.load_state_dict(trained["model"])
    model.to(device)
    result = {"experiment": name, "variant": variant, "seed": seed, "dataset": dataset,
              "task": experiment["task"], "n_test": task.num_items("test"), **task.report_info(),
              "features": provenance,
              "code": {"train": trained.get("code"),
                       "evaluate": code_identity("evaluate", experiment["model"])},
              **({"language_model": generator} if generator else {}),
              "test": task.evaluate(model, "test", device),
              "val": task.evaluate(model, "val", device)}
    examples = task.examples(model, device)
    if examples:
        result["examples"] = examples
    write_json(out_path, json.loads(json.dumps(result, default=_to_builtin)))
    return result


def _to_builtin(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")
