"""The results tree's layout, the one place the workflow and the benchmarks take paths from."""

from __future__ import annotations

from vlpipe.layout import ResultsLayout, shard_names


def test_paths_under_one_data_sets_results():
    layout = ResultsLayout("results/demo")
    assert shard_names(3) == ["000", "001", "002"]
    assert (layout.feature_store("resnet34", "001")
            == "results/demo/features/resnet34/shard-001.zarr")
    assert layout.shard_file("{shard}") == "results/demo/shards/shard-{shard}.parquet"
    assert layout.task_list("retrieval") == "results/demo/tables/tasks/retrieval.parquet"
    assert (layout.clips_table, layout.manifest_table, layout.text_store, layout.vocab) == (
        "results/demo/tables/clips.parquet", "results/demo/tables/manifest.parquet",
        "results/demo/text/sentences.zarr", "results/demo/text/vocab.json")
