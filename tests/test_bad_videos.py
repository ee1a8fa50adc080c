"""Bad and unusual videos: what decoding makes of each, and extraction jobs that fail naming the
clip or quarantine it and go on (``bad_clips``); the fault-injection table
(``tests.faults.videos``)."""

import pickle
import subprocess
import sys

import av
import numpy as np
import pytest

from vlpipe import cli
from vlpipe.decode import AudioSpec, DecodeError, FrameSpec, decode_clip, decode_media
from vlpipe.extractors import build_extractor, job
from vlpipe.extractors.job import ClipError, extract_shard
from vlpipe.features.store import FeatureStore
from vlpipe.synthetic.writer import write_clip

from .faults import videos as faults
from .helpers import subprocess_env

SETTINGS = faults.CHEAP_SETTINGS
CASES = {case.name: case for case in faults.CASES}


@pytest.fixture(scope="module")
def built():
    return {name: build_extractor(name, options) for name, options in SETTINGS.items()}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return faults.write_good_clip(tmp_path_factory.mktemp("good") / "good.mp4")


def _case(name, good, directory):
    path = directory / CASES[name].path_name
    CASES[name].write(good, path)
    return path


def test_fault_table(tmp_path, built):
    """Every case, alone with "fail" and all together with "quarantine", gives its expected
    outcome; errors name the clip and its file and leave no store behind; nothing is lost."""
    outcomes = faults.inject(tmp_path, built=built)
    print("\n" + faults.table(outcomes))
    assert [o for o in outcomes if not o.expected(CASES[o.case].expect)] == []
    bad = {name for name, case in CASES.items() if case.expect}
    for outcome in outcomes:
        path = tmp_path / "videos" / CASES[outcome.case].path_name
        left = sorted(p.name for p in (tmp_path / "fail" / outcome.case).iterdir())
        if outcome.mode == "fail" and outcome.case in bad:
            assert outcome.error == f"clip {outcome.case!r} ({path}): {outcome.reason}"
            assert left == ["shard.parquet"]  # no store, no temporary
    stores = [FeatureStore(tmp_path / "quarantine" / f"{name}.zarr") for name in SETTINGS]
    for store in stores:
        assert set(store.quarantined) == bad
        assert set(store.clip_ids) == {"good", *CASES} - bad
        assert store.attrs["counts"]["quarantined"] == len(bad)
        record = store.quarantined["audio_only"]
        assert record["video_path"] == str(tmp_path / "videos" / "audio_only.mp4")
        assert record["identity"].startswith(record["video_path"] + "|")


def test_variable_frame_rate_is_sampled_by_timestamps(tmp_path):
    counter = tmp_path / "counter.mp4"
    write_clip(counter, np.stack([np.full((16, 16, 3), 10 * i, np.uint8) for i in range(20)]),
               fps=10)
    vfr = faults.remux(counter, tmp_path / "vfr.mp4", retime=faults.vfr_time)
    with av.open(str(vfr)) as container:
        shown = [frame.time for frame in container.decode(video=0)]
    assert np.ptp(np.diff(shown)) > 0.1  # 0.05 s apart, then 0.2 s
    frames, times = decode_clip(str(vfr), FrameSpec(fps=10, size=8))
    expected = [np.searchsorted(shown, t + 1e-9) - 1 for t in times]
    assert [round(f.mean() / 10) for f in frames] == expected
    assert times[-1] >= shown[-1]


