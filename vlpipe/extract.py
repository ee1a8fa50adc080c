"""One extraction job: a shard's clips through one or more extractors, one store each.

Each clip that any extractor has to (re)compute is decoded once, in a DataLoader worker, for
the union of what those extractors need; each extractor prepares its units there too. The main
process batches units across clips per extractor, runs the network on the device and streams
the results into the new store.

Incremental: a clip whose identity (file, size, mtime, span) matches the previous store, with
the same extractor provenance (settings, version, weights), keeps its arrays; removed clips
disappear; only new or changed clips are decoded and recomputed.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from vlpipe import __version__
from vlpipe.decode import DecodeError, decode_media
from vlpipe.extractors import Extractor, Units, build_extractor
from vlpipe.features.store import ClipFeatures, FeatureStore, StoreWriter

log = logging.getLogger(__name__)


def clip_identity(row) -> str:
    return f"{row.video_path}|{row.size}|{row.mtime_ns}|{row.start}|{row.end}"


@dataclass
class PreparedClip:
    clip_id: str
    identity: str
    units: dict[str, Units]  # extractor name → its units


class PreparedClips(Dataset):
    """Decodes a clip once for the extractors that need it and prepares their units (run
    inside DataLoader workers)."""

    def __init__(self, todo: list[tuple], extractors: dict[str, Extractor]) -> None:
        self.todo, self.extractors = todo, extractors  # todo: (row, [extractor names])

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, i: int) -> PreparedClip:
        row, names = self.todo[i]
        try:
            media = decode_media(row.video_path, [self.extractors[n].needs for n in names],
                                 row.start, row.end)
        except DecodeError as err:
            raise DecodeError(f"clip {row.clip_id!r}: {err}") from None
        units = {n: self.extractors[n].prepare(media) for n in names}
        return PreparedClip(row.clip_id, clip_identity(row), units)


def _split(outputs: dict, counts: list[int]) -> Iterator[dict]:
    """Outputs for N units → one dict per clip, by the clips' unit counts."""
    bounds = np.cumsum([0, *counts])
    for lo, hi in itertools.pairwise(bounds):
        yield {name: value[lo:hi] for name, value in outputs.items()}


class _Batcher:
    """Collects one extractor's units across clips and runs full batches."""

    def __init__(self, extractor: Extractor, units_per_batch: int, writer: StoreWriter) -> None:
        self.extractor, self.limit, self.writer = extractor, units_per_batch, writer
        self.pending: list[tuple[str, str, Units]] = []
        self.computed = 0

    def add(self, clip_id: str, identity: str, units: Units) -> None:
        self.pending.append((clip_id, identity, units))
        if sum(len(u) for _, _, u in self.pending) >= self.limit:
            self.flush()

    @torch.inference_mode()
    def flush(self) -> None:
        if not self.pending:
            return
        # (sum of U over clips, ...) → outputs with the same number of rows, split per clip
        inputs = torch.cat([units.inputs for _, _, units in self.pending])
        outputs = self.extractor.forward(inputs) if len(inputs) else {}
        counts = [len(units) for _, _, units in self.pending]
        per_clip = _split(outputs, counts) if outputs else ({} for _ in counts)
        for (clip_id, identity, units), clip_outputs in zip(self.pending, per_clip, strict=True):
            arrays = self.extractor.finish(units, clip_outputs)
            self.writer.add(ClipFeatures(clip_id, identity, units.times, arrays))
            self.computed += 1
        self.pending = []


def _previous(store_path: Path, provenance: dict) -> FeatureStore | None:
    if not store_path.exists():
        return None
    old = FeatureStore(store_path)
    return old if old.attrs.get("provenance") == provenance else None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def extract_shard(shard_file: str | Path, stores: dict[str, str | Path],
                  settings: dict[str, dict], device: str = "auto", batch_frames: int = 64,
                  num_workers: int = 1,
                  built: dict[str, Extractor] | None = None) -> dict[str, dict]:
    """Run the extractors ``settings`` (name → settings, ``kind`` defaulting to the name) on the
    clips of ``shard_file``, writing ``stores[name]``; return each store's attrs.

    ``built`` may hold extractors already built from the same settings (benchmarks reuse one).
    """
    clips = pd.read_parquet(shard_file)
    rows = list(clips.itertuples(index=False))
    identities = [clip_identity(row) for row in rows]
    target = resolve_device(device)
    torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its kernels
    extractors, previous, writers, batchers, reused = {}, {}, {}, {}, {}
    for name, options in settings.items():
        extractor = (built or {}).get(name) or build_extractor(name, options)
        extractor.to(target)
        provenance = {**extractor.provenance(), "settings": settings[name]}
        extractors[name], previous[name] = extractor, _previous(Path(stores[name]), provenance)
        old = previous[name]
        reused[name] = {c for c, i in zip(clips["clip_id"], identities, strict=True)
                        if old is not None and old.identities.get(c) == i}
        arrays = {k: (v.shape, v.dtype, v.axis) for k, v in extractor.outputs.items()}
        attrs = {"provenance": provenance, "vlpipe_version": __version__}
        writers[name] = StoreWriter(stores[name], arrays, attrs)
        units_per_batch = max(1, batch_frames // extractor.frames_per_unit)
        batchers[name] = _Batcher(extractor, units_per_batch, writers[name])
    try:
        for name, old in previous.items():
            for clip in old.iter_clips() if reused[name] else ():
                if clip.clip_id in reused[name]:
                    writers[name].add(clip)
        todo = [(row, [n for n in settings if row.clip_id not in reused[n]]) for row in rows]
        todo = [(row, names) for row, names in todo if names]
        loader = DataLoader(PreparedClips(todo, extractors), batch_size=None,
                            num_workers=num_workers,
                            prefetch_factor=4 if num_workers else None)
        for prepared in loader:
            for name, units in prepared.units.items():
                batchers[name].add(prepared.clip_id, prepared.identity, units)
        for batcher in batchers.values():
            batcher.flush()
    except BaseException as error:
        for writer in writers.values():
            writer.abort(error)
        raise
    results = {}
    for name, writer in writers.items():
        counts = {"clips": len(rows), "recomputed": batchers[name].computed,
                  "reused": len(reused[name]),
                  "removed": len(set(previous[name].identities) - set(clips["clip_id"]))
                  if previous[name] else 0}
        writer.attrs["counts"] = counts
        results[name] = writer.close()
        log.info("%s: %s", stores[name], counts)
    return results
