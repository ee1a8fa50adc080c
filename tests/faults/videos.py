"""Fault injection: bad (and merely unusual) videos written from one good clip, and a runner
that drives them through real extraction jobs.

``CASES`` lists each case with what extracting it for frames and audio must give: ``expect`` is
``None`` where the clip is extracted, else a regular expression that its error ("fail") or its
quarantine reason ("quarantine") matches. ``write_cases`` writes them all into a directory;
``inject`` extracts them, each alone with ``bad_clips="fail"`` and all together (with the good
clip) with ``bad_clips="quarantine"``; ``table`` prints the outcomes
(``benchmarks/fault_injection.py`` runs it; ``tests/test_bad_videos.py`` asserts it).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from vlpipe.synthetic.writer import _add_video, _write_video, write_clip

AUDIO_RATE = 16_000
LONG_REPEATS = 15  # the long, large case: the 2 s 640×480 clip 15 times over (~33 s)
# Cheap extractors (random weights, small images) that need frames and audio.
CHEAP_SETTINGS = {"resnet34": {"fps": 5, "image_size": 32, "allow_random_init": True},
                  "vggish": {"fps": 5, "allow_random_init": True}}


def clip_frames(count: int, height: int, width: int) -> np.ndarray:
    """``count`` frames of a moving colour pattern (textured, so packets have some size)."""
    y, x = np.mgrid[0:height, 0:width]
    t = np.arange(count)[:, None, None]
    channels = [(x * 4 + t * 8) % 256, (y * 4 + t * 3) % 256, ((x + y) * 2 + t * 5) % 256]
    return np.stack(channels, axis=-1).astype(np.uint8)


def write_good_clip(path: Path, seconds: float = 2.0, fps: int = 10, height: int = 64,
                    width: int = 96, audio: bool = True) -> Path:
    """A good H.264/AAC clip (``write_clip``): the pattern and, with ``audio``, a 440 Hz tone."""
    samples = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * samples)).astype(np.float32) if audio else None
    write_clip(path, clip_frames(max(1, round(seconds * fps)), height, width), fps, tone,
               AUDIO_RATE)
    return path


def vfr_time(seconds: float) -> float:
    """The variable-frame-rate case's clock: the first second at double speed, then half."""
    return seconds / 2 if seconds < 1 else 0.5 + 2 * (seconds - 1)


def remux(source: Path, target: Path, kinds: tuple[str, ...] = ("video", "audio"),
          retime: Callable[[float], float] | None = None, repeat: int = 1, rotation: int = 0,
          faststart: bool = False) -> Path:
    """Copy the ``kinds`` streams of ``source`` into a new mp4 without re-encoding: the packets
    ``repeat`` times in a row, their times (seconds) mapped by the increasing ``retime``, the
    video with a display matrix turning it ``rotation`` degrees counter-clockwise, the index
    before the data with ``faststart``."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4",
                                              container_options=options) as out:
        inputs = [s for s in src.streams if s.type in kinds]
        outputs = {s.index: out.add_stream_from_template(s) for s in inputs}
        for stream in inputs:
            if rotation and stream.type == "video":
                outputs[stream.index].set_display_rotation(rotation)
        spans = [(p.dts * p.time_base, (p.dts + p.duration) * p.time_base)
                 for p in src.demux(*inputs) if p.dts is not None]
        length = max(end for _, end in spans) - min(start for start, _ in spans)
        for copy in range(repeat):
            src.seek(0)
            for packet in src.demux(*inputs):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                for name in ("pts", "dts"):
                    seconds = getattr(packet, name) * packet.time_base + copy * length
                    if retime is not None:
                        seconds = Fraction(retime(float(seconds)))
                    setattr(packet, name, round(seconds / packet.time_base))
                packet.stream = outputs[packet.stream.index]
                out.mux(packet)
    return target


def _video_packets(path: Path) -> list[tuple[int, int]]:
    """``(byte offset, size)`` of each video packet, in decoding order."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(video=0) if p.size]


