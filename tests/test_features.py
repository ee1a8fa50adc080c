import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from vlpipe.extract import extract_shard
from vlpipe.extractors import MissingWeightsError, build_extractor
from vlpipe.features import ClipFeatures, FeatureStore, write_store
from vlpipe.manifest import SHARD_COLUMNS, with_file_identity

SETTINGS = {"fps": 5, "image_size": 32, "allow_random_init": True, "seed": 0}


def _clip(clip_id, steps, dim=4, value=0.0):
    features = np.full((steps, dim), value, dtype=np.float32) + np.arange(steps)[:, None]
    return ClipFeatures(clip_id, f"id-{clip_id}", features, np.arange(steps) / 5)


def test_store_round_trip(tmp_path):
    clips = [_clip("a", 3), _clip("b", 0), _clip("c", 5, value=0.5)]
    write_store(tmp_path / "s.zarr", clips, dim=4, attrs={"provenance": {"x": 1}})
    store = FeatureStore(tmp_path / "s.zarr")
    assert len(store) == 3 and "b" in store and store.attrs["provenance"] == {"x": 1}
    features, times = store["c"]
    np.testing.assert_array_equal(features, clips[2].features.astype(np.float16))
    np.testing.assert_allclose(times, np.arange(5) / 5, rtol=1e-6)
    assert store["b"][0].shape == (0, 4)
    assert store.identities["a"] == "id-a"
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no temporary left


def test_failed_write_leaves_previous_store_intact(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path, [_clip("a", 2)], dim=4, attrs={"version": 1})

    def failing():
        yield _clip("b", 2)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_store(path, failing(), dim=4, attrs={"version": 2})
    assert FeatureStore(path).attrs["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def _shard(clips: pd.DataFrame, path):
    with_file_identity(clips)[SHARD_COLUMNS].to_parquet(path, index=False)
    return path


def test_extract_shapes_provenance_and_incremental_reuse(tiny_clips, tmp_path):
    shard = _shard(tiny_clips.iloc[:4], tmp_path / "shard.parquet")
    store_path = tmp_path / "resnet34.zarr"
    attrs = extract_shard(shard, store_path, "resnet34", SETTINGS, num_workers=0)
    assert attrs["counts"] == {"clips": 4, "recomputed": 4, "reused": 0}
    store = FeatureStore(store_path)
    features, _ = store[tiny_clips.clip_id[0]]
    assert features.shape == (10, 512) and np.isfinite(features).all()
    assert store.attrs["provenance"]["weights"] == "random-seed-0"
    assert store.attrs["provenance"]["fps"] == 5

    # Same inputs: nothing recomputed, features identical.
    attrs = extract_shard(shard, store_path, "resnet34", SETTINGS, num_workers=0)
    assert attrs["counts"] == {"clips": 4, "recomputed": 0, "reused": 4}
    np.testing.assert_array_equal(FeatureStore(store_path)[tiny_clips.clip_id[0]][0], features)

    # One clip changed (new identity), one removed, one added: only the changed/new recomputed.
    changed = tiny_clips.iloc[[0, 1, 2, 4]].copy()
    changed.loc[changed.index[1], "start"] = 0.4
    shard = _shard(changed, tmp_path / "shard.parquet")
    attrs = extract_shard(shard, store_path, "resnet34", SETTINGS, num_workers=0)
    assert attrs["counts"] == {"clips": 4, "recomputed": 2, "reused": 2}
    store = FeatureStore(store_path)
    assert tiny_clips.clip_id[3] not in store
    assert len(store[tiny_clips.clip_id[1]][0]) == 8  # 1.6 s left at 5 fps

    # Other settings: every clip recomputed.
    attrs = extract_shard(shard, store_path, "resnet34", {**SETTINGS, "fps": 2}, num_workers=0)
    assert attrs["counts"]["recomputed"] == 4


def test_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet34(weights=None)
    weights = tmp_path / "tiny-resnet34.pth"
    torch.save(net.state_dict(), weights)
    extractor = build_extractor("resnet34", fps=5, image_size=32, weights_path=str(weights))
    assert extractor.weights_identity.startswith("tiny-resnet34.pth@sha256:")
    frames = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    net.fc = torch.nn.Identity()
    x = (frames.permute(0, 3, 1, 2).float() / 255 - extractor._mean) / extractor._std
    with torch.no_grad():
        np.testing.assert_allclose(extractor(frames), net.eval()(x).numpy(), rtol=1e-4,
                                   atol=1e-5)


def test_missing_weights_name_the_file_and_where_looked(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"resnet34-b627a593\.pth.*nowhere\.pth"):
        build_extractor("resnet34", weights_path=str(tmp_path / "nowhere.pth"))
