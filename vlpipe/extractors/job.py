"""One extraction job: a shard's clips through one or more extractors, one store each.

Each clip that any extractor has to (re)compute is decoded once, in a DataLoader worker, for
the union of what those extractors need; each extractor prepares its units there too. The main
process batches units across clips per extractor, runs the network on the device and streams
the results into the new store.

Incremental: a clip whose identity (file, size, mtime, span) matches the previous store, with
the same extractor provenance (settings, version, weights) and made by the same extraction code
(``vlpipe.provenance``: a store records the code that made it), keeps its arrays; removed clips
disappear; only new or changed clips are decoded and recomputed.

Bad clips (``bad_clips``): a clip that cannot be decoded (``DecodeError``) or that an extractor's
``prepare`` fails on is, with "fail", a ``ClipError`` naming the clip, its file and the reason
(no store is replaced); with "quarantine", it is left out of every store of the job, which
record it in their attrs (``quarantined``: clip → video_path, identity, reason) and go on. A
quarantined clip whose identity is unchanged stays quarantined on the next run without being
decoded again; a changed file is retried ("fail" retries every one).

The job logs how many clips it has to compute, then every 30 s the clips done and clips/s.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits
from torch.utils.data import DataLoader, Dataset

from vlpipe import __version__
from vlpipe.decode import DecodeError, decode_media
from vlpipe.device import batch_frames_on, keep_cpu_heap, resolve_device
from vlpipe.extractors import Extractor, Outputs, Units, build_extractor
from vlpipe.features.store import ClipFeatures, FeatureStore, StoreWriter
from vlpipe.progress import Progress
from vlpipe.provenance import code_identity

log = logging.getLogger(__name__)
BAD_CLIPS = ("fail", "quarantine")


class ClipError(RuntimeError):
    """A clip an extraction job cannot use: ``clip_id``, ``video_path`` and ``reason``; the
    message names all three."""

    def __init__(self, clip_id: str, video_path: str, reason: str) -> None:
        super().__init__(clip_id, video_path, reason)
        self.clip_id, self.video_path, self.reason = clip_id, video_path, reason

    def __str__(self) -> str:
        return f"clip {self.clip_id!r} ({self.video_path}): {self.reason}"


def clip_identity(row) -> str:
    return f"{row.video_path}|{row.size}|{row.mtime_ns}|{row.start}|{row.end}"


@dataclass
class PreparedClip:
    clip_id: str
    identity: str
    units: dict[str, Units]  # extractor name → its units, inputs as numpy (see __getitem__)


@dataclass
class BadClip:
    """A clip that could not be decoded or prepared: returned, not raised, by the workers, so
    one bad clip does not end the loader."""

    clip_id: str
    identity: str
    video_path: str
    reason: str

    def record(self) -> dict[str, str]:
        return {"video_path": self.video_path, "identity": self.identity, "reason": self.reason}


class PreparedClips(Dataset):
    """Decodes a clip once for the extractors that need it and prepares their units (run
    inside DataLoader workers); a clip that fails gives a ``BadClip``."""

    def __init__(self, todo: list[tuple], extractors: dict[str, Extractor]) -> None:
        self.todo, self.extractors = todo, extractors  # todo: (row, [extractor names])

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int) -> PreparedClip | BadClip:
        row, names = self.todo[i]
        identity = clip_identity(row)
        try:
            media = decode_media(row.video_path, [self.extractors[n].needs for n in names],
                                 row.start, row.end)
        except DecodeError as err:
            return BadClip(row.clip_id, identity, row.video_path, err.reason)
        if media.corrupt_frames:
            log.warning("clip %r (%s): %d frames decoded with concealed errors", row.clip_id,
                        row.video_path, media.corrupt_frames)
        units = {}
        for name in names:
            try:
                units[name] = self.extractors[name].prepare(media)
            except Exception as err:  # e.g. too short for a window; the log keeps the trace
                log.warning("clip %r: %s cannot prepare it", row.clip_id, name, exc_info=True)
                return BadClip(row.clip_id, identity, row.video_path,
                               f"{name}: cannot prepare the clip ({type(err).__name__}: {err})")
        # Inputs travel to the main process as numpy, pickled through the worker's pipe: torch
        # tensors would go through shared memory with a file-descriptor handshake each, which
        # cost ~9 ms per clip in the main process (measured), more than decoding saved.
        return PreparedClip(row.clip_id, identity,
                            {n: replace(u, inputs=u.inputs.numpy()) for n, u in units.items()})


def single_threaded_worker(_: int) -> None:
    """Decode workers run side by side: each keeps to one BLAS thread (torch already sets one
    thread per worker), else N workers × all-cores BLAS pools fight over the cores (measured:
    two workers no faster than none for VGGish's log-mel)."""
    threadpool_limits(1)


def _rows(outputs: Outputs) -> int:
    return len(next(iter(outputs.values())))


def _take(done: list[Outputs], count: int) -> Outputs:
    """Pop the first ``count`` rows off a queue of batch outputs (arrays or ragged lists)."""
    parts = []
    while count > 0:
        rows = _rows(done[0])
        if rows <= count:
            parts.append(done.pop(0))
        else:
            parts.append({name: value[:count] for name, value in done[0].items()})
            done[0] = {name: value[count:] for name, value in done[0].items()}
        count -= min(rows, count)
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) if isinstance(parts[0][name],
            np.ndarray) else [entry for p in parts for entry in p[name]] for name in parts[0]}