def _overwrite(source: Path, target: Path, spans: list[tuple[int, int]]) -> None:
    """``source`` with the byte ranges ``(offset, length)`` replaced by seeded random bytes."""
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(0)
    for offset, length in spans:
        data[offset : offset + length] = rng.integers(0, 256, length, np.uint8).tobytes()
    target.write_bytes(bytes(data))


def _truncated(good: Path, target: Path) -> None:
    """The first half of the file: the index (written last) is missing."""
    data = good.read_bytes()
    target.write_bytes(data[: len(data) // 2])


def _truncated_data(good: Path, target: Path) -> None:
    """Index first, media data cut at a packet boundary 60 % into the video."""
    remux(good, target, faststart=True)
    packets = _video_packets(target)
    target.write_bytes(target.read_bytes()[: packets[len(packets) * 6 // 10][0]])


def _corrupt_packets(good: Path, target: Path) -> None:
    """Two whole video packets mid-stream replaced by garbage (the decoder rejects them)."""
    packets = _video_packets(good)
    _overwrite(good, target, packets[len(packets) // 2 : len(packets) // 2 + 2])


def _corrupt_concealed(good: Path, target: Path) -> None:
    """Eight bytes inside one frame's slice data (the decoder conceals the damage)."""
    offset, size = _video_packets(good)[5]
    _overwrite(good, target, [(offset + size // 2, 8)])


def _odd_size(good: Path, target: Path) -> None:
    """97×55 pixels, which yuv420p cannot hold: H.264 in yuv444p."""
    with av.open(str(target), "w", format="mp4") as out:
        stream = _add_video(out, 55, 97, 10)
        stream.pix_fmt = "yuv444p"
        _write_video(out, stream, clip_frames(20, 55, 97))


def _long_large(good: Path, target: Path) -> None:
    """A 2 s 640×480 clip with audio, ``LONG_REPEATS`` times over."""
    with tempfile.TemporaryDirectory() as tmp:
        large = write_good_clip(Path(tmp) / "large.mp4", height=480, width=640)
        remux(large, target, repeat=LONG_REPEATS)


@dataclass(frozen=True)
class Case:
    """A video case: ``write(good clip, target)`` makes it; ``expect``: see the module doc."""

    name: str
    write: Callable[[Path, Path], object]
    expect: str | None
    file_name: str = ""  # default: "<name>.mp4"

    @property
    def path_name(self) -> str:
        return self.file_name or f"{self.name}.mp4"


CASES = (
    Case("zero_byte", lambda good, target: target.write_bytes(b""), "cannot open video"),
    Case("text_named_mp4", lambda good, target: target.write_text("not a video\n"),
         "cannot open video"),
    Case("truncated", _truncated, "cannot open video"),
    Case("truncated_data", _truncated_data, "truncated: the video stream ends at"),
    Case("corrupt_packets", _corrupt_packets, "corrupt data near .* in the video stream"),
    Case("corrupt_concealed", _corrupt_concealed, None),
    Case("audio_only", lambda good, target: remux(good, target, kinds=("audio",)),
         "no video stream"),
    Case("no_audio", lambda good, target: remux(good, target, kinds=("video",)), None),
    Case("variable_frame_rate",
         lambda good, target: remux(good, target, kinds=("video",), retime=vfr_time), None),
    Case("rotated", lambda good, target: remux(good, target, rotation=90), None),
    Case("one_frame", lambda good, target: write_good_clip(target, seconds=0.1), None),
    Case("odd_size", _odd_size, None),
    Case("long_large", _long_large, None),
    Case("odd_path", lambda good, target: shutil.copyfile(good, target), None,
         "with space 'single' \"double\" ünïcødé ✓.mp4"),
)


def write_cases(directory: Path, cases: tuple[Case, ...] = CASES) -> dict[str, Path]:
    """Write the good clip (``good.mp4``) and every case into ``directory``: name → path."""
    directory.mkdir(parents=True, exist_ok=True)
    good = write_good_clip(directory / "good.mp4")
    paths = {"good": good}
    for case in cases:
        paths[case.name] = directory / case.path_name
        case.write(good, paths[case.name])
    return paths


def write_shard(paths: dict[str, Path], shard: Path) -> Path:
    """A shard file of whole clips: clip id → video."""
    from vlpipe.manifest import SHARD_COLUMNS, with_file_identity

    clips = pd.DataFrame({"clip_id": list(paths), "video_path": [str(p) for p in paths.values()],
                          "start": 0.0, "end": np.nan})
    with_file_identity(clips)[SHARD_COLUMNS].to_parquet(shard, index=False)
    return shard


@dataclass
class Outcome:
    """What a job (``mode``: its ``bad_clips``) made of a case: ``result`` is "ok",
    "quarantined" or "error"; ``reason`` why not ok; ``error`` the error's whole message."""

    case: str
    mode: str
    result: str
    reason: str = ""
    error: str = ""

    def expected(self, expect: str | None) -> bool:
        if expect is None:
            return self.result == "ok"
        wanted = "error" if self.mode == "fail" else "quarantined"
        return self.result == wanted and re.search(expect, self.reason) is not None


def inject(directory: Path, settings: dict[str, dict] | None = None,
           built: dict | None = None, cases: tuple[Case, ...] = CASES) -> list[Outcome]:
    """Write the cases into ``directory`` and extract them (default: ``CHEAP_SETTINGS``, on the
    CPU; ``built``: extractors already built from ``settings``): each alone with "fail" (stores
    under ``fail/<case>/``), then all with the good clip with "quarantine" (stores under
    ``quarantine/``). A clip that is neither in every store of the quarantine job nor
    quarantined is "lost", an error."""
    from vlpipe.extractors import build_extractor
    from vlpipe.extractors.job import ClipError, extract_shard
    from vlpipe.features.store import FeatureStore

    settings = settings or CHEAP_SETTINGS
    built = built or {name: build_extractor(name, opts) for name, opts in settings.items()}
    paths = write_cases(directory / "videos", cases)

    def run(mode: str, clips: dict[str, Path], out: Path) -> dict[str, Path]:
        out.mkdir(parents=True, exist_ok=True)
        stores = {name: out / f"{name}.zarr" for name in settings}
        extract_shard(write_shard(clips, out / "shard.parquet"), stores, settings, device="cpu",
                      num_workers=0, built=built, bad_clips=mode)
        return stores

    outcomes = []
    for case in cases:
        try:
            run("fail", {case.name: paths[case.name]}, directory / "fail" / case.name)
            outcomes.append(Outcome(case.name, "fail", "ok"))
        except ClipError as err:
            outcomes.append(Outcome(case.name, "fail", "error", err.reason, str(err)))
    stores = [FeatureStore(path) for path in run("quarantine", paths,
                                                 directory / "quarantine").values()]
    for case in cases:
        if case.name in stores[0].quarantined:
            outcomes.append(Outcome(case.name, "quarantine", "quarantined",
                                    stores[0].quarantined[case.name]["reason"]))
        elif all(case.name in store for store in stores):
            outcomes.append(Outcome(case.name, "quarantine", "ok"))
        else:
            outcomes.append(Outcome(case.name, "quarantine", "error", "lost"))
    return outcomes


def table(outcomes: list[Outcome], cases: tuple[Case, ...] = CASES, width: int = 60) -> str:
    """The outcomes as a text table: case, expected, each mode's outcome, as expected?"""
    expect = {case.name: case.expect for case in cases}
    modes = list(dict.fromkeys(o.mode for o in outcomes))
    rows = [["case", "expected", *[f"bad_clips={m}" for m in modes], "as expected"]]
    for name in dict.fromkeys(o.case for o in outcomes):
        mine = {o.mode: o for o in outcomes if o.case == name}
        cells = [f"{o.result}: {o.reason}" if o.reason else o.result
                 for o in (mine[m] for m in modes)]
        rows.append([name, expect[name] or "ok", *[c if len(c) <= width else
                                                   c[: width - 1] + "…" for c in cells],
                     "yes" if all(o.expected(expect[name]) for o in mine.values()) else "NO"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in rows)
