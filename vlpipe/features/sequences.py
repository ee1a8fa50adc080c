"""Per-clip feature sequences as the video-sentence tasks read them, streamed from the stores.

`SequenceFeatures` is a read-only mapping clip_id → (T, D) float32: a clip's input arrays
(`vlpipe.features.inputs.ClipArrays`, aligned by time) flattened per step and side by side, each
input normalised on its own (`vlpipe.features.normalize`, fitted on a bounded sample of the
training clips), then subsampled to at most ``max_steps`` equidistant steps. A clip is read when
it is first asked for, and a cache bounded in bytes keeps the most recently used ones (the
validation clips, read every epoch). Nothing holds the whole data set in memory; reading
overlaps with training because the training loop prepares batches in a background thread
(`vlpipe.training.prefetch`). Reads are serial: on Zarr v3, threads or one multi-clip selection
were measured slower than one read per clip (``benchmarks/stream_training.py``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from vlpipe.features.normalize import MAX_FIT_BYTES, BlockNormalizer, fit_sample, max_fit_steps
from vlpipe.models.inputs import FeatureInput
from vlpipe.planning import InputRef

CACHE_BYTES = 256 << 20


class InMemoryArrays:
    """The `ClipArrays` interface over arrays already in memory: clip_id → (T, D), one input
    named ``name`` (tests, benchmarks)."""

    def __init__(self, features: Mapping[str, np.ndarray], name: str = "video") -> None:
        self.features, self.name = features, name
        self.inputs = [InputRef(name, name)]

    def shape(self, name: str) -> tuple[int, ...]:
        return next(iter(self.features.values())).shape[1:]

    def clip_ids(self) -> list[str]:
        return list(self.features)

    def missing(self, clip_ids: Sequence[str]) -> dict[str, list[str]]:
        gaps = [c for c in clip_ids if c not in self.features]
        return {self.name: gaps} if gaps else {}

    def num_steps(self, clip_id: str) -> int:
        return len(self.features[clip_id])

    def timeline(self, clip_id: str) -> np.ndarray:
        """Step k at k seconds (the arrays carry no times)."""
        return np.arange(len(self.features[clip_id]), dtype=np.float64)

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        return {self.name: self.features[clip_id]}


def subsample(sequence: np.ndarray, max_steps: int) -> np.ndarray:
    """At most ``max_steps`` equidistant steps (JSFusion: Nmax = 40)."""
    if len(sequence) <= max_steps:
        return sequence
    return sequence[np.linspace(0, len(sequence) - 1, max_steps).round().astype(int)]


CachedClip = tuple[np.ndarray, dict[str, np.ndarray]]  # features (T, D), targets name → (T, …)


class SequenceFeatures(Mapping):
    """clip_id → normalised, subsampled (T, D) float32 features of the given clips.

    ``targets`` names inputs of ``arrays`` that are what a task predicts (RGP's gaze maps), not
    what the model reads: they are left out of the features and of normalisation, and
    `targets` returns them on the same steps.
    """

    def __init__(self, arrays, clip_ids: Sequence[str], fit_ids: Sequence[str],
                 feature_norm: str = "zscore", pca_dims: int = 64, max_steps: int = 40,
                 max_fit_bytes: int = MAX_FIT_BYTES, cache_bytes: int = CACHE_BYTES,
                 targets: Sequence[str] = ()) -> None:
        missing = arrays.missing(clip_ids)
        for extractor, ids in missing.items():
            raise KeyError(f"no {extractor} features for clip(s) {ids[:5]} "
                           f"({len(ids)} of {len(clip_ids)})")
        self.arrays, self.max_steps = arrays, max_steps
        self.clip_ids = list(clip_ids)
        self._known = set(self.clip_ids)
        unknown = sorted(set(targets) - {ref.name for ref in arrays.inputs})
        if unknown:
            raise KeyError(f"targets {unknown} are not among the inputs "
                           f"{[ref.name for ref in arrays.inputs]}")
        self.target_names = list(targets)
        model_inputs = [ref for ref in arrays.inputs if ref.name not in self.target_names]
        self.names = [ref.name for ref in model_inputs]
        self.sources = [ref.source for ref in model_inputs]
        self.shapes = [tuple(arrays.shape(name)) for name in self.names]
        blocks = [int(np.prod(shape)) for shape in self.shapes]
        fit_ids = [c for c in fit_ids if c in self._known]
        sample = fit_sample(fit_ids, [arrays.num_steps(c) for c in fit_ids],
                            max_fit_steps(sum(blocks), max_fit_bytes))
        self.normalizer = BlockNormalizer(feature_norm, [self._read(c)[0] for c in sample],
                                          blocks, pca_dims)
        self._cache: OrderedDict[str, CachedClip] = OrderedDict()
        self._cache_bytes, self._cached_bytes = cache_bytes, 0
        self._lock = threading.Lock()  # the prefetch thread and the evaluation share the cache

    def _read(self, clip_id: str) -> CachedClip:
        """The clip's model inputs flattened per step and side by side, (T, ΣD) float32, and
        its targets as stored."""
        rows = self.arrays.read(clip_id)
        steps = len(next(iter(rows.values())))
        flat = np.concatenate([rows[name].reshape(steps, -1) for name in self.names],
                              axis=1).astype(np.float32)
        return flat, {name: rows[name] for name in self.target_names}

    def inputs(self) -> tuple[FeatureInput, ...]:
        """The model's view of the inputs, one block per input after normalisation: its stored
        shape (a grid stays (h, w, C)) unless PCA changed its width, else ``(width,)``."""
        return tuple(
            FeatureInput(name, source, shape if width == int(np.prod(shape)) else (width,))
            for name, source, shape, width
            in zip(self.names, self.sources, self.shapes, self.normalizer.widths, strict=True))

    @property
    def dim(self) -> int:
        return sum(self.normalizer.widths)

    def _item(self, clip_id: str) -> CachedClip:
        with self._lock:
            if clip_id in self._cache:
                self._cache.move_to_end(clip_id)
                return self._cache[clip_id]
        if clip_id not in self._known:
            raise KeyError(f"clip {clip_id!r} is not among this run's clips")
        flat, targets = self._read(clip_id)
        item = (subsample(self.normalizer(flat), self.max_steps),
                {name: subsample(rows, self.max_steps) for name, rows in targets.items()})
        size = item[0].nbytes + sum(rows.nbytes for rows in item[1].values())
        with self._lock:
            self._cache[clip_id] = item
            self._cached_bytes += size
            while self._cached_bytes > self._cache_bytes and len(self._cache) > 1:
                features, old = self._cache.popitem(last=False)[1]
                self._cached_bytes -= features.nbytes + sum(r.nbytes for r in old.values())
        return item

    def __getitem__(self, clip_id: str) -> np.ndarray:
        return self._item(clip_id)[0]

    def targets(self, clip_id: str) -> dict[str, np.ndarray]:
        """The clip's targets on the steps of its features: name → (T, *shape)."""
        return self._item(clip_id)[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self.clip_ids)

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._known
