"""The pipeline on data sets it does not generate and under faults (real Snakemake runs on tiny
worlds, beside `tests/test_pipeline.py`'s): an external data set reruns exactly the work of its
changed clips, the Hollywood2 layout runs gaze prediction, config mistakes are named by the dry
run, and a killed Snakemake leaves complete stores."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from vlpipe.features import FeatureStore
from vlpipe.synthetic import WorldConfig, generate_world
from vlpipe.synthetic.world import synthetic_dataset_options

from .helpers import subprocess_env
from .test_pipeline import REPO, TINY_CONFIG, snakemake


def test_external_data_set_reruns_exactly_the_work_of_changed_clips(tmp_path):
    """An external data set (videos no rule generates, tracked by a digest in the manifest's
    params), one job per extractor: a replaced, an added and a removed clip rerun only their
    shards' extraction and there only those clips; new settings for one extractor rerun only
    that extractor; an unchanged data set reruns nothing."""
    ext = tmp_path
    data = ext / "data"
    generate_world(data, WorldConfig(**TINY_CONFIG["dataset"]["synthetic"]))
    extractors = {name: {k: v for k, v in settings.items() if k != "job"}
                  for name, settings in TINY_CONFIG["extractors"].items()}
    experiments = {k: v for k, v in TINY_CONFIG["experiments"].items()
                   if k not in ("gaze", "gean", "story")}
    config = {**TINY_CONFIG, "extractors": extractors, "experiments": experiments,
              "text": {**TINY_CONFIG["text"], "encoder": None},
              "dataset": {**TINY_CONFIG["dataset"], "name": "ext", "root": str(data)}}
    del config["dataset"]["synthetic"], config["dataset"]["gaze"], config["tables"]
    (ext / "config.yaml").write_text(yaml.safe_dump(config))
    out = ext / "results" / "ext"

    def store(name, shard):
        return out / f"features/{name}/shard-{shard:03d}.zarr"

    targets = [str(store(name, shard).relative_to(ext)) for name in extractors for shard in (0, 1)]

    def mtimes():
        return {(n, k): store(n, k).stat().st_mtime_ns for n in extractors for k in range(2)}

    def counts(name, shard):
        return FeatureStore(store(name, shard)).attrs["counts"]

    for named, mutate in CONFIG_MISTAKES.items():  # on the fresh tree
        assert named in dry_run_error(ext, config, mutate), named
    snakemake(ext, *targets)
    assert "Nothing to be done" in snakemake(ext, "-n", *targets)

    # A replaced video: its shard's jobs recompute that clip only; the other shard's don't run.
    manifest = pd.read_parquet(out / "tables" / "manifest.parquet")
    clip, other_clip = manifest.iloc[0], manifest.iloc[1]
    before = mtimes()
    shutil.copyfile(other_clip.video_path, clip.video_path)
    assert re.search(r"params have changed since last execution:\n\s+manifest$",
                     snakemake(ext, "-n", *targets), re.M)
    snakemake(ext, *targets)
    touched = int(clip.shard)
    for name in extractors:
        got = counts(name, touched)
        assert (got["recomputed"], got["reused"], got["removed"]) == (1, got["clips"] - 1, 0)
        assert mtimes()[name, 1 - touched] == before[name, 1 - touched]

    # One clip added, one removed (annotations and files): only they count as work.
    annotations = data / "annotations" / "videodatainfo.json"
    info = json.loads(annotations.read_text())
    removed = info["videos"][-1]["video_id"]
    info["videos"] = [*info["videos"][:-1], {**info["videos"][0], "video_id": "added"}]
    info["sentences"] = [s for s in info["sentences"] if s["video_id"] != removed] + [
        {"video_id": "added", "caption": "a new clip"}]
    shutil.copyfile(clip.video_path, data / "videos" / "added.mp4")
    annotations.write_text(json.dumps(info))
    snakemake(ext, *targets)
    shards = pd.read_parquet(out / "tables" / "manifest.parquet").set_index("clip_id")["shard"]
    removed_shard = int(manifest.set_index("clip_id").loc[removed, "shard"])
    for name in extractors:
        for shard in range(2):
            got = counts(name, shard)
            assert got["recomputed"] == int(shards["added"] == shard)
            assert got["removed"] == int(removed_shard == shard)
            assert got["clips"] == int((shards == shard).sum())
            assert removed not in FeatureStore(store(name, shard))

    # New settings for one extractor rerun its jobs only.
    before = mtimes()
    config["extractors"]["resnet34"]["fps"] = 2
    (ext / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(ext, *targets)
    after = mtimes()
    for shard in range(2):
        assert counts("resnet34", shard)["recomputed"] == counts("resnet34", shard)["clips"]
        assert after["vggish", shard] == before["vggish", shard]
    assert "Nothing to be done" in snakemake(ext, "-n", *targets)

    # How jobs run (batch size, workers, cluster resources) is not what they compute.
    config["runtime"] = {**config["runtime"], "batch_frames": 7, "num_workers": 1,
                         "resources": {"extract": {"mem_mb": 1000, "runtime": 5}}}
    (ext / "config.yaml").write_text(yaml.safe_dump(config))
    assert "Nothing to be done" in snakemake(ext, "-n", *targets)

    # On this finished tree too, every config or data mistake stops the dry run, named.
    for named, mutate in CONFIG_MISTAKES.items():
        assert named in dry_run_error(ext, config, mutate), named


def test_hollywood2_layout_runs_gaze_prediction_in_its_own_split(tmp_path_factory):
    """A gaze-only data set in Hollywood2 EM's layout (the tiny world written so: clips named by
    split at three picture sizes, per-subject fixation files, no captions): the split comes from
    the names (validation carved from the training clips), no text store or text task list is
    made, and RGP, on the whole frame, trains and is tested on exactly the test-named clips; a
    task that reads text is refused when the DAG is built."""
    root = tmp_path_factory.mktemp("hollywood2")
    tiny = TINY_CONFIG["dataset"]
    resnet = {k: v for k, v in TINY_CONFIG["extractors"]["resnet34"].items() if k != "job"}
    config = {**TINY_CONFIG, "tables": {},
              "extractors": {"resnet34": {**resnet, "crop": False}},  # the gaze maps' frame
              "experiments": {"gaze": TINY_CONFIG["experiments"]["gaze"]},
              "dataset": {"name": "hw2", "format": "hollywood2", "root": "results/hw2/raw",
                          "options": synthetic_dataset_options("hollywood2"),
                          "synthetic": {**{k: v for k, v in tiny["synthetic"].items()
                                           if not k.endswith("_fraction")}, "hollywood2": True},
                          "gaze": tiny["gaze"]}}
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(root)
    out = root / "results" / "hw2"
    clips = pd.read_parquet(out / "tables" / "manifest.parquet").set_index("clip_id")["split"]
    tests = sorted(c for c in clips.index if c.startswith("actioncliptest"))
    assert len(tests) == 6 and sorted(clips.index[clips == "test"]) == tests
    assert set(clips[[c for c in clips.index if c not in tests]]) == {"train", "val"}
    assert list((out / "text").iterdir()) == [out / "text" / "vocab.json"]  # no sentence store
    metrics = json.loads((out / "metrics/gaze/RGP/seed-0.json").read_text())
    assert metrics["n_test"] == len(tests) and metrics["test"]["gaze"]["AUC"] > 0.5

    captioning = {**config, "experiments": {"cap": TINY_CONFIG["experiments"]["cap"]}}
    assert "'captioning' reads the clips' sentences, and dataset format 'hollywood2' has none" \
        in dry_run_error(root, captioning, lambda c: None)


# A mistake in the external data set's config → what the dry run's error names.
CONFIG_MISTAKES = {
    "vidoe_dir": lambda c: c["dataset"]["options"].update(vidoe_dir="videos"),
    "options.video_dir: ": lambda c: c["dataset"]["options"].update(video_dir="clips"),
    "annotations/gone.json": lambda c: c["dataset"]["options"].update(
        annotations=["annotations/gone.json"]),
    "['resnet43']": lambda c: c["experiments"]["ret"].update(features=["resnet43"]),
    "['hiden']": lambda c: c["experiments"]["ret"]["model_args"].update(hiden=3),
    "unknown model 'jsfuson'": lambda c: c["experiments"]["ret"].update(model="jsfuson"),
    "['max_frame']": lambda c: c["experiments"]["ret"]["task_args"].update(max_frame=3),
    "variants.JSFusion-noaudio": lambda c: c["experiments"]["ret"]["variants"].update(
        {"JSFusion-noaudio": {"chd_gate": False}}),
}


def dry_run_error(workdir: Path, config: dict, mutate) -> str:
    """The output of a dry run with a mutated copy of ``config``, which must fail."""
    bad = copy.deepcopy(config)
    mutate(bad)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(bad))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n", "--cores", "1",
         "--configfile", "bad.yaml", "--replace-workflow-config"],
        cwd=workdir, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, result.stdout[-2000:]
    return result.stdout + result.stderr


def test_snakemake_killed_mid_extraction_leaves_complete_stores_and_reruns(tmp_path):
    """SIGKILL to Snakemake and its job while a store is being rewritten: the previous store
    stays complete and readable; after `--unlock`, `--rerun-incomplete` (the SLURM profile's
    default) repairs."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    stores = [f"results/tiny/features/{name}/shard-{k:03d}.zarr"
              for name in TINY_CONFIG["extractors"] for k in range(2)]
    snakemake(tmp_path, *stores)
    manifest = pd.read_parquet(tmp_path / "results/tiny/tables/manifest.parquet")
    for clip, other in zip(manifest.iloc[:4].itertuples(), manifest.iloc[4:8].itertuples(),
                           strict=True):  # new content for a few clips
        shutil.copyfile(tmp_path / other.video_path, tmp_path / clip.video_path)
    env = subprocess_env()
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                            "--cores", "1", *stores], cwd=tmp_path, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    features = tmp_path / "results/tiny/features"
    deadline = time.monotonic() + 120
    while not list(features.glob("*/.tmp-*")):
        assert run.poll() is None and time.monotonic() < deadline, "no store was rewritten"
        time.sleep(0.01)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    for store in stores:
        assert len(FeatureStore(tmp_path / store)) > 0  # complete: index, arrays, attrs
    snakemake(tmp_path, "--unlock", *stores)  # the killed Snakemake's lock (its own message)
    snakemake(tmp_path, "--rerun-incomplete", *stores)
    assert not list(features.glob("*/.tmp-*"))
    assert "Nothing to be done" in snakemake(tmp_path, "-n", *stores)
