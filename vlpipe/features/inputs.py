"""A run's feature inputs: named arrays of the stores, aligned by time, read per clip on demand.

An experiment names its inputs (``inputs: {scene: googlenet/pool5, motion: c3d/conv5b}``) or
lists extractors (``features: [resnet152, vggish]``: each extractor's primary array, named after
it). `ClipArrays` opens every shard store of every input once (their indices only) and reads
one clip's rows when asked, so memory does not grow with the data set.

Alignment is by the stores' ``step/times``, never by step index: the first input's steps are
the clip's timeline, and each other input contributes, at each of those times, its last step
at or before it. Windowed extractors stamp a step at its window's end (C3D at 25 fps, stride
5: 0.6 s, 0.8 s, …), so this is the window that ends at (or just before) the frame, as GEAN
specifies; timeline steps before an input's first step take that first step. The timeline ends
where the shortest input ends: a step more than half an input's step interval after that
input's last step is cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from vlpipe.features.store import FeatureStore
from vlpipe.planning import InputRef


def step_interval(times: np.ndarray) -> float:
    """The typical spacing of a clip's steps (inf for a single step)."""
    return float(np.median(np.diff(times))) if len(times) > 1 else np.inf


def align_steps(timeline: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Row of ``times`` for each ``timeline`` step (see the module docstring), and only for the
    steps kept: the result has one entry per timeline step up to where ``times`` ends.

    timeline (T,), times (S,) ascending → (T',) int64 with T' ≤ T.
    """
    if len(times) == 0:
        return np.zeros(0, np.int64)
    last = times[-1] + step_interval(times) / 2
    kept = timeline[timeline <= last + 1e-6]
    rows = np.searchsorted(times, kept + 1e-6, side="right") - 1  # last step at or before
    return np.maximum(rows, 0)


class ClipArrays:
    """Named per-step arrays of clips, aligned on one timeline, read from the stores on demand.

    ``stores`` maps an extractor to its shard stores (``EXTRACTOR=STORE`` arguments, grouped).
    """

    def __init__(self, inputs: Sequence[InputRef], stores: Mapping[str, Sequence[str | Path]]):
        if not inputs:
            raise ValueError("a run needs at least one feature input")
        missing = sorted({ref.extractor for ref in inputs} - set(stores))
        if missing:
            raise KeyError(f"no stores given for extractor(s) {missing}; given: {sorted(stores)}")
        self.inputs = list(inputs)
        self.stores = {extractor: [FeatureStore(p) for p in paths]
                       for extractor, paths in stores.items()}
        self._home = {extractor: {c: store for store in shard_stores for c in store.clip_ids}
                      for extractor, shard_stores in self.stores.items()}
        # every clip's step times, read once (4 bytes a step): one Zarr read per clip and input
        self._times = {extractor: {c: t for store in shard_stores
                                   for c, t in store.read_all("times").items()}
                       for extractor, shard_stores in self.stores.items()}
        for ref in self.inputs:
            self._array_spec(ref)  # every named array exists

    def _array_spec(self, ref: InputRef) -> dict:
        store = self.stores[ref.extractor][0]
        name = ref.array or store.primary
        if name not in store.arrays or store.arrays[name]["axis"] != "step":
            steps = sorted(n for n, a in store.arrays.items() if a["axis"] == "step")
            raise KeyError(f"input {ref.name!r}: {store.path} has no per-step array {name!r}; "
                           f"its per-step arrays: {steps}")
        return store.arrays[name]

    def shape(self, name: str) -> tuple[int, ...]:
        """One step's shape of input ``name``."""
        ref = next(ref for ref in self.inputs if ref.name == name)
        return tuple(self._array_spec(ref)["shape"])

    def clip_ids(self) -> list[str]:
        """Clips every input has, in the first input's store order."""
        first, *others = (self._home[ref.extractor] for ref in self.inputs)
        return [c for c in first if all(c in other for other in others)]

    def missing(self, clip_ids: Sequence[str]) -> dict[str, list[str]]:
        """Extractor → the given clips its stores lack."""
        gaps = {extractor: [c for c in clip_ids if c not in home]
                for extractor, home in self._home.items()}
        return {extractor: ids for extractor, ids in gaps.items() if ids}

    def quarantined(self) -> dict[str, str]:
        """Clips the extraction jobs of these stores left out as bad input: clip → reason."""
        return {clip_id: record["reason"] for shard_stores in self.stores.values()
                for store in shard_stores for clip_id, record in store.quarantined.items()}

    def store_paths(self) -> list[str]:
        """The first shard store of each extractor read (their provenance is the same)."""
        return [str(shard_stores[0].path) for shard_stores in self.stores.values()]

    def timeline(self, clip_id: str) -> np.ndarray:
        """The times (s) of the clip's steps: the first input's, as `read` aligns to them."""
        return self._times[self.inputs[0].extractor][clip_id]

    def num_steps(self, clip_id: str) -> int:
        """Steps of the clip's timeline before alignment cuts it (from the index, no read)."""
        ref = self.inputs[0]
        return self._home[ref.extractor][clip_id].index["step"][clip_id][1]

    def read_all(self, extractor: str, name: str) -> dict[str, np.ndarray]:
        """One array of every clip in ``extractor``'s stores (a sequential read per store)."""
        return {c: rows for store in self.stores[extractor] for c, rows in
                store.read_all(name).items()}

    def step_times(self, extractor: str, clip_id: str) -> np.ndarray:
        """The times (s) of the clip's steps in ``extractor``'s store (before any alignment)."""
        return self._times[extractor][clip_id]

    def instance_shape(self, extractor: str, name: str) -> tuple[int, ...]:
        """One row's shape of ``extractor``'s per-instance array ``name``."""
        arrays = self.stores[extractor][0].arrays
        if arrays.get(name, {}).get("axis") != "instance":
            raise KeyError(f"{self.stores[extractor][0].path} has no per-instance array {name!r}")
        return tuple(arrays[name]["shape"])

    def read_instances(self, extractor: str, clip_id: str,
                       names: Sequence[str]) -> dict[str, np.ndarray]:
        """Per-instance arrays of one clip from ``extractor``'s stores (not aligned: instance
        rows say their step themselves, in ``instance/step``)."""
        store = self._home[extractor].get(clip_id)
        if store is None:
            raise KeyError(f"no {extractor} store holds clip {clip_id!r}")
        return {name: store.read(clip_id, name) for name in names}

    def read(self, clip_id: str) -> dict[str, np.ndarray]:
        """Every input's rows of one clip on the first input's timeline: name → (T, *shape)."""
        rows, timeline = {}, None
        for ref in self.inputs:
            store = self._home[ref.extractor].get(clip_id)
            if store is None:
                raise KeyError(f"no {ref.extractor} features for clip {clip_id!r} in "
                               f"{[str(s.path) for s in self.stores[ref.extractor]]}")
            values, times = store.read(clip_id, ref.array), self._times[ref.extractor][clip_id]
            if timeline is None:
                timeline, rows[ref.name] = times, values
            else:
                rows[ref.name] = values[align_steps(timeline, times)]
        steps = min(len(r) for r in rows.values())  # the timeline ends with the shortest input
        return {name: r[:steps] for name, r in rows.items()}