class _Batcher:
    """Runs one extractor on batches of exactly ``size`` units (only the last may be smaller),
    cut from consecutive clips, so cuDNN's autotuner sees one shape; a clip's outputs may come
    from two batches. A clip is finished and written once all its units have run."""

    def __init__(self, extractor: Extractor, size: int, writer: StoreWriter) -> None:
        self.extractor, self.size, self.writer = extractor, size, writer
        self.waiting: deque[tuple[str, str, Units]] = deque()  # clips not yet finished
        self.queue: list[np.ndarray] = []  # their inputs not yet run
        self.queued = 0
        self.done: list[Outputs] = []  # outputs of run units not yet handed to a clip
        self.ready = 0
        self.computed = 0

    def add(self, clip_id: str, identity: str, units: Units) -> None:
        self.waiting.append((clip_id, identity, units))
        self.queue.append(units.inputs)
        self.queued += len(units)
        while self.queued >= self.size:
            self._run(self.size)
        self._finish_ready()

    def flush(self) -> None:
        if self.queued:
            self._run(self.queued)
        self._finish_ready()

    @torch.inference_mode()
    def _run(self, count: int) -> None:
        # (queued, ...); one queued array (a long clip's remainder) is sliced, not copied again
        inputs = self.queue[0] if len(self.queue) == 1 else np.concatenate(self.queue)
        self.queue = [inputs[count:]] if count < len(inputs) else []
        self.queued -= count
        self.done.append(self.extractor.forward(torch.from_numpy(inputs[:count])))
        self.ready += count

    def _finish_ready(self) -> None:
        while self.waiting and len(self.waiting[0][2]) <= self.ready:
            clip_id, identity, units = self.waiting.popleft()
            outputs = _take(self.done, len(units)) if len(units) else {}
            self.ready -= len(units)
            arrays = self.extractor.finish(units, outputs)
            self.writer.add(ClipFeatures(clip_id, identity, units.times, arrays))
            self.computed += 1


def _previous(store_path: Path, provenance: dict, code: dict) -> FeatureStore | None:
    """The store's previous version if its clips can be reused (same provenance, made by the
    same extraction code)."""
    if not store_path.exists():
        return None
    try:
        old = FeatureStore(store_path)
    except (KeyError, OSError, ValueError) as err:  # e.g. written by an older vlpipe
        log.warning("%s: cannot read the previous store (%s); recomputing every clip",
                    store_path, err)
        return None
    same_code = old.attrs.get("code", {}).get("step_fingerprint") == code["step_fingerprint"]
    return old if old.attrs.get("provenance") == provenance and same_code else None


