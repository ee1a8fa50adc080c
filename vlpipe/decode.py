"""Decoding with PyAV: one pass over a file serves every extractor of a job.

``decode_media(path, needs)`` demuxes the video and/or audio stream once and hands each
``FrameSpec`` its frames (sampled at its rate, resized its way) and each ``AudioSpec`` its
mono waveform (resampled by FFmpeg). Nothing is re-encoded or written to temporary files.
Decoding streams packet by packet: memory is bounded by what is kept, i.e. the sampled frames
at their small size (never a list of full-resolution frames) and the resampled audio.

Bad input, case by case (``tests.faults.videos`` writes each; ``tests/test_bad_videos.py`` checks):

- unreadable (empty, truncated before the index, not a video): ``DecodeError`` "cannot open";
- data the decoder rejects (corrupt packets mid-stream, a truncated last packet): ``DecodeError``
  naming the stream and the time: such a clip is not trusted, even if later frames decode;
- damage the decoder conceals without an error (a few flipped bytes in a frame): the clip is
  good, as FFmpeg plays it; ``DecodedMedia.corrupt_frames`` counts the frames it flagged;
- a video stream that ends more than ``TRUNCATION_SLACK`` seconds before the length its file
  declares (media data cut off at a packet boundary): ``DecodeError`` "truncated";
- a span that starts at or after the end of the file (annotation timestamps past the end):
  ``DecodeError`` "the span starts at ..."; a span that ends after it is cut at the file's end;
- frames needed but no video stream (audio only), or no frame in the span: ``DecodeError``;
  audio needed but no audio stream: ``None`` (extractors fill zeros and a mask);
- variable frame rate: frames are sampled by their timestamps, not counted, and the last frame
  lasts its own duration (see "Steps" below);
- a video stream that starts after 0 (a WebM's first frame at 0.007 s): times count from it;
- rotation metadata (display matrix): frames are turned upright, in quarter turns as FFmpeg's
  autorotate does (mirroring is ignored);
- one frame, odd sizes, any path (spaces, quotes, unicode): decoded like any other clip.

Every PyAV/FFmpeg error is wrapped in a ``DecodeError`` naming the file.

Steps: times count from the video stream's start time, its first frame (0 in a file without
video), for frames and audio alike: ``start`` and ``end`` are such times, and
``DecodedMedia.duration`` runs from ``start`` to the file's declared end so counted. A clip
covers ``[start, min(end, video end))``, the video ending with its last frame: that frame's
timestamp plus its own duration (as the container gives it; else the end the stream or file
declares; else one average frame interval). A ``FrameSpec`` at ``fps`` has steps at
``t_k = k / fps`` from the clip start, one for each ``start + t_k`` in the clip, each showing the
latest frame at or before it (the first frame for earlier times): ``ceil(length · fps)`` steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np

TRUNCATION_SLACK = 0.5  # seconds a video stream may end before its declared length
TIME_TOLERANCE = 1e-6  # seconds: a step this close before a frame (or the end) is at it


class DecodeError(RuntimeError):
    """A video that cannot be decoded: ``path`` and ``reason``; the message names both."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)  # both in args: the error pickles (worker processes)
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


FIT = "fit"  # FrameSpec.crop: keep the aspect ratio, the longer side resized to the size


@dataclass(frozen=True)
class FrameSpec:
    """Frames at ``fps`` per second, RGB, resized the ``crop`` way: ``True``: the shorter side
    resized to ``size`` and the centre cropped, ``size``×``size``; ``False``: the whole frame
    squashed to ``size``×``size``; ``FIT`` ("fit"): the whole frame, aspect ratio kept, the longer
    side resized to ``size`` (h×w with max(h, w) = ``size``; the extractor pads it, e.g. the
    persons extractor's letterbox)."""

    fps: float
    size: int
    crop: bool | str = True


@dataclass(frozen=True)
class AudioSpec:
    """A mono float32 waveform at ``rate`` samples per second."""

    rate: int = 16000


