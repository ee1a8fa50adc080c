"""Extraction throughput: the end-to-end job against its two bounds and a naive loop.

For each extractor, on the same clips and in the same run:

- ``e2e``: ``vlpipe.extractors.job.extract_shard`` — worker decoding, batched bf16 inference, store
  writing (the job a Snakemake rule runs);
- ``decode``: the job's decode workers alone (decode + prepare, no model);
- ``model``: the network alone on ready-made batches of the same inputs (host→device copy and
  results back to the host included);
- ``naive``: one video after another in the main process, fp32, one unit at a time (a frame for
  per-frame CNNs, a window for I3D, a 0.96 s example for VGGish) — what a first script does.

Goals (issue 3): e2e ≥ 70 % of min(decode, model), and ≥ 3× naive. Throughput is in units/s
and decoded frames (or audio seconds) per second; each phase's minor page faults per unit and
kernel share of its CPU time show what the allocator costs. Run on the GPU machine:

    python benchmarks/extract_bench.py --clips 208 --out results/bench/extract.json

and on the CPU, one thread, where the goal (issue 15) is e2e within 15 % of the model alone:

    python benchmarks/extract_bench.py --device cpu --threads 1 --workers 0 --clips 10 \
        --extractors resnet152 --naive-seconds 0
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader

from vlpipe.decode import AudioSpec, decode_media
from vlpipe.device import batch_frames_on, keep_cpu_heap, resolve_device
from vlpipe.extractors import build_extractor
from vlpipe.extractors.job import PreparedClips, extract_shard, single_threaded_worker
from vlpipe.manifest import SHARD_COLUMNS, with_file_identity
from vlpipe.synthetic import WorldConfig, generate_world

SETTINGS = {
    "resnet152": {"fps": 5, "image_size": 224, "allow_random_init": True},
    "i3d": {"allow_random_init": True},
    "vggish": {"fps": 5, "allow_random_init": True},
}


def make_shard(root: Path, n_clips: int, unique: int, seconds: float, fps: int,
               size: int) -> Path:
    """``n_clips`` videos (copies of ``unique`` rendered ones) and their shard table."""
    world = root / "world"
    generate_world(world, WorldConfig(seed=0, n_clips=unique, duration_s=seconds, fps=fps,
                                      size=size, train_fraction=1.0, validate_fraction=0.0,
                                      test_fraction=0.0))
    videos = root / "videos"
    videos.mkdir(exist_ok=True)
    rows = []
    for i in range(n_clips):
        path = videos / f"clip{i:05d}.mp4"
        shutil.copyfile(world / "videos" / f"video{i % unique}.mp4", path)
        rows.append({"clip_id": f"clip{i:05d}", "video_path": str(path), "start": 0.0,
                     "end": float("nan")})
    shard = root / "shard.parquet"
    with_file_identity(pd.DataFrame(rows))[SHARD_COLUMNS].to_parquet(shard, index=False)
    return shard


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Counted:
    """Wall seconds, minor page faults and the kernel's share of this process's CPU time over
    a ``with`` block (``wall``, ``faults``, ``kernel``)."""

    def __enter__(self) -> Counted:
        self._usage, self._start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        return self

    def __exit__(self, *_) -> None:
        self.wall = time.perf_counter() - self._start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.faults = usage.ru_minflt - self._usage.ru_minflt
        system = usage.ru_stime - self._usage.ru_stime
        self.kernel = system / max(system + usage.ru_utime - self._usage.ru_utime, 1e-9)


def bench_decode(extractor, rows, workers: int) -> tuple[float, int, list]:
    """Seconds to decode + prepare every clip in the job's workers; units; a few prepared."""
    dataset = PreparedClips([(row, [extractor.name]) for row in rows], {extractor.name: extractor})
    loader = DataLoader(dataset, batch_size=None, num_workers=workers,
                        worker_init_fn=single_threaded_worker,
                        prefetch_factor=4 if workers else None)
    start, units, kept = time.perf_counter(), 0, []
    for prepared in loader:
        clip_units = prepared.units[extractor.name]
        units += len(clip_units)
        if len(kept) < 64:
            kept.append(torch.from_numpy(clip_units.inputs))
    return time.perf_counter() - start, units, kept


