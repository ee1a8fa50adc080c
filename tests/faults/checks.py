"""Fault injection beyond videos (``tests.faults.videos`` has those): annotation files, the config,
training runs and the security boundaries, each provoked in a scratch directory through the real
code.

``CHECKS`` lists each case with what must happen (``expected``, and ``pattern``: a regular
expression the outcome must match) and a function that provokes it and describes what did
happen: the error's type and message (with its notes), or what was found. ``run_checks`` runs
them and ``table`` prints case → expected → outcome (``benchmarks/fault_injection.py``);
``tests/test_faults_annotations.py`` and ``tests/test_faults_runs.py`` assert every case.
Functions that start processes (``python -m vlpipe``, Snakemake) take their environment.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import errno
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import yaml

import vlpipe
from vlpipe.datasets import read_dataset
from vlpipe.datasets.base import check_clip_table

PACKAGE = Path(vlpipe.__file__).resolve().parent  # the library, whose sources the AST checks read
REPO = PACKAGE.parent
Env = dict[str, str] | None
Run = Callable[[Path, Env], str]


@dataclass(frozen=True)
class Check:
    """One case: ``run(scratch directory, environment)`` provokes it and returns the outcome."""

    group: str  # annotations, config, runs, security
    name: str
    expected: str
    pattern: str
    run: Run


def outcome_of(action: Callable[[], object]) -> str:
    """"ok", or the error ``action`` raised: "<type>: <message> [<note>]..."."""
    try:
        action()
    except Exception as err:
        notes = "".join(f" [{note}]" for note in getattr(err, "__notes__", []))
        return f"{type(err).__name__}: {err}{notes}"
    return "ok"


# --- annotations and manifests ---------------------------------------------------------------

MSRVTT_INFO = {
    "videos": [{"video_id": f"video{i}", "split": split}
               for i, split in enumerate(["train", "validate", "test"])],
    "sentences": [{"video_id": f"video{i}", "caption": caption}
                  for i, caption in enumerate(["a red ball spins", "a blue box grows",
                                               "a green star moves"])],
}
LSMDC_CLIPS = ["0001_Movie_00.00.01.000-00.00.03.000", "0001_Movie_00.00.04.000-00.00.06.000",
               "0002_Film_00.01.00.000-00.01.02.500"]
LSMDC_TIMES = ["00.00.01.000", "00.00.03.000", "00.00.01.000", "00.00.03.000"]


def msrvtt_case(mutate: Callable[[dict, Path], object], **options) -> Run:
    """Read an MSR-VTT data set whose ``videodatainfo.json`` ``mutate`` changed (in place, or
    by returning the file's bytes; it may write other files into the directory)."""
    def run(directory: Path, env: Env) -> str:
        info = copy.deepcopy(MSRVTT_INFO)
        data = mutate(info, directory)
        (directory / "videodatainfo.json").write_bytes(
            data if isinstance(data, bytes) else json.dumps(info, indent=1).encode())
        return outcome_of(lambda: read_dataset(
            "msrvtt", directory, **{"annotations": ["videodatainfo.json"], **options}))
    return run


def lsmdc_case(mutate: Callable[[dict], object], **options) -> Run:
    """Read an LSMDC data set (train.csv, test.csv) whose files ``mutate`` changed (rows, or a
    file's bytes)."""
    def run(directory: Path, env: Env) -> str:
        files: dict[str, list[list[str]] | bytes] = {
            "train.csv": [[LSMDC_CLIPS[0], *LSMDC_TIMES, "SOMEONE runs."],
                          [LSMDC_CLIPS[1], *LSMDC_TIMES, "SOMEONE sits."]],
            "test.csv": [[LSMDC_CLIPS[2], *LSMDC_TIMES, "A car stops."]]}
        mutate(files)
        for name, rows in files.items():
            (directory / name).write_bytes(rows if isinstance(rows, bytes) else "".join(
                "\t".join(row) + "\n" for row in rows).encode())
        return outcome_of(lambda: read_dataset(
            "lsmdc", directory, annotations={"train": "train.csv", "test": "test.csv"},
            **options))
    return run


def _cell(name: str, row: int, column: int, value: str) -> Callable[[dict], None]:
    """An LSMDC mutation: one field of one file's row set to ``value``."""
    return lambda files: files[name][row].__setitem__(column, value)


def _second_file(info: dict, directory: Path) -> None:
    """A second annotation file that lists video0 again."""
    (directory / "more.json").write_text(json.dumps(
        {"videos": [{"video_id": "video0", "split": "test"}],
         "sentences": [{"video_id": "video0", "caption": "again"}]}))


def _clip_span(start: float, end: float) -> Run:
    def run(directory: Path, env: Env) -> str:
        clips = pd.DataFrame({"clip_id": ["c"], "video_path": ["c.mp4"], "start": [start],
                              "end": [end], "split": ["train"], "sentences": [["a clip"]]})
        return outcome_of(lambda: check_clip_table(clips, "clips"))
    return run


def _missing_video(directory: Path, env: Env) -> str:
    from vlpipe.manifest import build_manifest

    (directory / "videodatainfo.json").write_text(json.dumps(MSRVTT_INFO))
    dataset = {"format": "msrvtt", "root": str(directory),
               "options": {"annotations": ["videodatainfo.json"], "video_dir": "videos"}}
    return outcome_of(lambda: build_manifest(dataset, directory / "tables",
                                             directory / "shards", 1))


def _span_past_the_end(directory: Path, env: Env) -> str:
    """A 2 s video with a clip span [5, 6) s beside a good clip, extracted with each mode."""
    from vlpipe.extractors import build_extractor
    from vlpipe.extractors.job import extract_shard
    from vlpipe.features import FeatureStore
    from vlpipe.manifest import SHARD_COLUMNS, with_file_identity

    from .videos import CHEAP_SETTINGS, write_good_clip

    video = write_good_clip(directory / "video.mp4")
    clips = pd.DataFrame({"clip_id": ["good", "late"], "video_path": [str(video)] * 2,
                          "start": [0.0, 5.0], "end": [math.nan, 6.0]})
    shard = directory / "shard.parquet"
    with_file_identity(clips)[SHARD_COLUMNS].to_parquet(shard, index=False)
    settings = {"resnet34": CHEAP_SETTINGS["resnet34"]}
    built = {"resnet34": build_extractor("resnet34", settings["resnet34"])}
    stores = {"resnet34": directory / "resnet34.zarr"}

    def extract(mode: str) -> None:
        extract_shard(shard, stores, settings, device="cpu", num_workers=0, built=built,
                      bad_clips=mode)

    failed = outcome_of(lambda: extract("fail"))
    extract("quarantine")
    store = FeatureStore(stores["resnet34"])
    reason = store.quarantined.get("late", {}).get("reason", "not quarantined")
    return f"fail: {failed}; quarantine: {reason}; extracted {store.clip_ids}"


# --- config ----------------------------------------------------------------------------------

def tiny_config(results: str, dataset: dict | None = None) -> dict:
    """A small valid config: a synthetic world under ``results`` unless ``dataset`` is given,
    one cheap extractor, one experiment."""
    dataset = dataset or {"name": "tiny", "format": "msrvtt", "root": f"{results}/tiny/raw",
                          "options": {"annotations": ["annotations/videodatainfo.json"],
                                      "video_dir": "videos"},
                          "synthetic": {"n_clips": 10, "duration_s": 1.0, "size": 32}}
    return {"results": results, "dataset": dataset, "shards": 1,
            "runtime": {"device": "cpu", "batch_frames": 8, "num_workers": 0},
            "extractors": {"resnet34": {"fps": 2, "image_size": 32, "allow_random_init": True}},
            "text": {"min_count": 1, "embeddings": None, "encoder": None},
            "experiments": {"ret": {"model": "jsfusion", "task": "retrieval",
                                    "features": ["resnet34"], "seeds": [0],
                                    "train": {"epochs": 1},
                                    "variants": {"JSFusion": {}, "JSFusion-noaudio": {}}}}}


def snakemake(workdir: Path, config: dict, args: list[str], env: Env,
              timeout: float = 300) -> subprocess.CompletedProcess:
    """Snakemake on this checkout's workflow in ``workdir`` with ``config``."""
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                           "--cores", "1", *args], cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _plan_fails(mutate: Callable[[dict], object]) -> Run:
    """``snakemake -n`` with a config ``mutate`` changed: its error (first lines), or "ok"."""
    def run(directory: Path, env: Env) -> str:
        config = tiny_config("results")
        mutate(config)
        done = snakemake(directory, config, ["-n"], env)
        if done.returncode == 0:
            return "ok"
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        return re.sub(r' in file ".*?", line \d+:', ":", " ".join(lines[:3]))
    return run