@pytest.mark.parametrize("degrees", [90, 180, -90])
def test_rotation_metadata_turns_frames_upright(tmp_path, good, degrees):
    rotated = faults.remux(good, tmp_path / "rotated.mp4", rotation=degrees)
    for crop in (True, False):
        spec = FrameSpec(fps=5, size=24, crop=crop)
        plain, _ = decode_clip(str(good), spec)
        turned, _ = decode_clip(str(rotated), spec)
        # the display matrix turns the picture counter-clockwise, as np.rot90 does
        np.testing.assert_array_equal(turned, np.rot90(plain, degrees // 90, axes=(1, 2)))


def test_one_frame_clip_is_held(tmp_path, good):
    path = _case("one_frame", good, tmp_path)
    frames, times = decode_clip(str(path), FrameSpec(fps=5, size=16))
    assert frames.shape == (1, 16, 16, 3) and times.tolist() == [0.0]
    frames, times = decode_clip(str(path), FrameSpec(fps=30, size=16))  # held 1/10 s
    assert len(frames) == 3 and (frames == frames[0]).all()


def test_odd_resolution_resizes(tmp_path, good):
    path = _case("odd_size", good, tmp_path)
    with av.open(str(path)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (97, 55)
    for crop in (True, False):
        frames, _ = decode_clip(str(path), FrameSpec(fps=5, size=16, crop=crop))
        assert frames.shape == (10, 16, 16, 3) and frames.std() > 10


def test_concealed_damage_decodes_and_is_counted(tmp_path, good):
    path = _case("corrupt_concealed", good, tmp_path)
    media = decode_media(str(path), [FrameSpec(5, 16), AudioSpec()])
    assert len(media.frames[FrameSpec(5, 16)][0]) == 10 and media.corrupt_frames >= 1
    assert decode_media(str(good), [FrameSpec(5, 16)]).corrupt_frames == 0


@pytest.mark.parametrize(("name", "reason"), [
    ("truncated", "cannot open video"), ("truncated_data", "truncated: "),
    ("corrupt_packets", "corrupt data near"), ("audio_only", "no video stream")])
def test_decode_errors_name_the_file_and_the_reason(tmp_path, good, name, reason):
    path = _case(name, good, tmp_path)
    with pytest.raises(DecodeError) as caught:
        decode_media(str(path), [FrameSpec(5, 16)])
    error = caught.value
    assert error.path == str(path) and error.reason.startswith(reason)
    assert str(error) == f"{path}: {error.reason}"
    assert str(pickle.loads(pickle.dumps(error))) == str(error)  # crosses worker processes


def test_long_large_clip_decodes_in_bounded_memory(tmp_path, good):
    """~33 s of 640×480 (300 frames, 138 MB as YUV): decoding keeps the sampled 32×32 frames
    and the audio, never the full frames (peak RSS of a fresh process)."""
    path = _case("long_large", good, tmp_path)
    code = (
        "import resource, sys\n"
        "from vlpipe.decode import AudioSpec, FrameSpec, decode_media\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "media = decode_media(sys.argv[1], [FrameSpec(5, 32), AudioSpec()])\n"
        "growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(len(media.frames[FrameSpec(5, 32)][0]), growth // 1024)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=True, env=subprocess_env())
    frames, growth_mib = map(int, out.stdout.split())
    assert frames == 164  # 5 fps over 32.8 s: t = 0 … 32.6
    full_mib = 300 * 640 * 480 * 3 // 2 >> 20
    assert growth_mib < full_mib // 3, (growth_mib, full_mib)


def _shard(tmp_path, videos):
    return faults.write_shard(videos, tmp_path / "shard.parquet")


def test_bad_clips_in_worker_processes(tmp_path, good, built):
    videos = {"good": good, **{n: _case(n, good, tmp_path) for n in ("zero_byte", "audio_only")}}
    stores = {name: tmp_path / f"{name}.zarr" for name in SETTINGS}

    def run(mode):
        return extract_shard(_shard(tmp_path, videos), stores, SETTINGS, device="cpu",
                             num_workers=1, built=built, bad_clips=mode)

    with pytest.raises(ClipError, match=r"clip 'zero_byte' \(.*zero_byte\.mp4\): cannot open"):
        run("fail")
    assert not list(tmp_path.glob("*.zarr")) and not list(tmp_path.glob(".tmp-*"))
    for attrs in run("quarantine").values():
        assert attrs["counts"]["recomputed"] == 1 and attrs["counts"]["quarantined"] == 2
        assert attrs["quarantined"]["audio_only"]["reason"] == "no video stream"
    with pytest.raises(ValueError, match="bad_clips must be one of"):
        run("skip")


def test_prepare_failure_quarantine_reruns_and_retries(tmp_path, good, built, monkeypatch):
    """A clip an extractor cannot prepare leaves every store of the job, also one that had it;
    unchanged, it stays quarantined without being decoded; changed, it is retried."""
    short = _case("one_frame", good, tmp_path)
    videos = {"good": good, "short": short}
    window = build_extractor("resnet34", SETTINGS["resnet34"])
    plain_prepare = window.prepare

    def prepare(media):
        if len(media.frames[window.needs][0]) < 2:
            raise ValueError("too short for a 2-frame window")
        return plain_prepare(media)

    window.prepare = prepare
    settings = {name: {**SETTINGS["resnet34"], "kind": "resnet34"} for name in ("rgb", "window")}
    stores = {name: tmp_path / f"{name}.zarr" for name in settings}
    extractors = {"rgb": built["resnet34"], "window": window}
    decoded = []
    real_decode = job.decode_media

    def counting_decode(path, needs, start, end):
        decoded.append(path)
        return real_decode(path, needs, start, end)

    monkeypatch.setattr(job, "decode_media", counting_decode)

    def run(names, mode="quarantine"):
        results = extract_shard(_shard(tmp_path, videos), {n: stores[n] for n in names},
                                {n: settings[n] for n in names}, device="cpu", num_workers=0,
                                built=extractors, bad_clips=mode)
        return {name: attrs["counts"] for name, attrs in results.items()}

    assert run(["rgb"])["rgb"]["recomputed"] == 2
    counts = run(["rgb", "window"])
    assert counts["rgb"] == {"clips": 2, "recomputed": 0, "reused": 1, "removed": 0,
                             "quarantined": 1}
    assert counts["window"]["recomputed"] == 1
    for path in stores.values():
        store = FeatureStore(path)
        assert store.clip_ids == ["good"]
        assert store.quarantined["short"]["reason"] == (
            "window: cannot prepare the clip (ValueError: too short for a 2-frame window)")

    decoded.clear()
    counts = run(["rgb", "window"])
    assert decoded == [] and {c["quarantined"] for c in counts.values()} == {1}
    assert {c["reused"] for c in counts.values()} == {1}

    with pytest.raises(ClipError, match=r"clip 'short' \(.*one_frame\.mp4\): window: cannot"):
        run(["rgb", "window"], mode="fail")  # "fail" retries every clip
    assert FeatureStore(stores["rgb"]).attrs["counts"] == counts["rgb"]  # the previous store

    faults.write_good_clip(short)  # the file is fixed: a new identity, retried
    counts = run(["rgb", "window"])
    assert {c["quarantined"] for c in counts.values()} == {0}
    assert all(sorted(FeatureStore(p).clip_ids) == ["good", "short"] for p in stores.values())


def test_cli_passes_bad_clips(monkeypatch, capsys):
    seen = {}

    def fake_extract(shard, stores, settings, **options):
        seen.update(options)
        return {"rgb": {"counts": {"clips": 1}}}

    monkeypatch.setattr(job, "extract_shard", fake_extract)
    cli.main(["extract", "--shard", "s.parquet", "--stores", "rgb=r.zarr", "--settings", "{}",
              "--bad-clips", "quarantine"])
    assert seen["bad_clips"] == "quarantine"
    with pytest.raises(SystemExit):
        cli.main(["extract", "--shard", "s", "--stores", "rgb=r", "--settings", "{}",
                  "--bad-clips", "skip"])
    assert "invalid choice: 'skip'" in capsys.readouterr().err