@dataclass
class DecodedMedia:
    """One clip, decoded for a set of specs. Times are seconds from the clip start;
    ``duration`` is the span's length in seconds (NaN if neither the span nor the file says);
    ``corrupt_frames`` counts decoded frames the decoder flagged as damaged (concealed errors)."""

    duration: float = math.nan
    corrupt_frames: int = 0
    frames: dict[FrameSpec, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    audio: dict[AudioSpec, np.ndarray | None] = field(default_factory=dict)  # None: no audio


def _resize(frame: av.VideoFrame, size: int, crop: bool | str) -> np.ndarray:
    """The frame upright (its display matrix's rotation, in counter-clockwise quarter turns),
    resized the spec's way. Rotating the small image equals resizing the rotated one."""
    turns = round(frame.rotation / 90) % 4
    if crop == FIT:  # rounded as ultralytics' LetterBox rounds: each side, at least 1 px
        scale = size / max(frame.width, frame.height)
        width, height = (max(1, round(side * scale)) for side in (frame.width, frame.height))
        return np.rot90(frame.reformat(width=width, height=height, format="rgb24").to_ndarray(),
                        turns)
    if not crop:
        return np.rot90(frame.reformat(width=size, height=size, format="rgb24").to_ndarray(),
                        turns)
    scale = size / min(frame.width, frame.height)
    width = max(size, round(frame.width * scale))
    height = max(size, round(frame.height * scale))
    rgb = np.rot90(frame.reformat(width=width, height=height, format="rgb24").to_ndarray(),
                   turns)
    top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
    return rgb[top : top + size, left : left + size]


class _FrameSampler:
    """Held-frame sampling at ``start + k / fps`` (file times; reported as ``k / fps``): each
    target time gets the last frame shown at or before it (the first frame for earlier times),
    up to ``stop``."""

    def __init__(self, spec: FrameSpec, start: float, stop: float) -> None:
        self.spec, self.start, self.stop = spec, start, stop
        self.k, self.target = 0, start
        self.held: av.VideoFrame | None = None
        self.frames: list[np.ndarray] = []
        self.times: list[float] = []

    @property
    def done(self) -> bool:
        return self.target >= self.stop

    def _emit_until(self, limit: float, resized: dict) -> None:
        while self.held is not None and self.target < min(limit, self.stop):
            key = (id(self.held), self.spec.size, self.spec.crop)
            if key not in resized:
                resized[key] = _resize(self.held, self.spec.size, self.spec.crop)
            self.frames.append(resized[key])
            self.times.append(self.k / self.spec.fps)
            self.k += 1
            self.target = self.start + self.k / self.spec.fps

    def feed(self, frame: av.VideoFrame, resized: dict) -> None:
        self._emit_until(frame.time - TIME_TOLERANCE, resized)
        if not self.done:
            self.held = frame

    def finish(self, end: float, resized: dict) -> None:
        """At the end of the stream: the last frame is held until ``end``, the video's end."""
        self._emit_until(end - TIME_TOLERANCE, resized)


class _AudioCollector:
    """Resamples decoded audio to ``spec`` and keeps the samples in [start, stop)."""

    def __init__(self, spec: AudioSpec, start: float, stop: float) -> None:
        self.spec, self.start, self.stop = spec, start, stop
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=spec.rate)
        self.first_time: float | None = None
        self.chunks: list[np.ndarray] = []
        self.count = 0

    @property
    def done(self) -> bool:
        return (self.first_time is not None
                and self.first_time + self.count / self.spec.rate >= self.stop)

    def feed(self, frame: av.AudioFrame | None) -> None:
        if self.first_time is None and frame is not None and frame.time is not None:
            self.first_time = frame.time
        for out in self.resampler.resample(frame):
            samples = out.to_ndarray().reshape(-1)  # (1, S) packed mono → (S,)
            self.chunks.append(samples)
            self.count += len(samples)

    def waveform(self) -> np.ndarray:
        self.feed(None)  # flush the resampler
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        offset = round(((self.first_time or 0.0) - self.start) * self.spec.rate)
        if offset > 0:  # the audio starts after the clip does: silence before it
            samples = np.concatenate([np.zeros(offset, np.float32), samples])
        else:
            samples = samples[-offset:]
        if not math.isinf(self.stop):
            samples = samples[: round((self.stop - self.start) * self.spec.rate)]
        return samples.astype(np.float32, copy=False)


def _why(err: av.error.FFmpegError | OSError) -> str:
    """An FFmpeg/OS error's reason, without the file name or function it names."""
    return err.strerror or str(err)


def _decoded(container: av.container.InputContainer, streams: list, path: str) -> Iterator:
    packet = None
    try:
        for packet in container.demux(*streams):
            yield from packet.decode()
    except av.error.FFmpegError as err:
        where = ""
        if packet is not None and packet.pts is not None:
            where = (f" near {float(packet.pts * packet.time_base):.2f} s in the "
                     f"{packet.stream.type} stream")
        raise DecodeError(path, f"corrupt data{where} ({_why(err)})") from None


def _file_end(container: av.container.InputContainer) -> Fraction | None:
    """The end time (s) the file declares, if any. FFmpeg counts a file's duration from its
    start time, except Matroska's (the Segment Duration), which counts from 0."""
    if not container.duration:
        return None
    start = 0 if container.format.name.startswith("matroska") else container.start_time or 0
    return Fraction(start + container.duration, av.time_base)


def _stream_end(video: av.video.stream.VideoStream) -> Fraction | None:
    """The end time (s) the video stream declares (its start plus its duration), if any."""
    if not video.duration:
        return None
    return ((video.start_time or 0) + video.duration) * video.time_base


def _video_end(container: av.container.InputContainer, last: av.VideoFrame,
               period: float) -> float:
    """When the ``last`` video frame leaves the screen: after its own duration if the container
    gives one, else at the end the stream (or else the file) declares, if that is after it, else
    after ``period`` (one average frame interval)."""
    if last.duration:
        return float((last.pts + last.duration) * last.time_base)
    declared = _stream_end(container.streams.video[0]) or _file_end(container)
    return float(declared) if declared and declared > last.time else last.time + period