def _schema_rejects(mutate: Callable[[dict], object]) -> Run:
    """The config schema on a config ``mutate`` changed (as the Snakefile validates it)."""
    def run(directory: Path, env: Env) -> str:
        from snakemake.utils import validate

        config = tiny_config("results")
        mutate(config)
        schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
        return outcome_of(lambda: validate(config, str(schema)))
    return run


def _outputs_under_results(directory: Path, env: Env) -> str:
    """Every output and log of a dry run's jobs, checked against ``<results>/<name>/``."""
    done = snakemake(directory, tiny_config("out/r"), ["-n", "--verbose"], env)  # job blocks
    if done.returncode:
        return f"dry run failed: {done.stderr[-500:]}"
    paths = [path.removesuffix(" (update)")
             for line in done.stdout.splitlines()
             if line.strip().startswith(("output:", "log:"))
             for path in line.split(":", 1)[1].strip().split(", ")]
    outside = [path for path in paths if not path.startswith("out/r/tiny/")]
    return f"{len(paths)} outputs and logs, outside out/r/tiny/: {outside or 'none'}"


# --- runs ------------------------------------------------------------------------------------

TINY_EXPERIMENT = {
    "model": "jsfusion", "task": "retrieval", "features": ["f"], "seeds": [0],
    "model_args": {"word_dim": 8, "encoder_hidden": 8, "d1": 8, "d2": 8, "d3": 8, "d4": 8,
                   "conv_channels": 4, "d5": 4, "d6": 4, "d7": 4},
    "task_args": {"max_frames": 5, "max_words": 8, "batch_size": 4, "num_negatives": 3},
    "train": {"epochs": 8, "device": "cpu"}, "variants": {"JSFusion": {}}}


