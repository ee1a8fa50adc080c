"""The whole DAG on a tiny synthetic world: dry run, full run, no-op rerun, and a replaced video
rerunning only its shard's extraction, and there only its clip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from vlpipe.features import FeatureStore

from .helpers import save_tiny_gpt2, subprocess_env

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = {
    "results": "results",
    "dataset": {
        "name": "tiny",
        "format": "msrvtt",
        "root": "results/tiny/raw",
        "options": {"annotations": ["annotations/videodatainfo.json"], "video_dir": "videos"},
        "synthetic": {"seed": 1, "n_clips": 30, "duration_s": 1.0, "fps": 10, "size": 48,
                      "gaze_subjects": 3,  # 15 / 8 / 7 clips: a story set of 5 in val, test
                      "train_fraction": 0.5, "validate_fraction": 0.25, "test_fraction": 0.25},
        "gaze": {"fps": 5},  # the simulated viewers' fixations → the gaze store
    },
    "shards": 2,
    "runtime": {"device": "cpu", "batch_frames": 32, "num_workers": 0, "tensorboard": True},
    # one job ("av") decodes each clip once for both extractors
    "extractors": {"resnet34": {"fps": 5, "image_size": 32, "allow_random_init": True,
                                "outputs": ["pool5", "res5c"], "job": "av"},
                   "vggish": {"fps": 5, "allow_random_init": True, "job": "av"}},
    "text": {"min_count": 1, "embeddings": None, "encoder": {"model": "all-MiniLM-L6-v2"}},
    "experiments": {
        "ret": {
            "model": "jsfusion", "task": "retrieval", "features": ["resnet34", "vggish"],
            "seeds": [0],
            "model_args": {"word_dim": 8, "encoder_hidden": 8, "d1": 8, "d2": 8, "d3": 8,
                           "d4": 8, "conv_channels": 4, "d5": 4, "d6": 4, "d7": 4},
            "task_args": {"max_frames": 5, "max_words": 24, "batch_size": 4,
                          "feature_norm": "pca", "pca_dims": 8},
            "train": {"epochs": 1},
            "variants": {"JSFusion": {}, "JSFusion-noaudio": {"features": ["resnet34"]}},
        },
        "ret_ft": {  # named inputs, started from ret/JSFusion's trained weights
            "model": "jsfusion", "task": "retrieval", "seeds": [0],
            "inputs": {"frames": "resnet34", "audio": "vggish/embedding"},
            "init_from": {"run": "ret/JSFusion", "freeze": False},
            "model_args": {"word_dim": 8, "encoder_hidden": 8, "d1": 8, "d2": 8, "d3": 8,
                           "d4": 8, "conv_channels": 4, "d5": 4, "d6": 4, "d7": 4},
            "task_args": {"max_frames": 5, "max_words": 24, "batch_size": 4,
                          "feature_norm": "pca", "pca_dims": 8},
            "train": {"epochs": 1},
            "variants": {"JSFusion": {}},
        },
        "wal": {  # reads the text store's sentence vectors
            "model": "wal", "task": "correspondence", "features": ["resnet34"], "seeds": [0],
            "model_args": {"embed_dim": 8, "discriminator_warmup": 1},
            "task_args": {"max_frames": 5, "batch_size": 4, "feature_norm": "zscore",
                          "train_noise": 0.5},
            "train": {"epochs": 2, "optimizer": "sgd", "lr": 0.1, "lr_milestones": [1]},
            "variants": {"WAL-att-adv": {}},
        },
        "cap": {  # decodes with beam search, scored by the coco-caption toolkit
            "model": "captioner", "task": "captioning", "features": ["resnet34"], "seeds": [0],
            "model_args": {"word_dim": 8, "hidden": 8, "attention_hidden": 4},
            "task_args": {"max_frames": 5, "max_words": 10, "batch_size": 8,
                          "feature_norm": "zscore", "beam": 2},
            "train": {"epochs": 1},
            "variants": {"Temp-Attention": {}},
        },
        "gaze": {  # predicts the gaze store's maps from a grid input (1×1 at 32 px)
            "model": "rgp", "task": "gaze", "inputs": {"motion": "resnet34/res5c"},
            "seeds": [0],
            "model_args": {"project_channels": 4, "state_channels": 4, "deconv_channels": [4]},
            "task_args": {"max_frames": 5, "batch_size": 8, "eval_size": 24, "eval_sigma": 2.0},
            "train": {"epochs": 1},
            "variants": {"RGP": {}},
        },
        "gean": {  # GEAN from gaze/RGP's trained weights, frozen, against uniform maps
            "model": "gean", "task": "captioning", "seeds": [0],
            "inputs": {"scene": "resnet34/pool5", "motion": "resnet34/res5c",
                       "fovea": "resnet34/res5c"},
            "model_args": {"word_dim": 8, "attention_hidden": 4, "attention_gru": 8,
                           "multimodal_gru": 8, "scene_width": 4, "motion_width": 4,
                           "fovea_width": 4,
                           "rgp": {"project_channels": 4, "state_channels": 4,
                                   "deconv_channels": [4]}},
            "task_args": {"max_frames": 5, "max_words": 10, "batch_size": 8,
                          "feature_norm": "zscore"},
            "train": {"epochs": 1},
            "variants": {"GEAN": {"init_from": {"run": "gaze/RGP", "freeze": True}},
                         "GEAN-uniform": {"gaze": "uniform"}},
        },
        "ctsan": {  # reads the concept words (text/concepts.json) from the tagged captions
            "model": "ctsan", "task": "captioning", "seeds": [0],
            "inputs": {"grid": "resnet34/res5c"},
            "model_args": {"word_dim": 8, "hidden": 8, "grid_pool": 1, "top_k": 3,
                           "attention_channels": 4},
            "task_args": {"max_frames": 5, "max_words": 10, "batch_size": 8,
                          "feature_norm": "zscore"},
            "train": {"epochs": 1},
            "variants": {"CT-SAN": {}, "Base-SAN": {"detector": False}},
        },
        "story": {  # sets of 5 consecutive clips, TAPM's adaptation epoch, then generation
            "model": "tapm", "task": "storytelling", "features": ["resnet34"], "seeds": [0],
            "model_args": {"layers": 1, "width": 8, "heads": 2, "segments": 2,
                           "residual_blocks": 1, "adaptation_epochs": 1},
            "task_args": {"max_frames": 5, "max_words": 10, "batch_size": 2,
                          "feature_norm": "zscore", "beam": 2},
            "train": {"epochs": 1},  # + the adaptation epoch before it
            "variants": {"GPT2-Scratch": {}},
        },
    },
    "tables": {"captioners": ["cap", "gean", "ctsan"]},  # one table of the captioners
}


def snakemake(workdir: Path, *args: str) -> str:
    env = subprocess_env()
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--cores", "2",
         *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def with_pretrained_story(workdir: Path) -> dict:
    """TINY_CONFIG with the story experiment's TAPM row: a tiny GPT-2 saved under ``workdir``
    (`tests.helpers.save_tiny_gpt2`) as its published weights."""
    story = TINY_CONFIG["experiments"]["story"]
    sizes = {k: story["model_args"][k] for k in ("layers", "width", "heads")}
    weights = save_tiny_gpt2(workdir / "gpt2", **sizes,
                             sentences=["a red star spins", "then a big blue circle appears"])
    variants = {**story["variants"], "TAPM": {"pretrained": str(weights)}}
    return {**TINY_CONFIG, "experiments": {**TINY_CONFIG["experiments"],
                                           "story": {**story, "variants": variants}}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pipeline")
    (workdir / "config.yaml").write_text(yaml.safe_dump(with_pretrained_story(workdir)))
    dry = snakemake(workdir, "-n")
    run = snakemake(workdir)
    return workdir, dry, run


def test_dry_run_lists_the_whole_chain(tiny_run):
    _, dry, _ = tiny_run
    jobs = re.findall(r"^Job \d+: (\w+)", dry, re.M)
    for rule in ["synth_world", "manifest", "extract_av", "text_features", "vocab", "train",
                 "evaluate", "report", "curves", "quarantine"]:
        assert rule in jobs, rule


def test_the_console_shows_one_line_per_job_and_no_clip_files(tiny_run):
    """Each job is its rule's message (Snakemake's block would list every video of the world
    as output of synth_world and input of the manifest); --verbose brings the block back."""
    workdir, _, run = tiny_run
    assert "Job " in run and "video0.mp4" not in run and "video0.mp4" not in tiny_run[1]
    assert re.search(r"^Job \d+: synth_world: 30 clips → results/tiny/raw$", run, re.M)
    assert re.search(r"^Job \d+: train wal/WAL-att-adv seed 0 \(log: "
                     r"results/tiny/logs/train/wal-WAL-att-adv-0\.log\)$", run, re.M)
    assert all(len(line) < 120 for line in run.splitlines() if line.startswith("Job "))
    # long jobs' closing lines come through from their logs, named by the log
    assert re.search(r"^    extract/av-000: shard-000\.parquet \(resnet34, vggish\): 15/15 clips "
                     r"in [\d.]+ s", run, re.M)
    assert re.search(r"^    train/wal-WAL-att-adv-0: done: best epoch \d of 2, val [\d.]+ "
                     r"\(mean of video- and sentence-search mAP \(%\)\)$", run, re.M)
    log = (workdir / "results/tiny/logs/train/wal-WAL-att-adv-0.log").read_text()
    assert "epoch 2/2: loss" in log and "done: best epoch" in log
    verbose = snakemake(workdir, "-n", "--verbose", "--forcerun", "synth_world")
    assert "rule synth_world:" in verbose and "video0.mp4" in verbose


def test_run_writes_the_tables_and_a_rerun_does_nothing(tiny_run):
    workdir, _, run = tiny_run
    out = workdir / "results" / "tiny"
    assert "results/tiny/report/ret.md" in run  # the closing message prints the tables
    md = (out / "report" / "ret.md").read_text()
    assert "Ours tiny" in md and "random-seed-0" in md
    assert "- code: vlpipe " in md and "MIXED CODE" not in md  # every run by this code
    for variant, extractors in [("JSFusion", {"resnet34", "vggish"}),
                                ("JSFusion-noaudio", {"resnet34"})]:
        metrics = json.loads((out / f"metrics/ret/{variant}/seed-0.json").read_text())
        assert metrics["n_test"] == 7 and set(metrics["test"]) == {"t2v", "v2t"}
        assert {f["extractor"] for f in metrics["features"]} == extractors
        code = metrics["code"]
        assert code["train"]["step"] == "train" and code["evaluate"]["step"] == "evaluate"
        assert all(f["code"]["step"] == "extract" for f in metrics["features"])
    wal = json.loads((out / "metrics/wal/WAL-att-adv/seed-0.json").read_text())
    assert wal["task"] == "correspondence" and wal["n_test"] == 7
    assert {f["extractor"] for f in wal["features"]} == {"resnet34", "text:all-MiniLM-L6-v2"}
    log = [json.loads(line) for line in (out / "models/wal/WAL-att-adv/seed-0/train_log.jsonl")
           .read_text().splitlines()]
    assert [entry["lr"] for entry in log] == pytest.approx([0.1, 0.01])
    assert all(0 <= entry["train_stats"]["lvc_fraction"] <= 1 for entry in log)
    assert "Paper ApartmenTour" in (out / "report" / "wal.md").read_text()
    cap = json.loads((out / "metrics/cap/Temp-Attention/seed-0.json").read_text())
    assert cap["n_test"] == 7 and {"BLEU-4", "METEOR", "CIDEr"} <= set(cap["test"]["caption"])
    assert "Paper LSMDC" in (out / "report" / "cap.md").read_text()
    concepts = json.loads((out / "text" / "concepts.json").read_text())
    assert concepts["tagger"].startswith("textblob") and "background" in concepts["words"]
    ctsan = json.loads((out / "metrics/ctsan/CT-SAN/seed-0.json").read_text())["test"]
    assert {"P@10", "R@10", "prior P@10"} <= set(ctsan["concepts"])
    base = json.loads((out / "metrics/ctsan/Base-SAN/seed-0.json").read_text())["test"]
    assert set(base["concepts"]) == {"prior P@10", "prior R@10"}  # no detector
    assert "Paper LSMDC16 (ch. 4)" in (out / "report" / "ctsan.md").read_text()
    story = json.loads((out / "metrics/story/GPT2-Scratch/seed-0.json").read_text())
    assert story["n_test"] == 1 and set(story["test"]) == {"sentence", "set"}
    assert {"METEOR", "CIDEr"} <= set(story["test"]["set"])
    assert len(story["examples"][0]["decoded"]) == 5
    log = (out / "models/story/GPT2-Scratch/seed-0/train_log.jsonl").read_text().splitlines()
    assert len(log) == 2  # the adaptation epoch, then the configured one of generation
    md = (out / "report" / "story.md").read_text()
    assert "Paper LSMDC 2019" in md and "trained from scratch on the training sentences" in md
    tapm = json.loads((out / "metrics/story/TAPM/seed-0.json").read_text())
    assert tapm["language_model"] == {"name": "GPT-2", "weights": str(workdir / "gpt2")}
    assert f"`TAPM` generates with GPT-2 started from the weights of `{workdir}/gpt2`" in md
    gaze = json.loads((out / "metrics/gaze/RGP/seed-0.json").read_text())
    assert gaze["test"]["gaze"]["frames"] > 0 and {"Sim", "CC", "sAUC", "AUC"} <= set(
        gaze["test"]["gaze"])
    assert {f["extractor"] for f in gaze["features"]} == {"resnet34", "gaze"}
    assert "Paper Hollywood2 EM" in (out / "report" / "gaze.md").read_text()
    assert len(gaze["examples"]) == 2 and (out / "report" / "gaze-examples.png").stat().st_size
    sentences = FeatureStore(out / "text" / "sentences.zarr")
    assert len(sentences) == 30 and sentences.read(sentences.clip_ids[0]).shape[1] == 384
    quarantine = pd.read_csv(out / "quarantine.csv")  # every clip decoded: an empty table
    assert list(quarantine.columns) == ["clip_id", "extractor", "video_path", "reason"]
    assert quarantine.empty
    assert "Nothing to be done" in snakemake(workdir, "-n")


def test_training_writes_tensorboard_events_and_switching_them_reruns_nothing(tiny_run):
    """runtime.tensorboard: each run's event files beside train_log.jsonl hold its entries
    (WAL's LVC share too); how training runs, not what it computes: off, nothing reruns."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, _, _ = tiny_run
    run_dir = workdir / "results/tiny/models/wal/WAL-att-adv/seed-0"
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    events = EventAccumulator(str(run_dir))
    events.Reload()
    for tag, value in [("loss", lambda e: e["loss"]), ("lr", lambda e: e["lr"]),
                       ("selection", lambda e: e["selection"]),
                       ("train_stats/lvc_fraction", lambda e: e["train_stats"]["lvc_fraction"])]:
        assert [(e.step, e.value) for e in events.Scalars(tag)] == [
            (entry["epoch"], pytest.approx(value(entry), rel=1e-6)) for entry in log], tag
    assert any(tag.startswith("val/") for tag in events.Tags()["scalars"])
    config = workdir / "config.yaml"
    written = yaml.safe_load(config.read_text())
    try:
        config.write_text(yaml.safe_dump({**written, "runtime": {
            **written["runtime"], "tensorboard": False}}))
        assert "Nothing to be done" in snakemake(workdir, "-n")
    finally:
        config.write_text(yaml.safe_dump(written))


def _planned_jobs(plan: str) -> set[tuple[str, str]]:
    """(rule, experiment/variant or table) of every job a dry run with --verbose lists (job
    blocks)."""
    jobs = set()
    for block in re.split(r"^\[.*\]$", plan, flags=re.M):  # a dry run dates each job
        rule = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        wildcards = re.search(r"wildcards: (.*)", block)
        if rule and wildcards:
            values = dict(item.split("=", 1) for item in wildcards.group(1).split(", "))
            jobs.add((rule.group(1), "/".join(values[k] for k in ("experiment", "table", "variant")
                                              if k in values)))
    return jobs


def test_a_run_started_from_another_reruns_when_the_upstream_retrains(tiny_run):
    """init_from: the downstream run starts from the upstream's weights (its log says so); a
    retrained upstream reruns its own evaluation and the downstream runs, nothing else."""
    workdir, _, _ = tiny_run
    out = workdir / "results" / "tiny"
    log = (out / "logs" / "train" / "ret_ft-JSFusion-0.log").read_text()
    assert re.search(r"started from .*models/ret/JSFusion/seed-0/model.pt: \d+ tensors", log)
    metrics = json.loads((out / "metrics/ret_ft/JSFusion/seed-0.json").read_text())
    assert {f["extractor"] for f in metrics["features"]} == {"resnet34", "vggish"}
    plan = snakemake(workdir, "-n", "--verbose", "--forcerun",
                     "results/tiny/models/ret/JSFusion/seed-0/model.pt")
    assert _planned_jobs(plan) == {
        ("train", "ret/JSFusion"), ("evaluate", "ret/JSFusion"), ("report", "ret"),
        ("curves", "ret"), ("train", "ret_ft/JSFusion"), ("evaluate", "ret_ft/JSFusion"),
        ("report", "ret_ft"), ("curves", "ret_ft")}


def test_gean_starts_from_the_trained_rgp_and_shares_a_table_with_temp_attention(tiny_run):
    """A variant's own init_from: GEAN copies and freezes gaze/RGP's weights, GEAN-uniform
    starts from scratch; retraining the RGP reruns GEAN and not GEAN-uniform. The config's
    `tables` entry puts both captioning experiments' rows in one table."""
    workdir, _, _ = tiny_run
    out = workdir / "results" / "tiny"
    log = (out / "logs" / "train" / "gean-GEAN-0.log").read_text()
    assert re.search(r"started from .*models/gaze/RGP/seed-0/model.pt: \d+ tensors copied, "
                     r"frozen", log)
    assert "started from" not in (out / "logs/train/gean-GEAN-uniform-0.log").read_text()
    plan = snakemake(workdir, "-n", "--verbose", "--forcerun",
                     "results/tiny/models/gaze/RGP/seed-0/model.pt")
    assert _planned_jobs(plan) == {
        ("train", "gaze/RGP"), ("evaluate", "gaze/RGP"), ("report", "gaze"), ("curves", "gaze"),
        ("train", "gean/GEAN"), ("evaluate", "gean/GEAN"), ("report", "gean"),
        ("curves", "gean"), ("report", "captioners"), ("examples_figure", "gaze"),
        ("examples_figure", "gean"), ("examples_figure", "captioners")}
    assert (out / "report" / "captioners-examples.png").stat().st_size > 0  # beside the frames
    table = (out / "report" / "captioners.md").read_text()
    for variant in ["Temp-Attention", "GEAN", "GEAN-uniform"]:
        row = next(line for line in table.splitlines() if line.startswith(f"| {variant} |"))
        assert re.search(r"\| \d+\.\d \|$", row), row  # our CIDEr, one seed
    assert "- experiments: " in table and '"gean": {' in table
    assert re.search(r"^\| GEAN-uniform \| .* \|$", table[table.index("## Examples"):], re.M)


def test_reruns_follow_the_library_code_each_step_imports(tiny_run, tmp_path):
    """The finished tree planned by a copy of this checkout: unchanged, nothing to do; a
    docstring edited, nothing; the training loop edited, every training and what reads it;
    WAL's model edited, WAL's runs only."""
    workdir, _, _ = tiny_run
    code = tmp_path / "code"
    code.mkdir()
    shutil.copyfile(REPO / "Snakefile", code / "Snakefile")
    for part in ["workflow", "envs", "vlpipe"]:
        shutil.copytree(REPO / part, code / part, ignore=shutil.ignore_patterns("__pycache__"))

    def plan() -> set[tuple[str, str]]:
        env = {**subprocess_env(), "PYTHONPATH": str(code)}
        done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(code / "Snakefile"),
                               "--cores", "2", "-n", "--verbose"], cwd=workdir, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        return _planned_jobs(done.stdout + done.stderr)

    assert plan() == set()
    loop = code / "vlpipe" / "training" / "loop.py"
    loop.write_text(loop.read_text().replace('"""One training loop', '"""The training loop', 1))
    assert plan() == set()
    loop.write_text(loop.read_text() + "\nEDITED = True\n")
    runs = {("ret", "JSFusion"), ("ret", "JSFusion-noaudio"), ("ret_ft", "JSFusion"),
            ("wal", "WAL-att-adv"), ("cap", "Temp-Attention"), ("gaze", "RGP"),
            ("gean", "GEAN"), ("gean", "GEAN-uniform"), ("ctsan", "CT-SAN"),
            ("ctsan", "Base-SAN"), ("story", "GPT2-Scratch"), ("story", "TAPM")}
    assert plan() == {(rule, f"{e}/{v}") for e, v in runs for rule in ("train", "evaluate")} | {
        (rule, e) for e, _ in runs for rule in ("report", "curves")} | {
        ("report", "captioners")} | {
        ("examples_figure", table) for table in ("gaze", "cap", "gean", "ctsan", "captioners")}
    loop.write_text(loop.read_text().replace("\nEDITED = True\n", ""))
    wal = code / "vlpipe" / "models" / "wal" / "model.py"
    wal.write_text(wal.read_text() + "\nEDITED = True\n")
    assert plan() == {("train", "wal/WAL-att-adv"), ("evaluate", "wal/WAL-att-adv"),
                      ("report", "wal"), ("curves", "wal")}


