"""Workflow overhead at data-set scale: Snakemake planning and no-op reruns over N clips.

Builds a work directory with an MSR-VTT-format data set of ``--clips`` clips whose video files
are tiny placeholders (what is measured is the workflow, not decoding), then times:

1. ``snakemake -n`` before anything ran (the DAG up to the manifest checkpoint);
2. the manifest job itself (read the annotations, stat every video, write the shard plan);
3. ``snakemake -n`` with the shard plan present (the whole DAG: one extraction job per shard);
4. ``snakemake -n`` once every output exists and is recorded (``--touch``): a no-op rerun.

    python benchmarks/dag_scale.py --clips 100000 --shards 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def make_dataset(root: Path, clips: int) -> None:
    videos = root / "videos"
    videos.mkdir(parents=True)
    entries, sentences = [], []
    for i in range(clips):
        (videos / f"video{i}.mp4").write_bytes(b"placeholder %d" % i)
        split = "train" if i % 10 < 8 else ("validate" if i % 10 == 8 else "test")
        entries.append({"video_id": f"video{i}", "id": i, "split": split})
        sentences.append({"video_id": f"video{i}", "caption": f"a red circle grows {i}"})
    (root / "annotations").mkdir()
    (root / "annotations" / "videodatainfo.json").write_text(
        json.dumps({"videos": entries, "sentences": sentences}))


def config(root: Path, shards: int) -> dict:
    return {
        "results": "results",
        "dataset": {"name": "scale", "format": "msrvtt", "root": str(root),
                    "options": {"annotations": ["annotations/videodatainfo.json"],
                                "video_dir": "videos"}},
        "shards": shards,
        "extractors": {"resnet152": {"fps": 5, "allow_random_init": True}},
        "text": {"min_count": 4, "embeddings": None},
        "experiments": {"ret": {"model": "jsfusion", "task": "retrieval",
                                "features": ["resnet152"], "seeds": [0],
                                "variants": {"JSFusion-noaudio": {}}}},
    }


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
                             "--cores", "2", "--quiet", "all", *args], cwd=workdir, env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(result.stdout[-3000:] + result.stderr[-3000:])
    return seconds, result.stdout + result.stderr


def placeholder_outputs(workdir: Path) -> None:
    """Every output of the DAG, empty, so that ``--touch`` can record them as finished."""
    _, listing = snakemake(workdir, "-n", "--summary")
    for line in listing.splitlines()[1:]:
        path = workdir / line.split("\t")[0]
        if path.suffix == ".zarr":
            path.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        start = time.perf_counter()
        make_dataset(workdir / "data", args.clips)
        print(f"data set of {args.clips} clips written in {time.perf_counter() - start:.1f} s")
        (workdir / "config.yaml").write_text(yaml.safe_dump(config(workdir / "data",
                                                                   args.shards)))
        figures = {}
        figures["dry run, nothing built"], _ = snakemake(workdir, "-n")
        figures["manifest job"], _ = snakemake(workdir, "--until", "manifest")
        figures["dry run, whole DAG"], _ = snakemake(workdir, "-n")
        placeholder_outputs(workdir)
        snakemake(workdir, "--touch")
        figures["no-op rerun (dry run)"], noop = snakemake(workdir, "-n")
        if "Nothing to be done" not in noop:
            raise RuntimeError(f"the rerun was not a no-op:\n{noop[-3000:]}")
    print(f"{args.clips} clips, {args.shards} shards, {os.cpu_count()} cores")
    for name, seconds in figures.items():
        print(f"  {name:24} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