def extract_shard(shard_file: str | Path, stores: dict[str, str | Path],
                  settings: dict[str, dict], device: str = "auto", batch_frames: int = 64,
                  num_workers: int = 1, built: dict[str, Extractor] | None = None,
                  bad_clips: str = "fail") -> dict[str, dict]:
    """Run the extractors ``settings`` (name → settings, ``kind`` defaulting to the name) on the
    clips of ``shard_file``, writing ``stores[name]``; return each store's attrs.

    ``built`` may hold extractors already built from the same settings (benchmarks reuse one);
    ``bad_clips`` is "fail" or "quarantine" (see the module docstring). On the CPU the network
    runs on at most ``vlpipe.device.CPU_BATCH_FRAMES`` frames at a time, with glibc's heap
    kept for reuse (``keep_cpu_heap``).
    """
    if bad_clips not in BAD_CLIPS:
        raise ValueError(f"bad_clips must be one of {BAD_CLIPS}, got {bad_clips!r}")
    clips = pd.read_parquet(shard_file)
    rows = list(clips.itertuples(index=False))
    identities = {row.clip_id: clip_identity(row) for row in rows}
    target = resolve_device(device)
    if target.type == "cpu":
        keep_cpu_heap()
    frames_per_batch = batch_frames_on(target, batch_frames)
    torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its kernels
    extractors, previous, writers, batchers, reused = {}, {}, {}, {}, {}
    code = code_identity("extract")
    for name, options in settings.items():
        extractor = (built or {}).get(name) or build_extractor(name, options)
        extractor.to(target)
        provenance = {**extractor.provenance(), "settings": settings[name]}
        extractors[name] = extractor
        previous[name] = _previous(Path(stores[name]), provenance, code)
        old = previous[name]
        reused[name] = {c for c, i in identities.items()
                        if old is not None and old.identities.get(c) == i}
        arrays = {k: (v.shape, v.dtype, v.axis) for k, v in extractor.outputs.items()}
        attrs = {"provenance": provenance, "code": code, "vlpipe_version": __version__}
        writers[name] = StoreWriter(stores[name], arrays, attrs)
        units_per_batch = max(1, frames_per_batch // extractor.frames_per_unit)
        batchers[name] = _Batcher(extractor, units_per_batch, writers[name])
    # clip → record; a quarantined clip whose identity is unchanged is not decoded again
    quarantined = {c: record for old in previous.values() if old and bad_clips == "quarantine"
                   for c, record in old.quarantined.items()
                   if identities.get(c) == record["identity"]}
    try:
        todo = [(row, [n for n in settings if row.clip_id not in reused[n]]) for row in rows
                if row.clip_id not in quarantined]
        todo = [(row, names) for row, names in todo if names]
        what = f"{Path(shard_file).name} ({', '.join(settings)})"
        log.info("%s: %d of %d clips to compute", what, len(todo), len(rows))
        progress = Progress(log, what, len(todo))
        loader = DataLoader(PreparedClips(todo, extractors), batch_size=None,
                            num_workers=num_workers, worker_init_fn=single_threaded_worker,
                            prefetch_factor=4 if num_workers else None)
        for prepared in loader:
            progress.step()
            if isinstance(prepared, BadClip):
                if bad_clips == "fail":
                    raise ClipError(prepared.clip_id, prepared.video_path, prepared.reason)
                log.warning("clip %r (%s) quarantined: %s", prepared.clip_id,
                            prepared.video_path, prepared.reason)
                quarantined[prepared.clip_id] = prepared.record()
                continue
            for name, units in prepared.units.items():
                batchers[name].add(prepared.clip_id, prepared.identity, units)
        for batcher in batchers.values():
            batcher.flush()
        progress.finish()
        # reused clips last: a clip that failed for one extractor is in none of the stores
        for name, old in previous.items():
            reused[name] -= set(quarantined)
            for clip in old.iter_clips() if reused[name] else ():
                if clip.clip_id in reused[name]:
                    writers[name].add(clip)
    except BaseException as error:
        for writer in writers.values():
            writer.abort(error)
        raise
    quarantined = dict(sorted(quarantined.items()))
    results = {}
    for name, writer in writers.items():
        counts = {"clips": len(rows), "recomputed": batchers[name].computed,
                  "reused": len(reused[name]),
                  "removed": len(set(previous[name].identities) - set(identities))
                  if previous[name] else 0, "quarantined": len(quarantined)}
        writer.attrs.update(counts=counts, quarantined=quarantined)
        results[name] = writer.close()
        log.info("%s: %s", stores[name], counts)
    return results