def training_inputs(directory: Path) -> dict:
    """A tiny retrieval data set (random features in one store): ``run_training`` arguments."""
    from vlpipe.features.store import ClipFeatures, write_store
    from vlpipe.text import Vocabulary

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    colours, things, actions = ["red", "blue", "green"], ["ball", "box", "star"], ["spins",
                                                                                 "grows"]
    ids = [f"c{i}" for i in range(56)]
    sentences = [[f"a {colours[i % 3]} {things[i // 3 % 3]} {actions[i // 9 % 2]}",
                  f"the {things[i // 3 % 3]} {actions[i % 2]}"] for i in range(len(ids))]
    clips = pd.DataFrame({"clip_id": ids, "video_path": "", "start": 0.0, "end": math.nan,
                          "split": ["train"] * 40 + ["val"] * 8 + ["test"] * 8,
                          "sentences": sentences})
    clips.to_parquet(directory / "clips.parquet", index=False)
    Vocabulary.build([s for pair in sentences for s in pair], 1).save(directory / "vocab.json")
    write_store(directory / "f.zarr",
                [ClipFeatures(c, c, np.arange(6) / 5,
                              {"f": rng.normal(i % 3, 1, (6, 8)).astype(np.float32)})
                 for i, c in enumerate(ids)],
                {"f": ((8,), "float32", "step")},
                {"provenance": {"primary": "f", "extractor": "f", "weights": "random-seed-0"}})
    return {"experiment": TINY_EXPERIMENT, "variant": "JSFusion", "seed": 0,
            "clips_path": str(directory / "clips.parquet"),
            "vocab_path": str(directory / "vocab.json"), "stores": [f"f={directory / 'f.zarr'}"],
            "text": {}}


