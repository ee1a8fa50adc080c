"""Feature stores: one Zarr v3 group per (extractor, shard).

Layout::

    shard-000.zarr/
      step/times     (S,) float32      seconds from the clip start of every step of every clip
      step/<name>    (S, *shape)       per-step arrays (pool5, res5c grid, audio mask, ...)
      instance/<name> (I, *shape)      per-detection arrays (boxes, embeddings, track ids, ...);
                                       instance/step says which of its clip's steps it is in
      index/clip_id, index/identity    (n_clips,) str
      index/step_offset, step_length, instance_offset, instance_length   (n_clips,) int64
      attrs: provenance (extractor, version, weights, decode spec, outputs), arrays, counts,
             quarantined (clip_id → video_path, identity, reason: clips left out as bad input)

A clip's rows are contiguous (clip i owns steps ``step_offset[i] : + step_length[i]``), and
arrays are chunked along rows (about 1 MiB per chunk), so reading one clip touches one or two
chunks and reading a whole shard is sequential. A reader keeps the chunks it decoded (up to
``CACHED_CHUNK_BYTES``, least recently used out first): zarr decodes a whole chunk for every
read, and reading a store's clips one by one would decode each chunk once per clip in it.
Stores are written to a temporary sibling and renamed into place: a reader never sees a
half-written store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from vlpipe.atomic import atomic_path

AXES = ("step", "instance")
CHUNK_BYTES = 1 << 20
READ_ROWS = 8192  # rows per sequential read in ``iter_clips``
CACHED_CHUNK_BYTES = 128 << 20  # decoded chunks a reader keeps (``FeatureStore.read``)


@dataclass
class ClipFeatures:
    """One clip's arrays: ``times (T,)`` and ``arrays[name]`` with T (step) or any number of
    (instance) rows."""

    clip_id: str
    identity: str
    times: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def chunk_rows(shape: tuple[int, ...], dtype: str) -> int:
    row_bytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return int(max(1, min(16384, CHUNK_BYTES // max(row_bytes, 1))))


class StoreWriter:
    """Streams clips into a new store; ``close`` publishes it atomically.

    ``arrays`` maps a name to ``(shape, dtype, axis)`` of one row. Rows are buffered and written
    a whole chunk at a time, so memory stays bounded by one chunk per array.
    """

    def __init__(self, path: str | Path, arrays: dict[str, tuple[tuple[int, ...], str, str]],
                 attrs: dict) -> None:
        self.path, self.attrs = Path(path), attrs
        self.specs = {name: (tuple(shape), dtype, axis) for name, (shape, dtype, axis)
                      in arrays.items()}
        if any(axis not in AXES for _, _, axis in self.specs.values()):
            raise ValueError(f"{self.path}: array axes must be one of {AXES}: {self.specs}")
        self._publish = atomic_path(self.path, directory=True)
        tmp = self._publish.__enter__()
        step_specs = {"times": ((), "float32", "step"), **self.specs}
        self.arrays = {}
        try:
            self.group = zarr.open_group(str(tmp), mode="w")
            for name, (shape, dtype, axis) in step_specs.items():
                self.arrays[(axis, name)] = self.group.create_array(
                    f"{axis}/{name}", shape=(0, *shape), dtype=dtype,
                    chunks=(chunk_rows(shape, dtype), *shape))
        except BaseException as failure:  # e.g. a full disk: no temporary left behind
            self.abort(failure)
            raise
        self.buffers: dict[tuple[str, str], list[np.ndarray]] = {k: [] for k in self.arrays}
        self.index: dict[str, list] = {k: [] for k in ["clip_id", "identity", "step_length",
                                                       "instance_length"]}

    def add(self, clip: ClipFeatures) -> None:
        if set(clip.arrays) != set(self.specs):
            raise ValueError(f"clip {clip.clip_id!r}: arrays {sorted(clip.arrays)} != "
                             f"{sorted(self.specs)}")
        lengths = {"step": len(clip.times), "instance": None}
        for name, (shape, dtype, axis) in self.specs.items():
            rows = np.asarray(clip.arrays[name])
            if rows.shape[1:] != shape:
                raise ValueError(f"clip {clip.clip_id!r}: {name} rows are {rows.shape[1:]}, "
                                 f"expected {shape}")
            if lengths[axis] is None:
                lengths[axis] = len(rows)
            if len(rows) != lengths[axis]:
                raise ValueError(f"clip {clip.clip_id!r}: {name} has {len(rows)} rows, its "
                                 f"{axis} arrays have {lengths[axis]}")
            self._append(axis, name, rows.astype(dtype, copy=False))
        self._append("step", "times", np.asarray(clip.times, dtype=np.float32))
        self.index["clip_id"].append(clip.clip_id)
        self.index["identity"].append(clip.identity)
        self.index["step_length"].append(lengths["step"])
        self.index["instance_length"].append(lengths["instance"] or 0)

    def _append(self, axis: str, name: str, rows: np.ndarray, final: bool = False) -> None:
        key = (axis, name)
        buffer = self.buffers[key]
        if len(rows):
            buffer.append(rows)
        array = self.arrays[key]
        buffered = sum(len(b) for b in buffer)
        whole = buffered if final else buffered - buffered % array.chunks[0]
        if whole == 0:
            return
        block = np.concatenate(buffer)
        start = array.shape[0]
        array.resize((start + whole, *array.shape[1:]))
        array[start : start + whole] = block[:whole]
        self.buffers[key] = [block[whole:]] if whole < len(block) else []

    def close(self) -> dict:
        """Write what is buffered, the index and the attrs, and publish the store; if any of it
        fails (a full disk), nothing is published and the temporary is removed."""
        try:
            self._finish()
        except BaseException as failure:
            self.abort(failure)
            raise
        self._publish.__exit__(None, None, None)
        return self.attrs

    def _finish(self) -> None:
        for axis, name in self.arrays:
            self._append(axis, name, np.zeros((0, *self.arrays[(axis, name)].shape[1:])),
                         final=True)
        n = len(self.index["clip_id"])
        for axis in AXES:
            lengths = np.asarray(self.index[f"{axis}_length"], dtype=np.int64)
            self.index[f"{axis}_offset"] = np.concatenate([[0], np.cumsum(lengths)[:-1]])[:n]
        for name, values in self.index.items():
            kind = str if name in ("clip_id", "identity") else "int64"
            array = self.group.create_array(f"index/{name}", shape=(n,), dtype=kind,
                                            chunks=(max(n, 1),))
            if n:
                array[:] = np.asarray(values)
        self.attrs["arrays"] = {name: {"shape": list(shape), "dtype": dtype, "axis": axis}
                                for name, (shape, dtype, axis) in self.specs.items()}
        self.group.attrs.update(self.attrs)

    def abort(self, error: BaseException) -> None:
        self._publish.__exit__(type(error), error, error.__traceback__)

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self.abort(error)
        else:
            self.close()


class FeatureStore:
    """Read access to one store.

    ``store[clip_id]`` → ``(primary array (T, ...), times (T,))``; ``store.read(clip_id, name)``
    any array; ``store.read_all(name)`` every clip's rows of one array in one sequential read;
    ``store.quarantined`` the clips its job left out (clip_id → video_path, identity, reason).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r")
        self.attrs = dict(self.group.attrs)
        self.arrays: dict[str, dict] = self.attrs.get("arrays", {})
        self.quarantined: dict[str, dict[str, str]] = self.attrs.get("quarantined", {})
        index = {name: self.group[f"index/{name}"][:] for name in
                 ["clip_id", "identity", "step_offset", "step_length", "instance_offset",
                  "instance_length"]}
        self.clip_ids = [str(c) for c in index["clip_id"]]
        self.index = {axis: {c: (int(o), int(n)) for c, o, n in zip(
            self.clip_ids, index[f"{axis}_offset"], index[f"{axis}_length"], strict=True)}
            for axis in AXES}
        self.identities = dict(zip(self.clip_ids, map(str, index["identity"]), strict=True))
        self._opened: dict[str, zarr.Array] = {}
        self._chunks = _ChunkCache(CACHED_CHUNK_BYTES)

    @property
    def primary(self) -> str:
        return self.attrs["provenance"]["primary"]

    def __contains__(self, clip_id: str) -> bool:
        return clip_id in self.identities

    def __len__(self) -> int:
        return len(self.clip_ids)

    def _rows(self, clip_id: str, axis: str) -> slice:
        try:
            offset, length = self.index[axis][clip_id]
        except KeyError:
            raise KeyError(f"{self.path}: no features for clip {clip_id!r}") from None
        return slice(offset, offset + length)

    def _array(self, name: str) -> tuple[zarr.Array, str]:
        axis = "step" if name == "times" else self.arrays.get(name, {}).get("axis")
        if axis is None:
            raise KeyError(f"{self.path}: no array {name!r}; it has {sorted(self.arrays)}")
        key = f"{axis}/{name}"
        if key not in self._opened:
            self._opened[key] = self.group[key]
        return self._opened[key], axis

    def read(self, clip_id: str, name: str | None = None) -> np.ndarray:
        array, axis = self._array(name or self.primary)
        return self._chunks.rows(array, self._rows(clip_id, axis))

    def __getitem__(self, clip_id: str) -> tuple[np.ndarray, np.ndarray]:
        return self.read(clip_id), self.read(clip_id, "times")

    def read_all(self, name: str | None = None) -> dict[str, np.ndarray]:
        """Every clip's rows of array ``name`` (default: the primary one)."""
        array, axis = self._array(name or self.primary)
        values = array[:]
        return {c: values[o : o + n] for c, (o, n) in self.index[axis].items()}

    def iter_clips(self) -> Iterator[ClipFeatures]:
        """Every clip with all its arrays, in storage order, reading a block of rows at a time
        (memory stays bounded for large stores)."""
        names = ["times", *self.arrays]
        blocks = {name: _BlockReader(*self._array(name)) for name in names}
        for clip_id in self.clip_ids:
            rows = {name: reader.take(self.index[reader.axis][clip_id])
                    for name, reader in blocks.items()}
            times = rows.pop("times")
            yield ClipFeatures(clip_id, self.identities[clip_id], times, rows)


