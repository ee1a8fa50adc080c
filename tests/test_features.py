import functools
import json
import logging
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from vlpipe.extractors import MissingWeightsError, build_extractor, check_settings, job
from vlpipe.extractors.base import sliding_windows
from vlpipe.extractors.job import extract_shard
from vlpipe.features.store import ClipFeatures, FeatureStore, chunk_rows, write_store
from vlpipe.manifest import SHARD_COLUMNS, with_file_identity
from vlpipe.provenance import code_identity

from .helpers import subprocess_env

SETTINGS = {"fps": 5, "image_size": 32, "allow_random_init": True, "seed": 0}
ARRAYS = {"feat": ((4,), "float16", "step"), "mask": ((), "uint8", "step"),
          "step": ((), "int32", "instance"), "box": ((4,), "float32", "instance")}


def _clip(clip_id, steps, value=0.0, instances=0):
    feat = np.full((steps, 4), value, dtype=np.float32) + np.arange(steps)[:, None]
    return ClipFeatures(clip_id, f"id-{clip_id}", np.arange(steps) / 5, {
        "feat": feat, "mask": np.ones(steps, np.uint8),
        "step": np.arange(instances, dtype=np.int32) % max(steps, 1),
        "box": np.full((instances, 4), value, np.float32)})


def _attrs():
    return {"provenance": {"primary": "feat"}}


def test_store_round_trip_step_and_instance_arrays(tmp_path):
    clips = [_clip("a", 3, instances=2), _clip("b", 0), _clip("c", 5, value=0.5, instances=1)]
    write_store(tmp_path / "s.zarr", clips, ARRAYS, _attrs())
    store = FeatureStore(tmp_path / "s.zarr")
    assert len(store) == 3 and "b" in store and store.primary == "feat"
    features, times = store["c"]
    np.testing.assert_array_equal(features, clips[2].arrays["feat"].astype(np.float16))
    np.testing.assert_allclose(times, np.arange(5) / 5, rtol=1e-6)
    assert store["b"][0].shape == (0, 4)
    np.testing.assert_array_equal(store.read("a", "box"), np.zeros((2, 4)))
    np.testing.assert_array_equal(store.read("c", "box"), np.full((1, 4), 0.5))
    assert store.read("a", "mask").dtype == np.uint8 and store.read("a", "mask").shape == (3,)
    assert store.identities["a"] == "id-a"
    assert [c.clip_id for c in store.iter_clips()] == ["a", "b", "c"]
    np.testing.assert_array_equal(list(store.iter_clips())[2].arrays["box"], [[0.5] * 4])
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]  # no temporary left


def test_store_streams_in_whole_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr("vlpipe.features.store.CHUNK_BYTES", 16)  # 2 rows of 4 float16
    assert chunk_rows((4,), "float16") == 2
    clips = [_clip(str(i), 3, value=i) for i in range(5)]
    write_store(tmp_path / "s.zarr", clips, ARRAYS, _attrs())
    store = FeatureStore(tmp_path / "s.zarr")
    assert store.group["step/feat"].chunks == (2, 4)
    for i in range(5):
        np.testing.assert_array_equal(store.read(str(i))[:, 0], i + np.arange(3))


def test_reads_across_chunks_in_any_order_from_a_bounded_cache(tmp_path, monkeypatch):
    """Clips of 3 rows in chunks of 2 (a clip spans two chunks), read in random order twice,
    with room for 3 decoded chunks: every read equals the written rows and is a copy."""
    monkeypatch.setattr("vlpipe.features.store.CHUNK_BYTES", 16)
    monkeypatch.setattr("vlpipe.features.store.CACHED_CHUNK_BYTES", 3 * 16)
    clips = [_clip(str(i), 3, value=10 * i) for i in range(7)]
    write_store(tmp_path / "s.zarr", clips, ARRAYS, _attrs())
    store = FeatureStore(tmp_path / "s.zarr")
    order = np.random.default_rng(0).permutation(2 * len(clips)) % len(clips)
    for i in order:
        np.testing.assert_array_equal(store.read(str(i)), clips[i].arrays["feat"])
        assert store._chunks.size <= 3 * 16
    store.read("0")[:] = -1  # a caller's copy
    np.testing.assert_array_equal(store.read("0"), clips[0].arrays["feat"])