def _train_process(inputs: dict, out_dir: Path, env: Env) -> subprocess.Popen:
    """``python -m vlpipe train`` (one thread) on ``inputs``, its output to ``<out_dir>.log``."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "vlpipe", "--threads", "1", "train",
               "--experiment", json.dumps(inputs["experiment"]), "--variant", inputs["variant"],
               "--seed", str(inputs["seed"]), "--clips", inputs["clips_path"],
               "--vocab", inputs["vocab_path"], "--stores", *inputs["stores"],
               "--text", json.dumps(inputs["text"]), "--out-dir", str(out_dir)]
    with open(f"{out_dir}.log", "ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _kill_at_first_checkpoint(inputs: dict, out_dir: Path, env: Env) -> str:
    """Start a training run and SIGKILL it once its first checkpoint exists; "" if done so."""
    job = _train_process(inputs, out_dir, env)
    try:
        deadline = time.monotonic() + 300
        while not (out_dir / "checkpoint.pt").exists():
            if job.poll() is not None or time.monotonic() > deadline:
                return f"no checkpoint seen (exit {job.poll()}); see {out_dir}.log"
            time.sleep(0.002)
    finally:
        job.send_signal(signal.SIGKILL)  # nothing if it has exited
        job.wait()
    return "the run finished before it was killed" if (out_dir / "model.pt").exists() else ""


def _killed_and_resumed(directory: Path, env: Env) -> str:
    """An uninterrupted run beside one killed (SIGKILL) once its first checkpoint exists and run
    again: the second resumes and must end with the same files and test metrics."""
    from vlpipe.runs import run_evaluation
    from vlpipe.training.loop import load_state

    inputs = training_inputs(directory / "inputs")
    reference, victim = directory / "reference", directory / "killed"
    running = _train_process(inputs, reference, env)
    try:
        problem = _kill_at_first_checkpoint(inputs, victim, env)
        if problem:
            return problem
        epoch = load_state(victim / "checkpoint.pt")["epoch"]
        if _train_process(inputs, victim, env).wait() or running.wait():
            return f"a run failed; see {victim}.log and {reference}.log"
    finally:
        running.kill()  # nothing if it has exited
        running.wait()
    log = Path(f"{victim}.log").read_text()
    resumed = "resumed" if f"resumed from {victim}/checkpoint.pt at epoch {epoch}" in log else (
        "started over")
    different = [name for name in ("model.pt", "summary.json", "train_log.jsonl")
                 if (reference / name).read_bytes() != (victim / name).read_bytes()]
    metrics = [run_evaluation(**inputs, name="tiny", model_path=str(run / "model.pt"),
                              dataset="tiny", out_path=str(run / "metrics.json"))
               for run in (reference, victim)]
    different += [split for split in ("test", "val") if metrics[0][split] != metrics[1][split]]
    epochs = TINY_EXPERIMENT["train"]["epochs"]
    return (f"killed after epoch {epoch} of {epochs}, {resumed}; differs from the uninterrupted "
            f"run: {different or 'nothing'} (model.pt, summary.json, train_log.jsonl, metrics)")


class ToyTask:
    """A linear model's task for ``train``: 3 batches per epoch; from epoch ``bad_epoch`` on
    the loss is NaN or inf, or its gradient NaN (``fault``: "nan", "inf", "gradient"). At the
    start of that epoch it copies ``saved`` (the files then in ``out_dir``)."""

    def __init__(self, out_dir: Path, fault: str = "", bad_epoch: int = 2) -> None:
        self.out_dir, self.fault, self.bad_epoch = out_dir, fault, bad_epoch
        self.epoch, self.saved = 0, {}

    def train_batches(self, rng: np.random.Generator):
        import torch

        self.epoch += 1
        if self.epoch == self.bad_epoch:
            self.saved = {p.name: p.read_bytes() for p in self.out_dir.iterdir()}
        for _ in range(3):
            yield torch.as_tensor(rng.normal(size=(4, 3)), dtype=torch.float32)

    def loss(self, model, batch):
        import torch

        out = model(batch)
        if self.epoch >= self.bad_epoch and self.fault == "gradient":
            out.register_hook(lambda grad: torch.full_like(grad, math.nan))
        loss = out.pow(2).mean()
        if self.epoch >= self.bad_epoch and self.fault in ("nan", "inf"):
            loss = loss + float(self.fault)
        return loss

    def evaluate(self, model, split: str, device) -> dict:
        return {"score": -float(model.weight.detach().abs().sum())}

    def selection_metric(self, metrics: dict) -> float:
        return metrics["score"]


def toy_train(out_dir: Path, task: ToyTask, epochs: int = 3) -> dict:
    """``train`` a seeded linear model on ``task``."""
    import torch

    from vlpipe.training import TrainSettings, train

    torch.manual_seed(0)
    return train(torch.nn.Linear(3, 1), task, TrainSettings(epochs=epochs, device="cpu"),
                 out_dir)


def _non_finite(fault: str) -> Run:
    def run(directory: Path, env: Env) -> str:
        task = ToyTask(directory, fault)
        error = outcome_of(lambda: toy_train(directory, task))
        now = {p.name: p.read_bytes() for p in directory.iterdir()}
        kept = "saved files unchanged" if now == task.saved else f"files changed: {sorted(now)}"
        return f"{error}; {kept}"
    return run


def _full_disk(path: str | os.PathLike) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def disk_full_store(directory: Path, fails: Callable[[Path], bool]) -> str:
    """A new store replacing one, the disk full at the first file written that ``fails``."""
    import zarr.storage._local as local

    from vlpipe.features.store import ClipFeatures, FeatureStore, write_store

    path = directory / "s.zarr"
    arrays = {"f": ((4,), "float32", "step")}
    attrs = {"provenance": {"primary": "f"}}

    def clips(n: int) -> list[ClipFeatures]:
        return [ClipFeatures(f"c{i}", f"c{i}", np.arange(3) / 5, {"f": np.ones((3, 4))})
                for i in range(n)]

    write_store(path, clips(2), arrays, attrs)
    real_put = local._put

    def put(file: Path, value, exclusive: bool = False) -> int:
        if fails(file):
            raise _full_disk(file)
        return real_put(file, value, exclusive)

    with mock.patch.object(local, "_put", put):
        error = outcome_of(lambda: write_store(path, clips(5), arrays, attrs))
    left = sorted(p.name for p in directory.iterdir())
    return f"{error}; the previous store has {len(FeatureStore(path))} clips; directory: {left}"


def _disk_full_mid_store(directory: Path, env: Env) -> str:
    return disk_full_store(directory, lambda file: file.parent.name == "c")  # a chunk's data


def _disk_full_checkpoint(directory: Path, env: Env) -> str:
    """Training with the disk full from epoch 2's saves on (part of a file written, then
    ENOSPC)."""
    import torch

    task, real_save = ToyTask(directory), torch.save

    def save(obj, file) -> None:
        if task.epoch < 2:
            return real_save(obj, file)
        Path(file).write_bytes(b"partial")
        raise _full_disk(file)

    with mock.patch.object(torch, "save", save):
        error = outcome_of(lambda: toy_train(directory, task))
    now = {p.name: p.read_bytes() for p in directory.iterdir()}
    kept = "saved files unchanged" if now == task.saved else f"files changed: {sorted(now)}"
    return f"{error}; {kept}; directory: {sorted(now)}"


# --- security --------------------------------------------------------------------------------

class Payload:
    """Pickles as a call that makes the directory ``marker``: what a hostile checkpoint runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _pickled_code(load: Callable[[Path], object], name: str) -> Run:
    """``load`` a file ``name`` that holds a pickled call: it must be refused and not run."""
    def run(directory: Path, env: Env) -> str:
        import torch

        path, marker = directory / name, directory / "PWNED"
        torch.save({"model": {}, "payload": Payload(marker)}, path)
        error = outcome_of(lambda: load(path))
        return f"{error.splitlines()[0]}; payload ran: {marker.exists()}"
    return run