class _ChunkCache:
    """Decoded row chunks of a store's arrays, the most recently used up to ``limit`` bytes;
    thread-safe (a training job's prefetch thread reads beside its main thread)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.size = limit, 0
        self.chunks: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self.lock = threading.Lock()

    def _chunk(self, array: zarr.Array, k: int) -> np.ndarray:
        key = (array.path, k)
        with self.lock:
            if key in self.chunks:
                self.chunks.move_to_end(key)
                return self.chunks[key]
        rows = array.chunks[0]
        chunk = array[k * rows : (k + 1) * rows]
        with self.lock:
            if key in self.chunks:  # decoded meanwhile by the other thread
                return self.chunks[key]
            self.chunks[key] = chunk
            self.size += chunk.nbytes
            while self.size > self.limit and len(self.chunks) > 1:
                self.size -= self.chunks.popitem(last=False)[1].nbytes
        return chunk

    def rows(self, array: zarr.Array, span: slice) -> np.ndarray:
        """A copy of ``array[span]`` (rows in one or more chunks)."""
        rows = array.chunks[0]
        first, last = span.start // rows, max(span.start, span.stop - 1) // rows
        parts = [self._chunk(array, k) for k in range(first, last + 1)]
        block = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return block[span.start - first * rows : span.stop - first * rows].copy()


class _BlockReader:
    """Sequential reads of an array in blocks of ``READ_ROWS`` rows."""

    def __init__(self, array: zarr.Array, axis: str) -> None:
        self.array, self.axis = array, axis
        self.start, self.block = 0, array[:0]

    def take(self, span: tuple[int, int]) -> np.ndarray:
        offset, length = span
        end = offset + length
        if offset < self.start or end > self.start + len(self.block):
            self.start = offset
            self.block = self.array[offset : max(end, offset + READ_ROWS)]
        return self.block[offset - self.start : end - self.start]


def write_store(path: str | Path, clips, arrays: dict[str, tuple[tuple[int, ...], str, str]],
                attrs: dict) -> dict:
    """Write ``clips`` (an iterable of ``ClipFeatures``) as a new store, atomically."""
    with StoreWriter(path, arrays, attrs) as writer:
        for clip in clips:
            writer.add(clip)
    return writer.attrs


def quarantine_table(stores: dict[str, list[str | Path]]) -> pd.DataFrame:
    """One row per (clip, extractor) left out as bad input, from every extractor's stores."""
    rows = [{"clip_id": clip_id, "extractor": name, "video_path": record["video_path"],
             "reason": record["reason"]}
            for name, shard_paths in stores.items() for path in shard_paths
            for clip_id, record in FeatureStore(path).quarantined.items()]
    columns = ["clip_id", "extractor", "video_path", "reason"]
    return pd.DataFrame(rows, columns=columns).sort_values(["clip_id", "extractor"],
                                                            ignore_index=True)