def test_store_rejects_rows_that_do_not_match(tmp_path):
    bad = _clip("a", 3)
    bad.arrays["mask"] = np.ones(2, np.uint8)
    with pytest.raises(ValueError, match="clip 'a': mask has 2 rows"):
        write_store(tmp_path / "s.zarr", [bad], ARRAYS, _attrs())
    assert not list(tmp_path.iterdir())


def test_failed_write_leaves_previous_store_intact(tmp_path):
    path = tmp_path / "s.zarr"
    write_store(path, [_clip("a", 2)], ARRAYS, {**_attrs(), "version": 1})

    def failing():
        yield _clip("b", 2)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_store(path, failing(), ARRAYS, {**_attrs(), "version": 2})
    assert FeatureStore(path).attrs["version"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def test_sliding_windows_end_at_every_stride_and_repeat_pad():
    frames, times = np.arange(7), np.arange(7) / 10
    windows, ends = sliding_windows(frames, times, window=3, stride=2)
    np.testing.assert_array_equal(windows, [[0, 1, 2], [2, 3, 4], [4, 5, 6]])
    np.testing.assert_allclose(ends, [0.2, 0.4, 0.6])
    windows, ends = sliding_windows(frames[:2], times[:2], window=4, stride=4)
    np.testing.assert_array_equal(windows, [[0, 0, 0, 1]])  # short clip: one padded window


def _shard(clips: pd.DataFrame, path):
    with_file_identity(clips)[SHARD_COLUMNS].to_parquet(path, index=False)
    return path


def test_extract_shapes_provenance_and_incremental_reuse(tiny_clips, tmp_path):
    shard = _shard(tiny_clips.iloc[:4], tmp_path / "shard.parquet")
    store_path = tmp_path / "resnet34.zarr"

    def run(settings=SETTINGS):
        return extract_shard(shard, {"resnet34": store_path}, {"resnet34": settings},
                             num_workers=0)["resnet34"]

    assert run()["counts"] == {"clips": 4, "recomputed": 4, "reused": 0, "removed": 0,
                                 "quarantined": 0}
    store = FeatureStore(store_path)
    features, _ = store[tiny_clips.clip_id[0]]
    assert features.shape == (10, 512) and np.isfinite(features).all()
    assert store.attrs["provenance"]["weights"] == "random-seed-0"
    assert store.attrs["provenance"]["needs"]["fps"] == 5

    # Same inputs: nothing recomputed, features identical.
    assert run()["counts"] == {"clips": 4, "recomputed": 0, "reused": 4, "removed": 0,
                                 "quarantined": 0}
    np.testing.assert_array_equal(FeatureStore(store_path)[tiny_clips.clip_id[0]][0], features)

    # One clip changed (new identity), one removed, one added: only the changed/new recomputed.
    changed = tiny_clips.iloc[[0, 1, 2, 4]].copy()
    changed.loc[changed.index[1], "start"] = 0.4
    shard = _shard(changed, tmp_path / "shard.parquet")
    assert run()["counts"] == {"clips": 4, "recomputed": 2, "reused": 2, "removed": 1,
                                 "quarantined": 0}
    store = FeatureStore(store_path)
    assert tiny_clips.clip_id[3] not in store
    assert len(store[tiny_clips.clip_id[1]][0]) == 8  # 1.6 s left at 5 fps

    # Other settings: every clip recomputed.
    assert run({**SETTINGS, "fps": 2})["counts"]["recomputed"] == 4
    assert FeatureStore(store_path).attrs["code"] == code_identity("extract")


def test_extraction_logs_the_clips_to_compute_and_its_progress(tiny_clips, tmp_path, caplog,
                                                               monkeypatch):
    """With a progress line after every clip (interval 0): what the job has to compute, each
    clip done of the total, and a closing line; a rerun with nothing to compute says so."""
    monkeypatch.setattr(job, "Progress", functools.partial(job.Progress, every_s=0))
    shard = _shard(tiny_clips.iloc[:3], tmp_path / "shard-007.parquet")

    def progress_lines() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="vlpipe.extractors.job"):
            extract_shard(shard, {"resnet34": tmp_path / "r.zarr"}, {"resnet34": SETTINGS},
                          num_workers=0)
        return [re.sub(r"\d+\.\d", "X", m) for m in caplog.messages  # times and rates
                if m.startswith("shard-007.parquet (resnet34)")]

    assert progress_lines() == ["shard-007.parquet (resnet34): 3 of 3 clips to compute",
                                "shard-007.parquet (resnet34): 1/3 clips (X clips/s)",
                                "shard-007.parquet (resnet34): 2/3 clips (X clips/s)",
                                "shard-007.parquet (resnet34): 3/3 clips (X clips/s)",
                                "shard-007.parquet (resnet34): 3/3 clips in X s (X clips/s)"]
    assert progress_lines() == ["shard-007.parquet (resnet34): 0 of 3 clips to compute",
                                "shard-007.parquet (resnet34): 0/0 clips in X s (X clips/s)"]