def _resume_from(path: Path) -> object:
    return toy_train(path.parent, ToyTask(path.parent))


def _load_weights(path: Path) -> object:
    from vlpipe.extractors.weights import resolve_weights

    return resolve_weights(path.name, path=str(path))


def _weights_only_everywhere(directory: Path, env: Env) -> str:
    """Every ``torch.load`` call in the package passes ``weights_only=True``; nothing calls
    ``pickle.load(s)`` or passes ``allow_pickle=True``."""
    loads, bad = 0, []
    for source in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            where = f"{source.relative_to(REPO)}:{node.lineno}"
            name = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if name in ("torch.load", "torch.serialization.load"):
                loads += 1
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    bad.append(where)
            elif name in ("pickle.load", "pickle.loads") or (
                    isinstance(keywords.get("allow_pickle"), ast.Constant)
                    and keywords["allow_pickle"].value is True):
                bad.append(where)
    return f"{loads} torch.load calls; unsafe loads: {bad or 'none'}"


# Shell placeholders that may go unquoted: integers and enums the schema checks
# (runtime.device: a pattern), and the seed wildcard (constrained to digits in common.smk).
UNQUOTED_OK = {"threads", "params.shards", "params.min_count", "wildcards.seed",
               "resources.device", "resources.batch_frames", "resources.num_workers",
               "resources.bad_clips"}
PLACEHOLDER = re.compile(
    r"(?<!\{)\{((?:input|output|params|wildcards|log|resources|threads)\b[^{}]*)\}(?!\})")


def _shell_quoting(directory: Path, env: Env) -> str:
    """Every placeholder in the rules' strings is quoted (``:q``) or in ``UNQUOTED_OK``."""
    found = [(rules.name, p) for rules in sorted((REPO / "workflow" / "rules").glob("*.smk"))
             for p in PLACEHOLDER.findall(rules.read_text())]
    bad = [f"{name}: {{{p}}}" for name, p in found
           if not p.endswith(":q") and p not in UNQUOTED_OK]
    quoted = sum(p.endswith(":q") for _, p in found)
    return (f"{len(found)} placeholders, {quoted} quoted; unquoted and not an integer: "
            f"{bad or 'none'}")