def test_html_report_holds_the_tables_and_training_curves(tiny_run):
    workdir, _, _ = tiny_run
    figure = workdir / "results" / "tiny" / "report" / "ret-training.png"
    assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    snakemake(workdir, "--report", "report.html")
    html = (workdir / "report.html").read_text()
    for shown in ['"result": "training curves"', '"result": "table"', "ret-training.png",
                  "ret.csv", "Data set <strong>tiny</strong>"]:
        assert shown in html, shown


def test_replaced_video_reruns_only_its_shard_and_clip(tiny_run):
    workdir, _, _ = tiny_run
    out = workdir / "results" / "tiny"
    manifest = pd.read_parquet(out / "tables" / "manifest.parquet")
    clip, other_clip = manifest.iloc[0], manifest.iloc[1]
    stores = {(name, k): out / f"features/{name}/shard-{k:03d}.zarr"
              for name in ["resnet34", "vggish"] for k in range(2)}
    before = {key: path.stat().st_mtime_ns for key, path in stores.items()}
    # New content under the same name (Snakemake ignores a mere touch of a small file whose
    # checksum it recorded, so the test changes the bytes).
    shutil.copyfile(workdir / other_clip.video_path, workdir / clip.video_path)
    # the stores (the runs downstream of the changed features rerun too: not timed here)
    targets = [str(path.relative_to(workdir)) for path in stores.values()]
    snakemake(workdir, *targets)
    touched, other = int(clip.shard), 1 - int(clip.shard)
    for name in ["resnet34", "vggish"]:
        counts = FeatureStore(stores[name, touched]).attrs["counts"]
        assert counts["recomputed"] == 1 and counts["reused"] == counts["clips"] - 1
        assert stores[name, other].stat().st_mtime_ns == before[name, other]  # did not run
    assert "Nothing to be done" in snakemake(workdir, "-n", *targets)