def bench_model(extractor, samples: list, batch: int, device, min_units: int) -> Counted:
    """``forward`` alone on real inputs, batches of ``batch`` units (``.units`` run)."""
    inputs = torch.cat(samples)
    reps = -(-batch // len(inputs))
    inputs = torch.cat([inputs] * reps)[:batch]  # (batch, ...) real units, repeated if needed
    for _ in range(3):  # warm-up (cuDNN autotuning, lazy init)
        extractor.forward(inputs)
    _sync(device)
    with Counted() as counted:
        counted.units = 0
        while counted.units < min_units:
            extractor.forward(inputs)
            counted.units += len(inputs)
        _sync(device)
    return counted


def bench_naive(extractor, rows, max_seconds: float) -> float:
    """Units/s of a per-video, fp32, one-unit-at-a-time loop (stopped after ``max_seconds``)."""
    if max_seconds <= 0:
        return float("nan")
    extractor.precision = "fp32"
    start, done = time.perf_counter(), 0
    for row in rows:
        media = decode_media(row.video_path, [extractor.needs], row.start, row.end)
        units = extractor.prepare(media)
        with torch.inference_mode():
            for i in range(len(units)):
                extractor.forward(units.inputs[i : i + 1])
        done += len(units)
        if time.perf_counter() - start > max_seconds:
            break
    _sync(extractor.device)
    extractor.precision = "auto"
    return done / (time.perf_counter() - start)


def bench_extractor(name: str, shard: Path, work: Path, args, untuned: bool) -> dict:
    """The figures of one extractor; on the CPU with ``untuned`` (the first extractor of a run,
    before the job's heap settings take effect for the process) also the model as it ran before
    them, at the configured batch."""
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    extractor = build_extractor(name, SETTINGS[name]).to(device)
    rows = list(pd.read_parquet(shard).itertuples(index=False))
    per_unit = 0.96 if isinstance(extractor.needs, AudioSpec) else extractor.frames_per_unit
    batch = max(1, batch_frames_on(device, args.batch_frames) // extractor.frames_per_unit)

    decode_s, units, samples = bench_decode(extractor, rows, args.workers)
    min_units = max(units // 2, batch)
    before = None
    if untuned and device.type == "cpu":
        before = bench_model(extractor, samples, max(1, args.batch_frames //
                                                     extractor.frames_per_unit), device,
                             min_units)
        keep_cpu_heap()
    model = bench_model(extractor, samples, batch, device, min_units)
    store = work / f"{name}.zarr"
    _sync(device)
    with Counted() as e2e:
        extract_shard(shard, {name: store}, {name: SETTINGS[name]}, device=str(device),
                      batch_frames=args.batch_frames, num_workers=args.workers,
                      built={name: extractor})
        _sync(device)
    naive_ups = bench_naive(extractor, rows, args.naive_seconds)
    model_ups = model.units / model.wall
    result = {"extractor": name, "device": torch.cuda.get_device_name() if device.type == "cuda"
              else f"cpu, {torch.get_num_threads()} thread(s)", "clips": len(rows),
              "units": units, "unit": extractor.frames_per_unit, "batch_units": batch,
              "e2e_units_s": units / e2e.wall, "decode_units_s": units / decode_s,
              "model_units_s": model_ups, "naive_units_s": naive_ups,
              "e2e_faults_per_unit": e2e.faults / units, "e2e_kernel_share": e2e.kernel,
              "model_faults_per_unit": model.faults / model.units,
              "model_kernel_share": model.kernel, "weights": extractor.weights_identity}
    if before:
        result.update(untuned_model_units_s=before.units / before.wall,
                      untuned_model_faults_per_unit=before.faults / before.units,
                      untuned_model_kernel_share=before.kernel)
    result["e2e_vs_model"] = result["e2e_units_s"] / model_ups
    result["e2e_vs_slower_bound"] = result["e2e_units_s"] / min(result["decode_units_s"],
                                                                 model_ups)
    result["e2e_vs_naive"] = result["e2e_units_s"] / naive_ups
    result["e2e_media_s"] = result["e2e_units_s"] * per_unit  # frames/s, or audio s per s
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--extractors", nargs="+", default=list(SETTINGS))
    parser.add_argument("--clips", type=int, default=208)
    parser.add_argument("--unique", type=int, default=16, help="distinct rendered videos")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--video-fps", type=int, default=30)
    parser.add_argument("--video-size", type=int, default=320)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--batch-frames", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--naive-seconds", type=float, default=30.0, help="0: skip it")
    parser.add_argument("--threads", type=int, default=None, help="torch + BLAS threads")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(args.threads):
        work = Path(tmp)
        shard = make_shard(work, args.clips, args.unique, args.seconds, args.video_fps,
                           args.video_size)
        results = [bench_extractor(name, shard, work, args, untuned=i == 0)
                   for i, name in enumerate(args.extractors)]
    header = (f"{'extractor':10} {'units':>7} {'e2e u/s':>9} {'decode':>9} {'model':>9} "
              f"{'naive':>8} {'e2e/bound':>9} {'e2e/naive':>9} {'media/s':>9}")
    print(f"{args.clips} clips of {args.seconds:g} s, {args.video_size} px @ {args.video_fps} fps "
          f"on {results[0]['device']}\n{header}")
    for r in results:
        print(f"{r['extractor']:10} {r['units']:7d} {r['e2e_units_s']:9.0f} "
              f"{r['decode_units_s']:9.0f} {r['model_units_s']:9.0f} {r['naive_units_s']:8.1f} "
              f"{r['e2e_vs_slower_bound']:9.2f} {r['e2e_vs_naive']:9.1f} "
              f"{r['e2e_media_s']:9.0f}")
    for r in results:
        print(f"{r['extractor']}: e2e/model {r['e2e_vs_model']:.2f}; minor faults per unit "
              f"e2e {r['e2e_faults_per_unit']:.0f}, model {r['model_faults_per_unit']:.0f}; "
              f"kernel share e2e {r['e2e_kernel_share']:.0%}, model "
              f"{r['model_kernel_share']:.0%}")
        if "untuned_model_units_s" in r:
            print(f"  model at --batch-frames {args.batch_frames} without the heap settings: "
                  f"{r['untuned_model_units_s']:.2f} u/s, "
                  f"{r['untuned_model_faults_per_unit']:.0f} faults per unit, kernel "
                  f"{r['untuned_model_kernel_share']:.0%}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": results},
                                             indent=2))


if __name__ == "__main__":
    main()