HOSTILE_IDS = ["good", "a'; touch PWNED; '", "$(touch PWNED)", 'b" && touch PWNED && "',
               "`touch PWNED` with space"]


def _hostile_names(directory: Path, env: Env) -> str:
    """Manifest and extraction through Snakemake with quotes, spaces, ``$( )`` and backquotes
    in clip ids, the data set root and the results directory: nothing may run them."""
    from vlpipe.features import FeatureStore

    from .videos import write_good_clip

    root = directory / "data 'q' $(touch PWNED)"
    (root / "videos").mkdir(parents=True)
    good = write_good_clip(root / "videos" / "good.mp4", seconds=0.5)
    for clip_id in HOSTILE_IDS[1:]:
        (root / "videos" / f"{clip_id}.mp4").write_bytes(good.read_bytes())
    splits = ["train", "train", "validate", "test", "test"]
    (root / "info.json").write_text(json.dumps({
        "videos": [{"video_id": c, "split": s} for c, s in zip(HOSTILE_IDS, splits, strict=True)],
        "sentences": [{"video_id": c, "caption": "a clip"} for c in HOSTILE_IDS]}))
    results = "res \"d\" $(touch PWNED)"
    dataset = {"name": "hostile", "format": "msrvtt", "root": str(root),
               "options": {"annotations": ["info.json"], "video_dir": "videos"}}
    store = f"{results}/hostile/features/resnet34/shard-000.zarr"
    done = snakemake(directory, tiny_config(results, dataset), [store], env)
    injected = sorted(str(p.relative_to(directory)) for p in directory.rglob("PWNED*"))
    if done.returncode:
        return f"snakemake failed: {done.stderr[-800:]}; injected: {injected or 'nothing'}"
    extracted = sorted(FeatureStore(directory / store).clip_ids) == sorted(HOSTILE_IDS)
    return (f"{len(HOSTILE_IDS)} clips extracted: {extracted}; commands injected: "
            f"{injected or 'none'}")