def _check_length(video: av.video.stream.VideoStream, last: float, stop: float,
                  path: str) -> None:
    """A video stream decoded to its end must reach (nearly) the length its file declares."""
    declared = _stream_end(video)
    if declared is not None and last < min(float(declared), stop) - TRUNCATION_SLACK:
        raise DecodeError(path, f"truncated: the video stream ends at {last:.2f} s, the file "
                                f"declares {float(declared):.2f} s")


def decode_media(path: str, needs: Iterable[FrameSpec | AudioSpec], start: float = 0.0,
                 end: float = math.nan) -> DecodedMedia:
    """Decode ``[start, end)`` of ``path`` (NaN end: the end of the file) once for all ``needs``.

    A file without an audio stream gives ``None`` for each ``AudioSpec``; anything else that
    goes wrong is a ``DecodeError`` naming the file (see the module docstring, case by case).
    """
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as err:
        raise DecodeError(path, f"cannot open video ({_why(err)})") from None
    try:
        with container:
            return _decode(container, path, list(dict.fromkeys(needs)), start, end)
    except av.error.FFmpegError as err:
        raise DecodeError(path, f"decoding failed ({_why(err)})") from None


def picture_size(path: str) -> tuple[int, int]:
    """The (width, height) in pixels of ``path``'s video stream, read from its header."""
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise DecodeError(path, "no video stream")
            video = container.streams.video[0]
            return video.codec_context.width, video.codec_context.height
    except (av.error.FFmpegError, OSError) as err:
        raise DecodeError(path, f"cannot open video ({_why(err)})") from None


def _decode(container: av.container.InputContainer, path: str,
            needs: list[FrameSpec | AudioSpec], start: float, end: float) -> DecodedMedia:
    frame_specs = [n for n in needs if isinstance(n, FrameSpec)]
    audio_specs = [n for n in needs if isinstance(n, AudioSpec)]
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    # Clip times count from the video's first frame, at `origin` seconds in the file.
    origin = (video.start_time * video.time_base
              if video is not None and video.start_time is not None else Fraction(0))
    stop = end if not math.isnan(end) else math.inf
    file_end = _file_end(container)
    length = float(file_end - origin) if file_end is not None else math.nan
    if start >= length:  # an unknown (NaN) length compares False
        raise DecodeError(path, f"the span starts at {start:.2f} s, at or after the end of the "
                                f"file ({length:.2f} s)")
    media = DecodedMedia(duration=(min(stop, length) if not math.isnan(length) else
                                   (stop if not math.isinf(stop) else math.nan)) - start)
    if frame_specs and video is None:
        raise DecodeError(path, "no video stream")
    file_start, file_stop = float(origin) + start, float(origin) + stop  # the span in the file
    samplers = [_FrameSampler(s, file_start, file_stop) for s in frame_specs] if video else []
    collectors = ([_AudioCollector(s, file_start, file_stop) for s in audio_specs]
                  if audio else [])
    media.audio = {s: None for s in audio_specs}
    streams = ([video] if samplers else []) + ([audio] if collectors else [])
    if not streams:
        return media
    for stream in streams:
        stream.thread_type = "AUTO"
    if start > 0:
        anchor = streams[0]
        container.seek(int(file_start / anchor.time_base), stream=anchor, backward=True)
    period = 1 / float(video.average_rate) if video is not None and video.average_rate else 0.0
    resized: dict = {}  # a frame resized once per (size, crop), shared by the samplers
    last: av.VideoFrame | None = None  # the last video frame shown
    for frame in _decoded(container, streams, path):
        if frame.time is None:
            continue
        media.corrupt_frames += frame.is_corrupt
        if isinstance(frame, av.AudioFrame):
            for collector in collectors:
                collector.feed(frame)
        else:
            resized.clear()
            if last is None or frame.time >= last.time:
                last = frame
            for sampler in samplers:
                sampler.feed(frame, resized)
        if all(s.done for s in samplers) and all(c.done for c in collectors):
            break
    else:  # the end of the file: did the video reach it?
        if last is not None:
            _check_length(video, _video_end(container, last, period), file_stop, path)
    for sampler in samplers:
        if last is not None:  # the last frame is held until the video ends
            sampler.finish(_video_end(container, last, period or 1 / sampler.spec.fps), resized)
        if not sampler.frames:
            span = "" if start == 0 and math.isinf(stop) else f" in [{start}, {end}) s"
            raise DecodeError(path, f"no video frames{span}")
        media.frames[sampler.spec] = (np.stack(sampler.frames), np.asarray(sampler.times))
    for collector in collectors:
        if math.isinf(collector.stop) and not math.isnan(media.duration):
            collector.stop = file_start + media.duration  # drop the codec's padding at the end
        media.audio[collector.spec] = collector.waveform()
    return media


def decode_clip(path: str, spec: FrameSpec, start: float = 0.0,
                end: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
    """Decode a clip into ``frames (T, size, size, 3) uint8`` and ``times (T,) float64``."""
    return decode_media(path, [spec], start, end).frames[spec]
