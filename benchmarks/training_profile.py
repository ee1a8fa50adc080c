"""Where one training run's time goes: batch preparation, the training step, validation.

Builds the task and model of one (experiment, variant) of a config from a results tree that
already has the run's inputs (``snakemake --until vocab`` + the feature stores; a run that
starts from another's weights, ``init_from``, also needs that run's seed-0 ``model.pt``), then, on
``--threads`` threads, times per epoch: preparing the batches alone (the task's generator:
reading, padding, sampling), the steps on ready batches (forward, backward, optimiser), and the
validation pass; then prints the per-step figures and the epoch's share of each part.

    python benchmarks/training_profile.py --experiment jsfusion_retrieval --variant JSFusion
    python benchmarks/training_profile.py --experiment captioning --variant Temp-Attention \\
        --config configs/paper.yaml --profile   # + torch's operator table of one epoch
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vlpipe.layout import ResultsLayout, shard_names  # noqa: E402
from vlpipe.models import model_family  # noqa: E402
from vlpipe.planning import (  # noqa: E402
    SENTENCES_KEY,
    named_paths,
    run_settings,
    upstream_init,
    upstream_run,
    variant_extractors,
)
from vlpipe.runs import build_task_and_model, start_from  # noqa: E402
from vlpipe.tasks import task_spec  # noqa: E402
from vlpipe.training.loop import TrainSettings, make_optimizer  # noqa: E402


def run_inputs(config: dict, experiment: str, variant: str) -> dict:
    """The run's arguments as the workflow passes them (``workflow/rules/common.smk``)."""
    layout = ResultsLayout(f"{config['results']}/{config['dataset']['name']}")
    settings = run_settings(config["experiments"][experiment], variant)
    stores = {name: [layout.feature_store(name, shard) for shard in shard_names(config["shards"])]
              for name in variant_extractors(config["experiments"][experiment], variant)}
    if task_spec(settings["task"]).sentence_vectors:
        stores[SENTENCES_KEY] = [layout.text_store]
    return {"experiment": settings, "variant": variant, "seed": 0,
            "clips_path": layout.clips_table, "vocab_path": layout.vocab,
            "stores": named_paths(stores),
            "text": {"embeddings": config["text"].get("embeddings")},
            "task_list_path": layout.task_list(task_spec(settings["task"]).list_name),
            "concepts_path": (layout.concepts if model_family(settings["model"]).reads_concepts
                              else None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--experiment", default="jsfusion_retrieval")
    parser.add_argument("--variant", default="JSFusion")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, help="override the experiment's learning rate")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one epoch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = yaml.safe_load(Path(args.config).read_text())
    inputs = run_inputs(config, args.experiment, args.variant)
    start = time.perf_counter()
    task, model, _ = build_task_and_model(**inputs)
    upstream = upstream_run(inputs["experiment"], args.variant)
    if upstream is not None:  # as the run starts: from the upstream run's weights, seed 0
        layout = ResultsLayout(f"{config['results']}/{config['dataset']['name']}")
        start_from(model, layout.model(*upstream, 0),
                   upstream_init(inputs["experiment"], args.variant).get("freeze", True))
    print(f"task and model built in {time.perf_counter() - start:.2f} s")
    train_args = {**inputs["experiment"].get("train", {}), "seed": 0}
    if args.lr:
        train_args["lr"] = args.lr
    settings = TrainSettings(**train_args)
    optimizer = make_optimizer(model, settings)
    device = torch.device("cpu")
    rng = np.random.default_rng(0)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        batches = list(task.train_batches(rng))
        prepare = time.perf_counter() - start
        model.train()
        start = time.perf_counter()
        profiler = (torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
                    if args.profile and epoch == args.epochs else None)
        with profiler or contextlib.nullcontext():
            for batch in batches:
                loss = task.loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                optimizer.step()
        steps = time.perf_counter() - start
        start = time.perf_counter()
        score = task.selection_metric(task.evaluate(model, "val", device))
        validate = time.perf_counter() - start
        total = prepare + steps + validate
        print(f"epoch {epoch}: {len(batches)} steps; prepare {prepare:.2f} s "
              f"({1e3 * prepare / len(batches):.1f} ms/step), train {steps:.2f} s "
              f"({1e3 * steps / len(batches):.1f} ms/step), validate {validate:.2f} s "
              f"(score {score:.1f}); "
              f"shares {prepare / total:.0%} / {steps / total:.0%} / {validate / total:.0%}")
        if profiler is not None:
            print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


if __name__ == "__main__":
    main()
