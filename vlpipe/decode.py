"""Video decoding with PyAV: frames sampled at a target rate, resized and centre-cropped.

Decoding streams frame by frame, so memory is bounded by what the caller keeps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np


class DecodeError(RuntimeError):
    """A video that cannot be decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class FrameSpec:
    """What an extractor needs from decoding: ``fps`` frames per second, ``size``×``size`` RGB
    (shorter side resized to ``size``, then centre-cropped)."""

    fps: float
    size: int


def _resize_crop(frame: av.VideoFrame, size: int) -> np.ndarray:
    scale = size / min(frame.width, frame.height)
    width = max(size, round(frame.width * scale))
    height = max(size, round(frame.height * scale))
    rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
    top, left = (height - size) // 2, (width - size) // 2
    return rgb[top : top + size, left : left + size]


def iter_frames(path: str, spec: FrameSpec, start: float = 0.0,
                end: float = math.nan) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time, frame (size, size, 3) uint8)`` at ``start + k / fps`` for k = 0, 1, ...

    Each target time gets the last frame shown at or before it (the first frame for times
    before it). Sampling stops at ``end`` (NaN: the end of the file).
    """
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as err:
        raise DecodeError(f"{path}: cannot open video ({err})") from None
    with container:
        if not container.streams.video:
            raise DecodeError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        period = 1 / float(stream.average_rate) if stream.average_rate else 1 / spec.fps
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        stop = end if not math.isnan(end) else math.inf
        k, target = 0, start
        held, held_time, held_rgb = None, 0.0, None
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                while held is not None and target < min(frame.time, stop):
                    held_rgb = held_rgb if held_rgb is not None else _resize_crop(held, spec.size)
                    yield target, held_rgb
                    k, target = k + 1, start + (k + 1) / spec.fps
                if target >= stop:
                    return
                held, held_time, held_rgb = frame, frame.time, None
        except av.error.FFmpegError as err:
            raise DecodeError(f"{path}: decoding failed after {k} samples ({err})") from None
        # At the end of the stream the last frame stays on screen for one frame period.
        while held is not None and target < min(held_time + period, stop):
            held_rgb = held_rgb if held_rgb is not None else _resize_crop(held, spec.size)
            yield target, held_rgb
            k, target = k + 1, start + (k + 1) / spec.fps


def decode_clip(path: str, spec: FrameSpec, start: float = 0.0,
                end: float = math.nan) -> tuple[np.ndarray, np.ndarray]:
    """Decode a clip into ``frames (T, size, size, 3) uint8`` and ``times (T,) float64``."""
    sampled = list(iter_frames(path, spec, start, end))
    if not sampled:
        raise DecodeError(f"{path}: no frames between {start}s and {end}s")
    times, frames = zip(*sampled, strict=True)
    return np.stack(frames), np.asarray(times)