def test_clips_are_not_reused_from_a_store_of_other_extraction_code(tiny_clips, tmp_path,
                                                                   monkeypatch):
    shard = _shard(tiny_clips.iloc[:2], tmp_path / "shard.parquet")
    store_path = tmp_path / "resnet34.zarr"

    def run():
        return extract_shard(shard, {"resnet34": store_path}, {"resnet34": SETTINGS},
                             num_workers=0)["resnet34"]["counts"]

    assert run()["recomputed"] == 2
    other = {**code_identity("extract"), "step_fingerprint": "0123456789abcdef"}
    monkeypatch.setattr(job, "code_identity", lambda step: other)
    assert run()["recomputed"] == 2  # the library changed: no clip of the old code kept
    assert FeatureStore(store_path).attrs["code"]["step_fingerprint"] == "0123456789abcdef"
    assert run()["reused"] == 2


def test_one_job_decodes_each_clip_once_for_all_its_extractors(tiny_clips, tmp_path,
                                                               monkeypatch):
    shard = _shard(tiny_clips.iloc[:3], tmp_path / "shard.parquet")
    calls = []
    real_decode = job.decode_media

    def counting_decode(path, needs, start, end):
        calls.append((path, list(needs)))
        return real_decode(path, needs, start, end)

    monkeypatch.setattr(job, "decode_media", counting_decode)
    settings = {"small": {**SETTINGS, "kind": "resnet34"},
                "grid": {**SETTINGS, "kind": "resnet34", "fps": 2, "image_size": 64,
                         "outputs": ["res5c", "pool5"]}}
    stores = {name: tmp_path / f"{name}.zarr" for name in settings}
    results = extract_shard(shard, stores, settings, num_workers=0)
    assert len(calls) == 3 and all(len(needs) == 2 for _, needs in calls)
    assert {r["counts"]["recomputed"] for r in results.values()} == {3}
    grid = FeatureStore(stores["grid"])
    clip = tiny_clips.clip_id[0]
    assert grid.primary == "res5c" and grid.read(clip).shape == (4, 2, 2, 512)
    assert grid.read(clip, "pool5").shape == (4, 512)
    # pool5 is the grid's spatial mean, from the same forward pass
    np.testing.assert_allclose(grid.read(clip).astype(np.float32).mean(axis=(1, 2)),
                               grid.read(clip, "pool5"), rtol=2e-2, atol=2e-3)
    assert FeatureStore(stores["small"]).read(clip).shape == (10, 512)

    # Changing one extractor's settings recomputes only that one; the other is reused.
    calls.clear()
    settings["grid"]["fps"] = 1
    results = extract_shard(shard, stores, settings, num_workers=0)
    assert results["small"]["counts"]["recomputed"] == 0
    assert results["grid"]["counts"]["recomputed"] == 3
    assert all(len(needs) == 1 for _, needs in calls)


