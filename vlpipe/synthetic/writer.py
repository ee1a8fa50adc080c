"""Write one rendered clip to a deterministic H.264/AAC .mp4 with PyAV (and the LSMDC release
files' timestamps and rows).

Determinism: the encoders run single-threaded with fixed options (x264 macroblock-tree rate
control off, see ``VIDEO_OPTIONS``) and ``bitexact`` flags keep the muxer and encoders from
writing library version strings, so the same frames and waveform give byte-identical files for a
fixed PyAV/FFmpeg build. The mp4 muxer writes no creation time unless the metadata sets one.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vlpipe.atomic import atomic_path, write_text

# With mbtree on, x264 emitted run-to-run different (though identically decoding) bitstreams for
# some of these short clips; with it off the output is byte-stable.
VIDEO_OPTIONS = {"crf": "18", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0",
                 "flags": "+bitexact"}
AUDIO_OPTIONS = {"flags": "+bitexact"}
AUDIO_BIT_RATE = 48_000


def _add_video(container: av.container.OutputContainer, height: int, width: int,
               fps: int) -> av.video.VideoStream:
    stream = container.add_stream("libx264", rate=fps, options=VIDEO_OPTIONS)
    stream.height, stream.width = height, width
    stream.pix_fmt = "yuv420p"
    stream.codec_context.thread_count = 1
    stream.codec_context.time_base = Fraction(1, fps)
    return stream


def _write_video(container: av.container.OutputContainer, stream: av.video.VideoStream,
                 frames: np.ndarray) -> None:
    for index, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = index
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _add_audio(container: av.container.OutputContainer, rate: int) -> av.audio.AudioStream:
    stream = container.add_stream("aac", rate=rate, options=AUDIO_OPTIONS)
    stream.layout = "mono"
    stream.bit_rate = AUDIO_BIT_RATE
    stream.codec_context.thread_count = 1
    return stream


def _write_audio(container: av.container.OutputContainer, stream: av.audio.AudioStream,
                 waveform: np.ndarray, rate: int) -> None:
    frame = av.AudioFrame.from_ndarray(waveform[None, :].astype(np.float32), format="fltp",
                                       layout="mono")
    frame.sample_rate = rate
    frame.pts = 0
    frame.time_base = Fraction(1, rate)
    container.mux(stream.encode(frame))  # PyAV re-chunks to the encoder's frame size
    container.mux(stream.encode(None))


def write_clip(path: Path, frames: np.ndarray, fps: int, waveform: np.ndarray | None = None,
               audio_rate: int = 16_000) -> None:
    """Atomically write ``frames`` (T×H×W×3 uint8 RGB) and an optional mono waveform to ``path``.

    ``waveform`` is float32 in [-1, 1] at ``audio_rate``; ``None`` writes a clip without audio.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be T×H×W×3 uint8, got {frames.shape} {frames.dtype}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"yuv420p needs even frame sizes, got {frames.shape[1:3]}")
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4",
                                            container_options={"fflags": "+bitexact"}) as out:
        # Streams must all exist before the first packet is muxed.
        video = _add_video(out, frames.shape[1], frames.shape[2], fps)
        audio = _add_audio(out, audio_rate) if waveform is not None else None
        _write_video(out, video, frames)
        if audio is not None:
            _write_audio(out, audio, waveform, audio_rate)


def lsmdc_time(seconds: float) -> str:
    """An LSMDC timestamp, ``HH.MM.SS.mmm``."""
    millis = round(seconds * 1000)
    return (f"{millis // 3_600_000:02d}.{millis // 60_000 % 60:02d}."
            f"{millis // 1000 % 60:02d}.{millis % 1000:03d}")


def write_tsv(path: Path, rows: list[list[str]]) -> None:
    """Rows as a header-less, unquoted, tab-separated file (LSMDC's release files)."""
    write_text(path, "".join("\t".join(row) + "\n" for row in rows))
