"""``python -m vlpipe <step> ...``: the one entry point every Snakemake rule calls.

Settings arrive as JSON strings (the rule's params), paths as plain arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import TextIO


def _synth(args: argparse.Namespace) -> None:
    from vlpipe.synthetic import WorldConfig, generate_world

    generate_world(Path(args.root), WorldConfig(**json.loads(args.settings)))


def _manifest(args: argparse.Namespace) -> None:
    from vlpipe.manifest import build_manifest

    changed = build_manifest(json.loads(args.dataset), args.tables, args.shard_dir, args.shards)
    print(f"manifest: {args.tables}; shards rewritten: {changed or 'none'}")


def _extract(args: argparse.Namespace) -> None:
    from vlpipe.extractors.job import extract_shard

    stores = _named_paths(args.stores, "--stores")
    twice = sorted(name for name, paths in stores.items() if len(paths) > 1)
    if twice:
        raise SystemExit(f"--stores: one store per extractor; given twice: {twice}")
    stores = {name: paths[0] for name, paths in stores.items()}
    results = extract_shard(args.shard, stores, json.loads(args.settings), device=args.device,
                            batch_frames=args.batch_frames, num_workers=args.num_workers,
                            bad_clips=args.bad_clips)
    for name, attrs in results.items():
        print(f"{stores[name]}: {attrs['counts']}")


def _named_paths(values: list[str], option: str) -> dict[str, list[str]]:
    """``NAME=PATH`` arguments → name → paths; a malformed one ends the command, naming it."""
    from vlpipe.planning import parse_named_paths

    try:
        return parse_named_paths(values, option)
    except ValueError as error:
        raise SystemExit(str(error)) from None


def _quarantine(args: argparse.Namespace) -> None:
    from vlpipe.atomic import write_text
    from vlpipe.features.store import quarantine_table

    table = quarantine_table(_named_paths(args.stores, "--stores"))
    write_text(args.out, table.to_csv(index=False))
    print(f"{args.out}: {table['clip_id'].nunique()} quarantined clip(s)")


def _text_embed(args: argparse.Namespace) -> None:
    from vlpipe.text.embed import write_text_store

    settings = {**json.loads(args.settings), "device": args.device}
    attrs = write_text_store(args.clips, args.out, settings)
    print(f"{args.out}: {attrs['counts']}")


def _gaze_maps(args: argparse.Namespace) -> None:
    import pandas as pd

    from vlpipe.datasets.gaze import VIDEO_SIZE, read_gaze
    from vlpipe.decode import picture_size
    from vlpipe.gaze_maps import GRID, SIGMA, write_gaze_store
    from vlpipe.provenance import code_identity

    settings = json.loads(args.settings)
    clips = pd.read_parquet(args.clips)
    sizes = None
    if settings["fixations"].get("frame_size") == VIDEO_SIZE:  # each clip's own picture size
        sizes = {clip: picture_size(path) for clip, path in zip(clips["clip_id"],
                                                                 clips["video_path"], strict=True)}
    fixations, report = read_gaze(args.root, settings["fixations"], clips["clip_id"], sizes)
    attrs = write_gaze_store(args.out, fixations, clips, settings["fps"],
                             settings.get("grid", GRID), settings.get("sigma", SIGMA),
                             code=code_identity("gaze-maps"))
    print(f"{args.out}: {attrs['counts']}; samples read {report.to_dict()}")


def _vocab(args: argparse.Namespace) -> None:
    import pandas as pd

    from vlpipe.text import Vocabulary

    clips = pd.read_parquet(args.clips)
    train = clips.loc[clips["split"] == "train", "sentences"]
    vocab = Vocabulary.build((s for sentences in train for s in sentences), args.min_count)
    vocab.save(args.out)
    print(f"{args.out}: {len(vocab)} words (incl. padding and blank)")


def _concepts(args: argparse.Namespace) -> None:
    import pandas as pd

    from vlpipe.text import Vocabulary
    from vlpipe.text.concepts import build_concepts, save_concepts

    clips = pd.read_parquet(args.clips)
    train = clips.loc[clips["split"] == "train", "sentences"]
    concepts = build_concepts((s for sentences in train for s in sentences),
                              Vocabulary.load(args.vocab), args.size)
    save_concepts(args.out, concepts)
    print(f"{args.out}: {len(concepts)} concept words, most frequent "
          f"{[w for w, _ in concepts[:8]]}")


def _run_args(args: argparse.Namespace) -> dict:
    _named_paths(args.stores, "--stores")  # well-formed before any data is read
    return {"experiment": json.loads(args.experiment), "variant": args.variant,
            "seed": args.seed, "clips_path": args.clips, "vocab_path": args.vocab,
            "stores": args.stores, "text": json.loads(args.text),
            "task_list_path": args.task_list, "concepts_path": args.concepts or None}


def _train(args: argparse.Namespace) -> None:
    from vlpipe.runs import run_training

    summary = run_training(**_run_args(args), out_dir=args.out_dir,
                           upstream_model=args.init_from or None,
                           tensorboard=args.tensorboard == "on")
    print(f"{args.out_dir}: best epoch {summary['best_epoch']} of {summary['epochs']}")


def _evaluate(args: argparse.Namespace) -> None:
    from vlpipe.runs import run_evaluation

    result = run_evaluation(**_run_args(args), name=args.name, model_path=args.model,
                            dataset=args.dataset, out_path=args.out)
    print(f"{args.out}: test {result['test']}")


def _report(args: argparse.Namespace) -> None:
    from vlpipe.report import write_report

    paths = write_report(args.metrics, args.out_dir, args.name, json.loads(args.config))
    for path in paths.values():
        print(f"table: {path}")


def _curves(args: argparse.Namespace) -> None:
    from vlpipe.report.curves import plot_training_curves
    from vlpipe.tasks import task_spec

    plot_training_curves(json.loads(args.runs), args.out, args.name,
                         task_spec(args.task).selection_label)
    print(f"figure: {args.out}")


def _examples_figure(args: argparse.Namespace) -> None:
    from vlpipe.report.examples import plot_examples

    plot_examples([json.loads(Path(path).read_text()) for path in args.metrics], args.out,
                  args.name, args.clips or None)
    print(f"figure: {args.out}")


def _weights_fetch(args: argparse.Namespace) -> None:
    from vlpipe.extractors.weights_fetch import fetch

    try:
        errors = fetch(args.names, args.base_url)
    except KeyError as error:  # an unknown name, before anything is downloaded
        raise SystemExit(error.args[0]) from None
    if errors:
        raise SystemExit(f"{len(errors)} weight file(s) not fetched (errors above)")


def _weights_list(args: argparse.Namespace) -> None:
    from vlpipe.extractors.weights_fetch import table

    print(table())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlpipe", description=__doc__)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--log", help="write everything the step prints into this file; its "
                                      "progress lines also go to the console (stderr)")
    steps = parser.add_subparsers(dest="step", required=True)

    step = steps.add_parser("synth", help="generate the synthetic demo world")
    step.add_argument("--root", required=True)
    step.add_argument("--settings", default="{}", help="WorldConfig fields as JSON")
    step.set_defaults(run=_synth)

    step = steps.add_parser("manifest", help="read a data set; write manifest + shard plan")
    step.add_argument("--dataset", required=True, help="dataset config as JSON")
    step.add_argument("--tables", required=True, help="directory for manifest + clip table")
    step.add_argument("--shard-dir", required=True)
    step.add_argument("--shards", type=int, default=1)
    step.set_defaults(run=_manifest)

    step = steps.add_parser("extract", help="run extractors on one shard (decoding once)")
    step.add_argument("--shard", required=True)
    step.add_argument("--stores", nargs="+", required=True, help="EXTRACTOR=STORE ...")
    step.add_argument("--settings", required=True, help="extractor name → settings, JSON")
    step.add_argument("--device", default="auto", help="auto = cuda if available")
    step.add_argument("--batch-frames", type=int, default=64, help="frames per forward pass")
    step.add_argument("--num-workers", type=int, default=1, help="decoding worker processes")
    step.add_argument("--bad-clips", choices=["fail", "quarantine"], default="fail",
                      help="a clip that cannot be decoded or prepared: fail the job (naming "
                           "it), or leave it out of the stores, recorded in their attrs")
    step.set_defaults(run=_extract)

    step = steps.add_parser("quarantine", help="list the clips extraction left out as bad")
    step.add_argument("--stores", nargs="+", required=True, help="EXTRACTOR=STORE ...")
    step.add_argument("--out", required=True)
    step.set_defaults(run=_quarantine)

    step = steps.add_parser("gaze-maps", help="ground-truth gaze maps from fixation files")
    step.add_argument("--clips", required=True, help="the clip table (durations, ids)")
    step.add_argument("--root", required=True, help="dataset.root (fixation paths are under it)")
    step.add_argument("--settings", required=True, help="dataset.gaze as JSON")
    step.add_argument("--out", required=True, help="the gaze store to write")
    step.set_defaults(run=_gaze_maps)

    step = steps.add_parser("text-embed", help="sentence + SOMEONE-mention embeddings")
    step.add_argument("--clips", required=True)
    step.add_argument("--out", required=True)
    step.add_argument("--settings", default="{}", help="text encoder settings, JSON")
    step.add_argument("--device", default="auto")
    step.set_defaults(run=_text_embed)

    step = steps.add_parser("vocab", help="build the vocabulary from training sentences")
    step.add_argument("--clips", required=True)
    step.add_argument("--out", required=True)
    step.add_argument("--min-count", type=int, default=4)
    step.set_defaults(run=_vocab)

    step = steps.add_parser("concepts", help="CT-SAN's concept words from training sentences")
    step.add_argument("--clips", required=True)
    step.add_argument("--vocab", required=True)
    step.add_argument("--out", required=True)
    step.add_argument("--size", type=int, required=True)
    step.set_defaults(run=_concepts)

    for name, run in [("train", _train), ("evaluate", _evaluate)]:
        step = steps.add_parser(name, help=f"{name} one (experiment, variant, seed)")
        step.add_argument("--experiment", required=True, help="experiment config as JSON")
        step.add_argument("--variant", required=True)
        step.add_argument("--seed", type=int, required=True)
        step.add_argument("--clips", required=True)
        step.add_argument("--vocab", required=True)
        step.add_argument("--stores", nargs="+", required=True,
                          help="EXTRACTOR=STORE ... (and sentences=STORE: the text store)")
        step.add_argument("--text", default="{}", help="text config as JSON")
        step.add_argument("--task-list", help="the task's list (tables/tasks/<task>.parquet)")
        step.add_argument("--concepts", default="",
                          help="the concept words (text/concepts.json) of a model that reads "
                               "them; empty: none")
        step.set_defaults(run=run)
        if name == "train":
            step.add_argument("--out-dir", required=True)
            step.add_argument("--init-from", default="",
                              help="an upstream run's model.pt to start from (the "
                                   "experiment's init_from); empty: none")
            step.add_argument("--tensorboard", choices=["on", "off"], default="off",
                              help="also write TensorBoard event files into --out-dir")
        else:
            step.add_argument("--name", required=True)
            step.add_argument("--model", required=True)
            step.add_argument("--dataset", required=True)
            step.add_argument("--out", required=True)

    step = steps.add_parser("report", help="write the result tables")
    step.add_argument("--metrics", nargs="+", required=True)
    step.add_argument("--out-dir", required=True)
    step.add_argument("--name", required=True)
    step.add_argument("--config", default="{}", help="settings to print with the tables, JSON")
    step.set_defaults(run=_report)

    step = steps.add_parser("curves", help="plot an experiment's training curves")
    step.add_argument("--runs", required=True, help="variant → its train_log.jsonl paths, JSON")
    step.add_argument("--task", required=True, help="the experiment's task")
    step.add_argument("--name", required=True)
    step.add_argument("--out", required=True, help="PNG path")
    step.set_defaults(run=_curves)

    step = steps.add_parser("examples-figure", help="draw a table's test examples (gaze maps, "
                                                    "captions beside the clips' frames)")
    step.add_argument("--metrics", nargs="+", required=True, help="the runs' metrics files")
    step.add_argument("--clips", default="", help="the clips table (a captions figure)")
    step.add_argument("--name", required=True)
    step.add_argument("--out", required=True, help="PNG path")
    step.set_defaults(run=_examples_figure)

    weights = steps.add_parser("weights", help="pretrained weight files (docs/weights.md)")
    actions = weights.add_subparsers(dest="action", required=True)
    step = actions.add_parser("fetch", help="download them into $VLPIPE_WEIGHTS, checked where "
                                                  "a checksum is published")
    step.add_argument("names", nargs="*", help="weight names (default: all; see `list`)")
    step.add_argument("--base-url", help="fetch each file from this base URL instead (a "
                                         "mirror; default $VLPIPE_WEIGHTS_URL)")
    step.set_defaults(run=_weights_fetch)
    step = actions.add_parser("list", help="each weight file's status where extractors look")
    step.set_defaults(run=_weights_list)
    return parser


def _print_into(log_path: str) -> TextIO:
    """Send this process's stdout and stderr into ``log_path``, at the file descriptors (so
    libraries' output, warnings and a traceback land there too, as with ``> log 2>&1``);
    return a stream on the stderr it had (the console)."""
    console = os.fdopen(os.dup(2), "w", buffering=1)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log_path, "w") as log:
        for stream in (1, 2):
            os.dup2(log.fileno(), stream)
    return console


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.log:
        from vlpipe.progress import console_handler, job_label

        console = _print_into(args.log)
        logging.getLogger().addHandler(console_handler(console, job_label(args.log)))
    if not args.threads:
        args.run(args)
        return
    import torch
    from threadpoolctl import threadpool_limits

    # torch's threads and numpy's BLAS alike, whoever launches the step: results depend on it
    # (the demo's JSFusion run with numpy's BLAS on 2 threads, not 1, ended 2 points of R@1 apart)
    torch.set_num_threads(args.threads)
    with threadpool_limits(args.threads):
        args.run(args)