CHECKS = (
    # annotations and manifests: fail fast, naming the file and line (or row / clip)
    Check("annotations", "missing_file/msrvtt", "error naming the file",
          r"^AnnotationError: .*gone\.json: annotation file not found$",
          msrvtt_case(lambda info, d: None, annotations=["gone.json"])),
    Check("annotations", "missing_file/lsmdc", "error naming the file",
          r"^AnnotationError: .*ret\.csv: annotation file not found$",
          lsmdc_case(lambda files: None, retrieval_test="ret.csv")),
    Check("annotations", "duplicate_clip_id/msrvtt", "error naming the file and row",
          r"^AnnotationError: .*more\.json: videos\[0\]: duplicate video_id 'video0'$",
          msrvtt_case(_second_file, annotations=["videodatainfo.json", "more.json"])),
    Check("annotations", "duplicate_clip_id/lsmdc", "error naming the file, line and first",
          r"^AnnotationError: .*test\.csv:1: clip '0001_Movie_\S+' again \(first at "
          r".*train\.csv:1\)",
          lsmdc_case(lambda files: files.update(
              {"test.csv": [[LSMDC_CLIPS[0], *LSMDC_TIMES, "Again."]]}))),
    Check("annotations", "empty_sentence/msrvtt", "error naming the file and row",
          r"^AnnotationError: .*videodatainfo\.json: sentences\[1\]: empty caption$",
          msrvtt_case(lambda info, d: info["sentences"][1].update(caption="  "))),
    Check("annotations", "empty_sentence/lsmdc", "error naming the file and line",
          r"^AnnotationError: .*train\.csv:2: empty sentence$",
          lsmdc_case(_cell("train.csv", 1, -1, " "))),
    Check("annotations", "non_utf8/msrvtt", "error naming the file, line and byte",
          r"^AnnotationError: .*videodatainfo\.json:\d+: not valid UTF-8 \(byte 0xff at "
          r"column \d+\)$",
          msrvtt_case(lambda info, d: json.dumps(info, indent=1).encode().replace(
              b"a green", b"a gr\xffen"))),
    Check("annotations", "non_utf8/lsmdc", "error naming the file, line and byte",
          r"^AnnotationError: .*train\.csv:2: not valid UTF-8 \(byte 0xff at column \d+\)$",
          lsmdc_case(lambda files: files.update({"train.csv": "".join(
              "\t".join(row) + "\n" for row in files["train.csv"]).encode().replace(
              b"SOMEONE sits", b"SOMEONE \xffits")}))),
    Check("annotations", "wrong_keys/msrvtt", "error naming the missing and found keys",
          r"^AnnotationError: .*videodatainfo\.json: videos\[0\]: missing key 'video_id' "
          r"\(it has \['id', 'split'\]\)$",
          msrvtt_case(lambda info, d: info["videos"][0].update(id=info["videos"][0].pop(
              "video_id")))),
    Check("annotations", "wrong_columns/msrvtt_list", "error naming expected, found columns",
          r"^AnnotationError: .*ret\.csv:1: header lacks column\(s\) \['video_id', 'sentence'\] "
          r"\(expected \['video_id', 'sentence'\], found \['vid', 'caption'\]\)$",
          msrvtt_case(lambda info, d: (d / "ret.csv").write_text("vid,caption\nvideo2,a\n"),
                      retrieval_test="ret.csv")),
    Check("annotations", "wrong_columns/lsmdc", "error naming the file, line and count",
          r"^AnnotationError: .*train\.csv:2: 5 columns; expected 6$",
          lsmdc_case(lambda files: files["train.csv"][1].pop())),
    Check("annotations", "unsafe_clip_id/msrvtt", "error naming the file, row and id",
          r"^AnnotationError: .*videos\[1\]: video_id '\.\./\.\./etc/x' is not usable as a "
          r"file name",
          msrvtt_case(lambda info, d: [entry.update(video_id="../../etc/x") for entry in (
              info["videos"][1], info["sentences"][1])])),
    Check("annotations", "unsafe_clip_id/lsmdc", "error naming the file, line and id",
          r"^AnnotationError: .*test\.csv:1: clip name '\.\.' is not usable as a file name",
          lsmdc_case(_cell("test.csv", 0, 0, ".."))),
    Check("annotations", "start_after_end", "error naming the clip and span",
          r"^AnnotationError: clips: clip 'c' has start=3\.0 end=1\.0; need 0 <= start < end$",
          _clip_span(3.0, 1.0)),
    Check("annotations", "negative_start", "error naming the clip and span",
          r"^AnnotationError: clips: clip 'c' has start=-1\.0 end=2\.0; need 0 <= start < end$",
          _clip_span(-1.0, 2.0)),
    Check("annotations", "missing_video", "manifest error naming the clip and file",
          r"^MissingVideoError: clip 'video0': video file not found: .*videos/video0\.mp4$",
          _missing_video),
    Check("annotations", "span_past_the_end", "fail: error naming clip, file; or quarantined",
          r"^fail: ClipError: clip 'late' \(.*video\.mp4\): the span starts at 5\.00 s, at or "
          r"after the end of the file \(2\.00 s\); quarantine: the span starts at 5\.00 s.*; "
          r"extracted \['good'\]$",
          _span_past_the_end),
    # config: rejected while the DAG is built, naming the key or value
    Check("config", "unknown_key", "snakemake -n fails naming the key",
          r"Additional properties are not allowed \('bogus' was unexpected\)",
          _plan_fails(lambda config: config.update(bogus=1))),
    Check("config", "results_outside", "snakemake -n fails naming results",
          r"config results: '\.\./out' has a '\.\.' component",
          _plan_fails(lambda config: config.update(results="../out"))),
    Check("config", "generated_root_outside", "snakemake -n fails naming the root",
          r"config dataset\.root: '/tmp/elsewhere' is generated .* must lie under results",
          _plan_fails(lambda config: config["dataset"].update(root="/tmp/elsewhere"))),
    Check("config", "dataset_name_path", "schema error naming the value",
          r"ValidationError: '\.\.' does not match",
          _schema_rejects(lambda config: config["dataset"].update(name=".."))),
    Check("config", "extractor_name_path", "schema error naming the value",
          r"ValidationError: 'a/b' does not match",
          _schema_rejects(lambda config: config["extractors"].update({"a/b": {}}))),
    Check("config", "experiment_name_path", "schema error naming the value",
          r"ValidationError: '\.\./x' does not match",
          _schema_rejects(lambda config: config["experiments"].update(
              {"../x": config["experiments"]["ret"]}))),
    Check("config", "variant_name_path", "schema error naming the value",
          r"ValidationError: 'a/b' does not match",
          _schema_rejects(lambda config: config["experiments"]["ret"]["variants"].update(
              {"a/b": {}}))),
    Check("config", "device_shell", "schema error naming the value",
          r"ValidationError: 'cpu; touch PWNED' does not match",
          _schema_rejects(lambda config: config["runtime"].update(device="cpu; touch PWNED"))),
    Check("config", "outputs_under_results", "every output and log under <results>/<name>/",
          r"^\d{2,} outputs and logs, outside out/r/tiny/: none$", _outputs_under_results),
    # runs
    Check("runs", "sigkill_resume", "resumes; same files and metrics as without the kill",
          r"^killed after epoch [1-7] of 8, resumed; differs from the uninterrupted run: "
          r"nothing", _killed_and_resumed),
    Check("runs", "nan_loss", "stops naming run, epoch, step; saved files unchanged",
          r"^FloatingPointError: .*: the loss is nan at epoch 2, step 1; stopping "
          r"\(checkpoint\.pt \(epoch 1\) and best\.pt are as they were\); saved files unchanged$",
          _non_finite("nan")),
    Check("runs", "inf_loss", "stops naming run, epoch, step; saved files unchanged",
          r"^FloatingPointError: .*: the loss is inf at epoch 2, step 1; .*; saved files "
          r"unchanged$", _non_finite("inf")),
    Check("runs", "nan_gradient", "stops before the step; saved files unchanged",
          r"^FloatingPointError: .*: the gradient norm is nan at epoch 2, step 1; .*; saved "
          r"files unchanged$", _non_finite("gradient")),
    Check("runs", "disk_full_store", "error naming the store; previous store intact, no temp",
          r"^OSError: \[Errno 28\] No space left on device: .* \[.*s\.zarr: not written \(its "
          r"temporary was removed\)\]; the previous store has 2 clips; directory: \['s\.zarr'\]$",
          _disk_full_mid_store),
    Check("runs", "disk_full_checkpoint", "error naming the file; checkpoint intact, no temp",
          r"^OSError: \[Errno 28\] No space left on device: .* \[.*(best|checkpoint)\.pt: not "
          r"written \(its temporary was removed\)\]; saved files unchanged; directory: "
          r"\['best\.pt', 'checkpoint\.pt'\]$", _disk_full_checkpoint),
    # security
    Check("security", "torch_load_weights_only", "every torch.load has weights_only=True",
          r"^[1-9]\d* torch\.load calls; unsafe loads: none$", _weights_only_everywhere),
    Check("security", "pickled_checkpoint", "refused naming the file; payload not run",
          r"^UnpicklingError: .*checkpoint\.pt: refused to load.*; payload ran: False$",
          _pickled_code(_resume_from, "checkpoint.pt")),
    Check("security", "pickled_weights", "refused; payload not run",
          r"^UnpicklingError: .*; payload ran: False$",
          _pickled_code(_load_weights, "weights.pth")),
    Check("security", "shell_quoting", "every path placeholder quoted (:q)",
          r"^\d+ placeholders, \d+ quoted; unquoted and not an integer: none$", _shell_quoting),
    Check("security", "hostile_names", "quotes, $( ) in ids and paths run nothing",
          r"^5 clips extracted: True; commands injected: none$", _hostile_names),
)