def test_unknown_settings_name_the_entry():
    with pytest.raises(ValueError, match=r"extractors\.rgb \(resnet34\): unknown setting.*'fsp'"):
        check_settings("rgb", {"kind": "resnet34", "fsp": 5})
    with pytest.raises(KeyError, match=r"extractors\.x: unknown extractor kind 'x'"):
        check_settings("x", {})


def test_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    net = torchvision.models.resnet34(weights=None)
    weights = tmp_path / "tiny-resnet34.pth"
    torch.save(net.state_dict(), weights)
    extractor = build_extractor("resnet34", {"fps": 5, "image_size": 32,
                                             "weights_path": str(weights)})
    assert extractor.weights_identity.startswith("tiny-resnet34.pth@sha256:")
    frames = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    net.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (frames.permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.no_grad():
        np.testing.assert_allclose(extractor.forward(frames)["pool5"], net.eval()(x).numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_missing_weights_name_the_file_and_where_looked(tmp_path):
    with pytest.raises(MissingWeightsError, match=r"'resnet34-b627a593\.pth'.*nowhere\.pth"):
        build_extractor("resnet34", {"weights_path": str(tmp_path / "nowhere.pth"),
                                     "allow_random_init": True})


class _Recorder:
    """A stand-in extractor: outputs its inputs (array) and their squares (ragged list)."""

    def __init__(self):
        self.batches = []

    def forward(self, inputs):
        self.batches.append(len(inputs))
        values = inputs.numpy()
        return {"value": values, "ragged": [np.full(int(v), v) for v in values]}

    def finish(self, units, outputs):
        return outputs


class _Writer:
    def __init__(self):
        self.clips = []

    def add(self, clip):
        self.clips.append(clip)


def test_batches_have_exactly_the_batch_size_and_clips_get_their_own_outputs():
    recorder, writer = _Recorder(), _Writer()
    batcher = job._Batcher(recorder, 4, writer)
    sizes = {"a": 3, "b": 5, "empty": 0, "c": 4, "d": 2}
    start = 0
    for clip_id, size in sizes.items():
        inputs = np.arange(start, start + size)
        batcher.add(clip_id, clip_id, job.Units(inputs, np.zeros(size)))
        start += size
    batcher.flush()
    assert recorder.batches == [4, 4, 4, 2]  # 14 units: full batches, then the rest
    assert [c.clip_id for c in writer.clips] == list(sizes)
    start = 0
    for clip in writer.clips:
        expected = np.arange(start, start + sizes[clip.clip_id])
        start += len(expected)
        if not len(expected):
            assert clip.arrays == {}
            continue
        np.testing.assert_array_equal(clip.arrays["value"], expected)
        assert [len(r) for r in clip.arrays["ragged"]] == list(expected)


@pytest.mark.parametrize(("kind", "grid", "channels"), [("googlenet", "inception5b", 1024),
                                                        ("resnet50", "res5c", 2048)])
def test_imagenet_cnns_give_pool5_and_their_grid(kind, grid, channels):
    extractor = build_extractor(kind, {"image_size": 64, "outputs": ["pool5", grid],
                                       "allow_random_init": True})
    frames = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    outputs = extractor.forward(frames)
    assert outputs["pool5"].shape == (3, channels)
    assert outputs[grid].shape == (3, 2, 2, channels)  # 64 px / 32: a 2×2 grid, channels-last
    assert extractor.outputs[grid].shape == (2, 2, channels)
    np.testing.assert_allclose(outputs[grid].mean(axis=(1, 2)), outputs["pool5"], rtol=1e-4,
                               atol=1e-5)
    scale = np.abs(outputs["pool5"]).mean()
    assert 1e-3 < scale < 1e3  # random init keeps the signal (float16-safe)


def test_weight_files_load_whatever_their_classifier(tmp_path):
    """A GoogLeNet file with auxiliary heads and a 205-class classifier (Places205-style) loads;
    the features come from the file's convolutions."""
    torch.manual_seed(3)
    source = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True,
                                          num_classes=205)
    weights = tmp_path / "googlenet-places205.pth"
    torch.save(source.state_dict(), weights)
    extractor = build_extractor("googlenet", {"image_size": 64, "weights_path": str(weights)})
    assert extractor.weights_identity.startswith("googlenet-places205.pth@sha256:")
    loaded = extractor.net.state_dict()
    key = next(k for k in loaded if k.endswith("inception5b.branch1.conv.weight"))
    torch.testing.assert_close(loaded[key], source.state_dict()["inception5b.branch1.conv.weight"])


# An extraction job that, once it has written its first new clip into the temporary store,
# says so (touches argv[4]) and waits to be killed: a kill that cannot come too late.
STALL_AFTER_FIRST_CLIP = """
import json, sys, time
from pathlib import Path
from vlpipe.extractors.job import extract_shard
from vlpipe.features.store import StoreWriter
add = StoreWriter.add
def add_then_stall(self, clip):
    add(self, clip)
    Path(sys.argv[4]).touch()
    time.sleep(600)
StoreWriter.add = add_then_stall
extract_shard(sys.argv[1], {"resnet34": sys.argv[2]}, {"resnet34": json.loads(sys.argv[3])},
              device="cpu", num_workers=0)
"""


def test_a_killed_extraction_leaves_the_previous_store_and_the_rerun_repairs(tiny_clips,
                                                                             tmp_path):
    """SIGKILL while the new store is being written: readers still see the previous, complete
    store; the next run removes the dead writer's temporary and reuses the unchanged clips."""
    shard = _shard(tiny_clips.iloc[:4], tmp_path / "shard.parquet")
    store = tmp_path / "resnet34.zarr"
    extract_shard(shard, {"resnet34": store}, {"resnet34": SETTINGS}, num_workers=0)
    shard = _shard(tiny_clips.iloc[:8], tmp_path / "shard.parquet")  # 4 new clips to compute
    written = tmp_path / "first-clip-written"
    process = subprocess.Popen([sys.executable, "-c", STALL_AFTER_FIRST_CLIP, str(shard),
                                str(store), json.dumps(SETTINGS), str(written)],
                               env=subprocess_env())
    deadline = time.monotonic() + 120
    while not written.exists():  # the writer is mid-store, and stays there until killed
        assert process.poll() is None and time.monotonic() < deadline, "no clip was written"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(FeatureStore(store)) == 4  # the previous store, complete
    assert list(tmp_path.glob(".tmp-resnet34.zarr-*"))  # what the killed writer left
    counts = extract_shard(shard, {"resnet34": store}, {"resnet34": SETTINGS},
                           num_workers=0)["resnet34"]["counts"]
    assert counts == {"clips": 8, "recomputed": 4, "reused": 4, "removed": 0,
                      "quarantined": 0}
    assert not list(tmp_path.glob(".tmp-*"))


def test_settings_read_from_source_match_the_constructors():
    """The DAG checks settings without importing torch; the source reading must agree with the
    real signatures of every registered extractor."""
    import inspect

    from vlpipe.extractors import EXTRACTORS, accepted_settings, extractor_factory

    for kind, (_, _, fixed) in EXTRACTORS.items():
        signature = inspect.signature(extractor_factory(kind)).parameters
        assert accepted_settings(kind) == set(signature) - set(fixed), kind


def test_planning_imports_no_deep_learning_package():
    code = ("import sys; from vlpipe.extractors import check_settings; "
            "import vlpipe.planning, vlpipe.manifest, vlpipe.tasks, vlpipe.models; "
            "check_settings('resnet152', {'fps': 5}); check_settings('vggish', {}); "
            "vlpipe.tasks.task_spec('retrieval').check_args({'max_frames': 8}); "
            "[f.settings({}, vlpipe.tasks.task_spec(f.tasks[0]).predicts) "
            " for f in vlpipe.models.FAMILIES.values()]; "
            "vlpipe.models.FAMILIES['jsfusion'].settings({'preset': 'paper_fib'}, 'word'); "
            "print(sorted(m for m in ('torch', 'torchvision', 'ultralytics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=subprocess_env())
    assert out.stdout.strip() == "[]"
