"""The clip manifest and the shard plan: the single input contract of the extraction rules.

``manifest.parquet`` holds every clip with its sentences, split, shard and file identity
(size + mtime); ``clips.parquet`` is its annotation view (no file identity), which the text and
model steps read, so touching a video does not rebuild the vocabulary.
``shards/shard-XXX.parquet`` split the clips by a stable hash of their id, keep only what
extraction depends on, and are rewritten only when their content changes — so an unchanged
shard keeps its mtime and its extraction job does not rerun.
``tasks/{retrieval,multiple_choice,fill_in_blank}.parquet`` are the task lists: the ones the data
set ships, else lists built from the clips (``vlpipe.datasets.task_lists``).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from vlpipe.atomic import write_parquet
from vlpipe.datasets import read_dataset
from vlpipe.datasets.base import SPLITS, task_table
from vlpipe.datasets.characters import read_characters
from vlpipe.datasets.task_lists import task_tables
from vlpipe.synthetic.world import salient_actions

SHARD_COLUMNS = ["clip_id", "video_path", "start", "end", "size", "mtime_ns"]


class MissingVideoError(FileNotFoundError):
    """A clip whose video file is missing; the message names the clip and the path."""


class EmptySplitError(ValueError):
    """A split with no clips: training selects on val and reports on test, so each needs some."""


def check_splits(clips: pd.DataFrame, root: str | Path) -> None:
    """Every split (train, val, test) has clips, else an error naming the empty ones."""
    counts = clips["split"].value_counts()
    sizes = {split: int(counts.get(split, 0)) for split in SPLITS}
    empty = [split for split, size in sizes.items() if size == 0]
    if empty:
        raise EmptySplitError(
            f"data set {root}: no clips in split(s) {empty} (clips per split: {sizes}); "
            "training needs train, val and test clips. Assign splits in the annotations, or for "
            "the subtitles format give more videos or other dataset.options.splits")


def shard_of(clip_id: str, n_shards: int) -> int:
    """Stable shard assignment: a clip keeps its shard whatever other clips come or go."""
    digest = hashlib.sha1(clip_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % n_shards


def shard_path(shard_dir: str | Path, shard: int) -> Path:
    return Path(shard_dir) / f"shard-{shard:03d}.parquet"


def with_file_identity(clips: pd.DataFrame) -> pd.DataFrame:
    """Add ``size`` and ``mtime_ns`` of each clip's video; a missing file is an error naming it."""
    sizes, mtimes = [], []
    for clip_id, path in zip(clips["clip_id"], clips["video_path"], strict=True):
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise MissingVideoError(f"clip {clip_id!r}: video file not found: {path}") from None
        sizes.append(stat.st_size)
        mtimes.append(stat.st_mtime_ns)
    return clips.assign(size=sizes, mtime_ns=mtimes)


def files_digest(paths: Iterable[str]) -> str:
    """One digest of every file's (path, size, mtime); a missing file counts as "missing".

    Short enough to be a Snakemake param: the manifest reruns when a video is changed, added or
    removed, without listing 10^5 videos as inputs (which makes Snakemake's DAG superlinear).
    """
    sha = hashlib.sha1()
    for path in sorted(set(paths)):
        try:
            stat = os.stat(path)
            sha.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            sha.update(f"{path}\0missing\n".encode())
    return sha.hexdigest()


def _write_if_changed(path: Path, frame: pd.DataFrame) -> bool:
    if path.exists():
        buffer = io.BytesIO()  # compared as read back: list cells come back as arrays
        frame.to_parquet(buffer, index=False)
        if pd.read_parquet(path).equals(pd.read_parquet(buffer)):
            return False
    write_parquet(path, frame)
    return True


def build_manifest(dataset: dict, tables_dir: str | Path, shard_dir: str | Path,
                   n_shards: int) -> list[int]:
    """Read the data set, write the manifest, the clip table, the task lists and the shard plan
    (each only if its content changed), the Fill-in the Characters list from
    ``dataset.characters`` among them; return the shards rewritten.

    A synthetic world's activity label (for the ``lsmdc`` multiple-choice protocol) is the
    action of each clip's salient object. A split with no clips is an ``EmptySplitError``."""
    tables = read_dataset(dataset["format"], dataset["root"], **dataset.get("options", {}))
    check_splits(tables.clips, dataset["root"])
    activity = salient_actions(dataset["root"]) if "synthetic" in dataset else None
    clips = with_file_identity(tables.clips)
    clips["shard"] = [shard_of(c, n_shards) for c in clips["clip_id"]]
    _write_if_changed(Path(tables_dir) / "manifest.parquet", clips)
    _write_if_changed(Path(tables_dir) / "clips.parquet", tables.clips)
    lists = task_tables(tables, dataset.get("tasks"), activity)
    lists["fill_in_characters"] = (
        read_characters(dataset["root"], dataset["characters"], tables.clips)
        if "characters" in dataset else task_table("fill_in_characters", []))
    for name, table in lists.items():
        _write_if_changed(Path(tables_dir) / "tasks" / f"{name}.parquet", table)
    changed = []
    members = dict(tuple(clips.groupby("shard")[SHARD_COLUMNS]))
    for shard in range(n_shards):
        rows = members.get(shard, clips.loc[[], SHARD_COLUMNS])
        if _write_if_changed(shard_path(shard_dir, shard),
                             rows.sort_values("clip_id").reset_index(drop=True)):
            changed.append(shard)
    return changed
