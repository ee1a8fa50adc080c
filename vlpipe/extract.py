"""Feature extraction for one (extractor, shard): decode in DataLoader workers, run the network
on batches of frames that span clips, and write the shard's store.

Incremental: a clip whose identity (file, size, mtime, span) and extractor settings match the
previous store keeps its features; only new or changed clips are decoded and recomputed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from vlpipe import __version__
from vlpipe.decode import DecodeError, FrameSpec, decode_clip
from vlpipe.extractors import Extractor, build_extractor
from vlpipe.features import ClipFeatures, FeatureStore, write_store

log = logging.getLogger(__name__)


def clip_identity(row) -> str:
    return f"{row.video_path}|{row.size}|{row.mtime_ns}|{row.start}|{row.end}"


class DecodedClips(Dataset):
    """Decodes one clip per item (run inside DataLoader workers)."""

    def __init__(self, clips: pd.DataFrame, spec: FrameSpec) -> None:
        self.rows = list(clips.itertuples(index=False))
        self.spec = spec

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple:
        row = self.rows[i]
        try:
            frames, times = decode_clip(row.video_path, self.spec, row.start, row.end)
        except DecodeError as err:
            raise DecodeError(f"clip {row.clip_id!r}: {err}") from None
        return row.clip_id, clip_identity(row), torch.from_numpy(frames), times - row.start


def _batched(loader: DataLoader, batch_frames: int) -> Iterator[list[tuple]]:
    """Group decoded clips until they hold at least ``batch_frames`` frames."""
    pending, count = [], 0
    for clip in loader:
        pending.append(clip)
        count += len(clip[2])
        if count >= batch_frames:
            yield pending
            pending, count = [], 0
    if pending:
        yield pending


def compute_features(extractor: Extractor, clips: pd.DataFrame, batch_frames: int = 64,
                     num_workers: int = 1) -> Iterator[ClipFeatures]:
    """Yield the features of every clip in ``clips``."""
    loader = DataLoader(DecodedClips(clips, extractor.frame_spec), batch_size=None,
                        num_workers=num_workers, prefetch_factor=4 if num_workers else None)
    for group in _batched(loader, batch_frames):
        # (sum_T, H, W, 3) → (sum_T, dim), split back per clip
        features = extractor(torch.cat([frames for _, _, frames, _ in group]))
        bounds = np.cumsum([len(frames) for _, _, frames, _ in group])[:-1]
        for (clip_id, identity, _, times), feats in zip(group, np.split(features, bounds),
                                                          strict=True):
            yield ClipFeatures(clip_id, identity, feats, times)


def _reusable(store_path: Path, provenance: dict) -> FeatureStore | None:
    if not store_path.exists():
        return None
    old = FeatureStore(store_path)
    return old if old.attrs.get("provenance") == provenance else None


def extract_shard(shard_file: str | Path, store_path: str | Path, kind: str, settings: dict,
                  device: str = "auto", batch_frames: int = 64, num_workers: int = 1,
                  dtype: str = "float16") -> dict:
    """Extract ``kind`` features for the clips of ``shard_file`` into ``store_path``."""
    store_path = Path(store_path)
    clips = pd.read_parquet(shard_file)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    extractor = build_extractor(kind, **settings).to(torch.device(device))
    provenance = {**extractor.provenance(), "settings": settings, "dtype": dtype}
    old = _reusable(store_path, provenance)
    identities = [clip_identity(row) for row in clips.itertuples(index=False)]
    keep = [old is not None and old.identities.get(c) == i
            for c, i in zip(clips["clip_id"], identities, strict=True)]
    computed = {c.clip_id: c for c in compute_features(
        extractor, clips[[not k for k in keep]], batch_frames, num_workers)}
    ordered = []
    for clip_id, identity, kept in zip(clips["clip_id"], identities, keep, strict=True):
        if kept:
            features, times = old[clip_id]
            ordered.append(ClipFeatures(clip_id, identity, features, times))
        else:
            ordered.append(computed[clip_id])
    attrs = {"provenance": provenance, "vlpipe_version": __version__,
             "counts": {"clips": len(ordered), "recomputed": len(computed),
                        "reused": sum(keep)}}
    log.info("%s: %d clips (%d recomputed, %d reused)", store_path, len(ordered),
             len(computed), sum(keep))
    return write_store(store_path, ordered, extractor.dim, attrs, dtype=dtype)