@dataclass
class Result:
    """A check and what it gave; ``ok``: the outcome matches the check's pattern."""

    check: Check
    outcome: str
    seconds: float
    directory: Path

    @property
    def ok(self) -> bool:
        return re.search(self.check.pattern, self.outcome) is not None


def run_check(check: Check, directory: Path, env: Env = None) -> Result:
    """Run ``check`` in a new directory ``directory`` (made here)."""
    directory.mkdir(parents=True)
    start = time.perf_counter()
    with contextlib.chdir(directory):  # nothing a check does lands in the caller's directory
        outcome = check.run(directory, env)
    return Result(check, outcome, time.perf_counter() - start, directory)


def run_checks(directory: Path, env: Env = None,
               checks: tuple[Check, ...] = CHECKS) -> list[Result]:
    """Run every check, each in its own subdirectory of ``directory``."""
    return [run_check(check, directory / f"{i:02d}-{check.name.replace('/', '-')}", env)
            for i, check in enumerate(checks)]


def table(results: list[Result], width: int = 90) -> str:
    """The results as a text table: group, case, expected, outcome (paths relative to the
    case's directory), as expected?"""
    rows = [["group", "case", "expected", "outcome", "as expected"]]
    for result in results:
        outcome = " ".join(result.outcome.replace(f"{result.directory}/", "").split())
        rows.append([result.check.group, result.check.name, result.check.expected,
                     outcome if len(outcome) <= width else outcome[: width - 1] + "…",
                     "yes" if result.ok else "NO"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)
