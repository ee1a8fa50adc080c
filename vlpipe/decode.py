"""Decoding with PyAV: one pass over a file serves every extractor of a job.

``decode_media(path, needs)`` demuxes the video and/or audio stream once and hands each
``FrameSpec`` its frames (sampled at its rate, resized its way) and each ``AudioSpec`` its
mono waveform (resampled by FFmpeg). Nothing is re-encoded or written to temporary files.
Decoding streams packet by packet: memory is bounded by what is kept, i.e. the sampled frames.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np


class DecodeError(RuntimeError):
    """A video that cannot be decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class FrameSpec:
    """Frames at ``fps`` per second, ``size``×``size`` RGB: with ``crop`` the shorter side is
    resized to ``size`` and the centre cropped; without, the whole frame is squashed."""

    fps: float
    size: int
    crop: bool = True


@dataclass(frozen=True)
class AudioSpec:
    """A mono float32 waveform at ``rate`` samples per second."""

    rate: int = 16000


@dataclass
class DecodedMedia:
    """One clip, decoded for a set of specs. Times are seconds from the clip start;
    ``duration`` is the span's length in seconds (NaN if neither the span nor the file says)."""

    duration: float = math.nan
    frames: dict[FrameSpec, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    audio: dict[AudioSpec, np.ndarray | None] = field(default_factory=dict)  # None: no audio


def _resize(frame: av.VideoFrame, size: int, crop: bool) -> np.ndarray:
    if not crop:
        return frame.reformat(width=size, height=size, format="rgb24").to_ndarray()
    scale = size / min(frame.width, frame.height)
    width = max(size, round(frame.width * scale))
    height = max(size, round(frame.height * scale))
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return rgb[top : top + size, left : left + size]


class _FrameSampler:
    """Held-frame sampling at ``start + k / fps``: each target time gets the last frame shown
    at or before it (the first frame for earlier times), up to ``stop``."""

    def __init__(self, spec: FrameSpec, start: float, stop: float) -> None:
        self.spec, self.start, self.stop = spec, start, stop
        self.k, self.target = 0, start
        self.held: av.VideoFrame | None = None
        self.held_time = 0.0
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
            self.times.append(self.target - self.start)
            self.k += 1
            self.target = self.start + self.k / self.spec.fps

    def feed(self, frame: av.VideoFrame, resized: dict) -> None:
        self._emit_until(frame.time, resized)
        if not self.done:
            self.held, self.held_time = frame, frame.time

    def finish(self, period: float, resized: dict) -> None:
        # At the end of the stream the last frame stays on screen for one frame period.
        self._emit_until(self.held_time + period, resized)


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


def _decoded(container: av.container.InputContainer, streams: list, path: str) -> Iterator:
    try:
        for packet in container.demux(*streams):
            yield from packet.decode()
    except av.error.FFmpegError as err:
        raise DecodeError(f"{path}: decoding failed ({err})") from None


def decode_media(path: str, needs: Iterable[FrameSpec | AudioSpec], start: float = 0.0,
                 end: float = math.nan) -> DecodedMedia:
    """Decode ``[start, end)`` of ``path`` (NaN end: the end of the file) once for all ``needs``.

    A file without an audio stream gives ``None`` for each ``AudioSpec``; a file without video,
    or with no frame in the span, is a ``DecodeError`` when frames are needed.
    """
    needs = list(dict.fromkeys(needs))
    frame_specs = [n for n in needs if isinstance(n, FrameSpec)]
    audio_specs = [n for n in needs if isinstance(n, AudioSpec)]
    stop = end if not math.isnan(end) else math.inf
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as err:
        raise DecodeError(f"{path}: cannot open video ({err})") from None
    with container:
        length = container.duration / av.time_base if container.duration else math.nan
        media = DecodedMedia(duration=(min(stop, length) if not math.isnan(length) else
                                       (stop if not math.isinf(stop) else math.nan)) - start)
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if frame_specs and video is None:
            raise DecodeError(f"{path}: no video stream")
        samplers = [_FrameSampler(s, start, stop) for s in frame_specs] if video else []
        collectors = [_AudioCollector(s, start, stop) for s in audio_specs] if audio else []
        media.audio = {s: None for s in audio_specs}
        streams = ([video] if samplers else []) + ([audio] if collectors else [])
        if not streams:
            return media
        for stream in streams:
            stream.thread_type = "AUTO"
        if start > 0:
            anchor = streams[0]
            container.seek(int(start / anchor.time_base), stream=anchor, backward=True)
        resized: dict = {}  # a frame resized once per (size, crop), shared by the samplers
        for frame in _decoded(container, streams, path):
            if frame.time is None:
                continue
            if isinstance(frame, av.AudioFrame):
                for collector in collectors:
                    collector.feed(frame)
            else:
                resized.clear()
                for sampler in samplers:
                    sampler.feed(frame, resized)
            if all(s.done for s in samplers) and all(c.done for c in collectors):
                break
        if video is not None:
            period = 1 / float(video.average_rate) if video.average_rate else 0.0
            for sampler in samplers:
                sampler.finish(period or 1 / sampler.spec.fps, resized)
                if not sampler.frames:
                    raise DecodeError(f"{path}: no frames between {start}s and {end}s")
                media.frames[sampler.spec] = (np.stack(sampler.frames),
                                              np.asarray(sampler.times))
        for collector in collectors:
            if math.isinf(collector.stop) and not math.isnan(media.duration):
                collector.stop = start + media.duration  # drop the codec's padding at the end
            media.audio[collector.spec] = collector.waveform()
    return media


def decode_clip(path: str, spec: FrameSpec, start: float = 0.0,
                end: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
    """Decode a clip into ``frames (T, size, size, 3) uint8`` and ``times (T,) float64``."""
    return decode_media(path, [spec], start, end).frames[spec]