def test_slurm_profile_plans_gpu_jobs_without_a_cluster(tmp_path):
    """`--profile profiles/slurm` (the slurm executor plugin) plans the DAG with each rule
    group's resources; a dry run needs no SLURM commands (none exist here)."""
    config = {**TINY_CONFIG, "runtime": {**TINY_CONFIG["runtime"], "device": "cuda",
                                         "resources": {"train": {"runtime": 30}}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    plan = snakemake(tmp_path, "-n", "--verbose", "--profile", str(REPO / "profiles" / "slurm"))
    jobs = plan.split("\n\n")
    extract = next(job for job in jobs if "rule extract_av:" in job)
    assert "gpu=1" in extract and "mem_mb=32000" in extract and "runtime=240" in extract
    train = next(job for job in jobs if "rule train:" in job)
    assert "gpu=0" in train and "runtime=30" in train
    assert "checkpoint manifest:" in plan


def test_every_rule_has_a_conda_env_pinned_like_requirements():
    pins = dict(line.strip().split("==") for line in (REPO / "requirements.txt").read_text()
                .splitlines() if "==" in line)
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        for requirement in pip:
            name, version = requirement.split("==")
            assert pins.get(name) == version, (env_file.name, requirement)
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        assert text.count("shell:") == text.count("conda:"), rules.name
        for group in set(re.findall(r'ENVS\["(\w+)"\]', text)):
            assert (REPO / "envs" / f"{group}.yaml").is_file()
