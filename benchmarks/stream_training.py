"""Training memory and speed: features streamed from the stores vs all of them in memory.

Writes a synthetic feature store (``--clips`` clips × ``--steps`` steps × ``--dim`` float32, in
shards of ``--shard-clips``; reused when it exists), then trains Watch and Learn's
correspondence task (the demo's WAL model: a cheap step, so reading dominates) for ``--batches``
batches in a fresh process per mode and prints steps/s and peak RSS:

- ``stream``: `vlpipe.features.inputs.ClipArrays` (each batch's clips read from Zarr in
  threads, batches prepared ahead), the path training takes;
- ``memory``: every clip's features read into a dict first (what training did before), only
  where it fits (``--memory-clips``).

    python benchmarks/stream_training.py --root /tmp/streambench --clips 100000 10000 \\
        --memory-clips 10000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vlpipe.features.store import ClipFeatures, FeatureStore, write_store  # noqa: E402


def write_synthetic(root: Path, clips: int, steps: int, dim: int, shard_clips: int) -> list[str]:
    """Shard stores of random features for clips c0 … c{clips-1}; existing ones are kept."""
    paths = []
    rng = np.random.default_rng(0)
    times = (np.arange(steps) / 5).astype(np.float32)
    for shard, start in enumerate(range(0, clips, shard_clips)):
        path = root / f"features-{steps}x{dim}" / f"shard-{shard:03d}.zarr"
        paths.append(str(path))
        if path.exists():
            continue
        ids = range(start, min(start + shard_clips, clips))
        rows = (ClipFeatures(f"c{k}", f"id-{k}", times,
                             {"feat": rng.standard_normal((steps, dim), dtype=np.float32)})
                for k in ids)
        attrs = {"provenance": {"primary": "feat", "extractor": "synthetic",
                                "weights": "random-seed-0"}}
        write_store(path, rows, {"feat": ((dim,), "float32", "step")}, attrs)
    return paths


def run(paths: list[str], clips: int, mode: str, batches: int, threads: int) -> dict:
    """One measurement, in this process: build the task, train ``batches`` steps."""
    import torch

    from vlpipe.features.inputs import ClipArrays
    from vlpipe.models import build_model
    from vlpipe.planning import InputRef
    from vlpipe.tasks.correspondence import CorrespondenceTask
    from vlpipe.text import Vocabulary
    from vlpipe.training.prefetch import prefetched

    torch.set_num_threads(threads)
    ids = [f"c{k}" for k in range(clips)]
    table = pd.DataFrame({"clip_id": ids, "sentences": [[f"clip {k % 50}"] for k in range(clips)],
                          "split": ["train"] * (clips - 200) + ["val"] * 100 + ["test"] * 100})
    rng = np.random.default_rng(0)
    vectors = {c: rng.standard_normal((1, 384), dtype=np.float32) for c in ids}
    start = time.perf_counter()
    stores = {"synthetic": list(paths)}
    if mode == "memory":
        features = {}
        for path in paths:
            features.update(FeatureStore(path).read_all("feat"))
        features = {c: features[c] for c in ids}
    else:
        features = ClipArrays([InputRef("synthetic", "synthetic")], stores)
    task = CorrespondenceTask(table, features, Vocabulary.build(["clip"] + [str(k) for k in
                                                                             range(50)], 1),
                              sentence_vectors=vectors, max_frames=25, feature_norm="zscore")
    setup = time.perf_counter() - start
    model = build_model("wal", {"embed_dim": 128, "discriminator_warmup": 20},
                        task.model_inputs())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    batch_rng = np.random.default_rng(1)
    done = []  # when each step ended: reading and waiting for batches included
    for step, batch in enumerate(prefetched(task.train_batches(batch_rng), 2)):
        if step == batches:
            break
        loss = task.loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done.append(time.perf_counter())
    warm = 5  # steps left out of the rate
    return {"mode": mode, "clips": clips, "setup_s": round(setup, 1),
            "steps_per_s": round((len(done) - 1 - warm) / (done[-1] - done[warm]), 2),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="where the stores are written")
    parser.add_argument("--clips", type=int, nargs="+", default=[10_000])
    parser.add_argument("--memory-clips", type=int, nargs="*", default=[10_000])
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--dim", type=int, default=2176)
    parser.add_argument("--shard-clips", type=int, default=10_000)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the step")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    args = parser.parse_args()
    if args.one:
        job = json.loads(args.one)
        print(json.dumps(run(job["paths"], job["clips"], job["mode"], args.batches,
                             args.threads)))
        return
    total = max(args.clips)
    start = time.perf_counter()
    paths = write_synthetic(args.root, total, args.steps, args.dim, args.shard_clips)
    print(f"stores: {total} clips × {args.steps} × {args.dim} float32 in {len(paths)} shards "
          f"({time.perf_counter() - start:.0f} s to write or find)")
    print("mode     clips    setup s  steps/s  peak RSS GB")
    for clips in args.clips:
        modes = ["stream"] + (["memory"] if clips in args.memory_clips else [])
        for mode in modes:
            shards = paths[: -(-clips // args.shard_clips)]
            job = json.dumps({"paths": shards, "clips": clips, "mode": mode})
            out = subprocess.run([sys.executable, __file__, "--root", str(args.root),
                                  "--batches", str(args.batches), "--threads",
                                  str(args.threads), "--one", job],
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{row['mode']:<8} {row['clips']:<8} {row['setup_s']:<8} "
                  f"{row['steps_per_s']:<8} {row['peak_rss_gb']}")


if __name__ == "__main__":
    main()
