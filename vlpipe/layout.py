"""Where the workflow keeps the files that steps and scripts read, under ``results/<data set>``:
one place for the workflow (``workflow/rules/common.smk``) and for scripts that read a finished
tree (``benchmarks/``). Paths are strings, joined with "/" as Snakemake patterns are, so a
``shard`` may be a wildcard such as ``"{shard}"``."""

from __future__ import annotations

from dataclasses import dataclass


def shard_names(count: int) -> list[str]:
    """The names of ``count`` shards: "000", "001", …"""
    return [f"{k:03d}" for k in range(count)]


@dataclass(frozen=True)
class ResultsLayout:
    """The layout of one data set's results tree rooted at ``root`` (``results/<name>``)."""

    root: str

    @property
    def clips_table(self) -> str:
        return f"{self.root}/tables/clips.parquet"

    @property
    def manifest_table(self) -> str:
        return f"{self.root}/tables/manifest.parquet"

    def task_list(self, list_name: str) -> str:
        return f"{self.root}/tables/tasks/{list_name}.parquet"

    def shard_file(self, shard: str) -> str:
        return f"{self.root}/shards/shard-{shard}.parquet"

    def feature_store(self, extractor: str, shard: str) -> str:
        return f"{self.root}/features/{extractor}/shard-{shard}.zarr"

    @property
    def gaze_store(self) -> str:
        """Ground-truth gaze maps and fixations per sampled frame (`vlpipe gaze-maps`)."""
        return f"{self.root}/features/gaze/gaze.zarr"

    @property
    def text_store(self) -> str:
        return f"{self.root}/text/sentences.zarr"

    @property
    def vocab(self) -> str:
        return f"{self.root}/text/vocab.json"

    @property
    def concepts(self) -> str:
        """CT-SAN's concept words (`vlpipe.text.concepts`), chosen from the vocabulary."""
        return f"{self.root}/text/concepts.json"

    def model(self, experiment: str, variant: str, seed: int | str) -> str:
        """A training run's chosen weights (`vlpipe.training.train`'s ``model.pt``)."""
        return f"{self.root}/models/{experiment}/{variant}/seed-{seed}/model.pt"
