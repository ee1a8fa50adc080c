"""Feature store layout (Zarr v3 group, one per extractor and shard)::

    shard-000.zarr/
      features  (total_steps, dim)  every clip's time steps, contiguous per clip, row-chunked
      times     (total_steps,)      seconds from the clip start of each step
      clip_id   (n_clips,) str      the index: clip i owns rows offset[i] : offset[i] + length[i]
      offset, length (n_clips,) int64
      identity  (n_clips,) str      what the clip's features depend on (file, size, mtime, span)
      attrs: provenance (extractor, version, weights, fps, ...), code version, clip counts

The store is built in a temporary sibling and renamed into place, so a reader never sees a
half-written store.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from vlpipe.atomic import atomic_path

ROW_CHUNK = 256


@dataclass
class ClipFeatures:
    clip_id: str
    identity: str
    features: np.ndarray  # (T, dim)
    times: np.ndarray  # (T,)


class FeatureStore:
    """Read access to one store: ``store[clip_id] -> (features (T, dim), times (T,))``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs = dict(self.group.attrs)
        ids = self.group["clip_id"][:]
        offsets, lengths = self.group["offset"][:], self.group["length"][:]
        self.index = {str(c): (int(o), int(n)) for c, o, n in zip(ids, offsets, lengths,
                                                                   strict=True)}
        self.identities = dict(zip(map(str, ids), map(str, self.group["identity"][:]),
                                   strict=True))

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.index

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
        try:
            offset, length = self.index[clip_id]
        except KeyError:
            raise KeyError(f"{self.path}: no features for clip {clip_id!r}") from None
        rows = slice(offset, offset + length)
        return self.group["features"][rows], self.group["times"][rows]

    def read_all(self) -> dict[str, np.ndarray]:
        """Every clip's features at once (one sequential read of the array)."""
        features = self.group["features"][:]
        return {c: features[o : o + n] for c, (o, n) in self.index.items()}


def write_store(path: str | Path, clips: Iterable[ClipFeatures], dim: int, attrs: dict,
                dtype: str = "float16") -> dict:
    """Write ``clips`` (in order) as a new store at ``path``, atomically; return its attrs."""
    clips = list(clips)
    lengths = np.array([len(c.features) for c in clips], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    total = int(lengths.sum())
    with atomic_path(path, directory=True) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        features = group.create_array("features", shape=(total, dim), dtype=dtype,
                                      chunks=(ROW_CHUNK, dim))
        times = group.create_array("times", shape=(total,), dtype="float32",
                                   chunks=(max(total, 1),))
        if total:
            features[:] = np.concatenate([c.features for c in clips]).astype(dtype)
            times[:] = np.concatenate([c.times for c in clips]).astype("float32")
        n = max(len(clips), 1)
        for name, values, kind in [("clip_id", [c.clip_id for c in clips], str),
                                   ("identity", [c.identity for c in clips], str),
                                   ("offset", offsets, "int64"), ("length", lengths, "int64")]:
            array = group.create_array(name, shape=(len(clips),), dtype=kind, chunks=(n,))
            if len(clips):
                array[:] = np.asarray(values)
        group.attrs.update(attrs)
    return attrs
