import math
from fractions import Fraction

import av
import numpy as np
import pytest

from vlpipe.decode import AudioSpec, DecodeError, FrameSpec, decode_clip, decode_media


def _write_counter_video(path, n_frames=20, fps=10, size=32):
    """Frame i is uniformly grey with level 10 * i: the decoded value tells the frame index."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"qp": "0"}
        for i in range(n_frames):
            image = np.full((size, size, 3), 10 * i, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())


def _indices(frames):
    return [round(f.mean() / 10) for f in frames]


def test_samples_at_target_rate_with_held_frames(tmp_path):
    path = tmp_path / "counter.mp4"
    _write_counter_video(path)  # 20 frames at 10 fps = 2 s
    frames, times = decode_clip(str(path), FrameSpec(fps=5, size=16))
    assert frames.shape == (10, 16, 16, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(10) / 5)
    assert _indices(frames) == list(range(0, 20, 2))
    # Faster than the source: each frame is held for the targets it covers.
    frames, _ = decode_clip(str(path), FrameSpec(fps=20, size=16))
    assert _indices(frames) == [i // 2 for i in range(40)]


def test_start_and_end_select_the_span(tmp_path):
    path = tmp_path / "counter.mp4"
    _write_counter_video(path)
    frames, times = decode_clip(str(path), FrameSpec(fps=10, size=16), start=0.5, end=1.0)
    np.testing.assert_allclose(times, [0.0, 0.1, 0.2, 0.3, 0.4])  # from the clip start
    assert _indices(frames) == [5, 6, 7, 8, 9]


def test_resize_keeps_aspect_and_centre_crops(tmp_path):
    path = tmp_path / "wide.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        image = np.zeros((32, 64, 3), dtype=np.uint8)
        image[:, 16:48] = 200  # the centre half is bright: the crop must keep only it
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    frames, _ = decode_clip(str(path), FrameSpec(fps=10, size=16))
    assert frames.shape[1:] == (16, 16, 3)
    assert frames[:, :, 2:-2].min() > 150


def test_synthetic_clip_decodes(tiny_clips):
    row = tiny_clips.iloc[0]
    frames, times = decode_clip(row.video_path, FrameSpec(fps=5, size=32), row.start, row.end)
    assert frames.shape == (10, 32, 32, 3)
    assert math.isclose(times[-1], 1.8)


@pytest.mark.parametrize("content", [b"", b"this is not a video"])
def test_unreadable_file_names_the_path(tmp_path, content):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match=r"broken\.mp4"):
        decode_clip(str(path), FrameSpec(fps=5, size=16))


def _write_tone(path, seconds=2.0, rate=22050, hz=1000.0, video=True, fps=10, size=32):
    """A grey counter video (optional) with a pure ``hz`` tone."""
    with av.open(str(path), "w") as container:
        if video:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        if video:
            for i in range(round(seconds * fps)):
                image = np.full((size, size, 3), 10 * i, dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            container.mux(stream.encode())
        tone = 0.5 * np.sin(2 * np.pi * hz * np.arange(round(seconds * rate)) / rate)
        frame = av.AudioFrame.from_ndarray(tone[None].astype(np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode())


def test_one_pass_serves_several_frame_specs_and_resampled_audio(tmp_path):
    path = tmp_path / "tone.mp4"
    _write_tone(path)
    small, squashed, sound = FrameSpec(5, 16), FrameSpec(10, 8, crop=False), AudioSpec(16000)
    media = decode_media(str(path), [small, squashed, sound])
    assert math.isclose(media.duration, 2.0, abs_tol=0.05)
    frames, times = media.frames[small]
    np.testing.assert_array_equal(frames, decode_clip(str(path), small)[0])
    np.testing.assert_allclose(times, np.arange(10) / 5)
    assert _indices(media.frames[squashed][0]) == list(range(20))
    waveform = media.audio[sound]
    assert waveform.dtype == np.float32 and abs(len(waveform) - 32000) <= 16
    spectrum = np.abs(np.fft.rfft(waveform[4000:20000]))
    assert abs(np.argmax(spectrum) - 1000) <= 2  # 1 s of samples: 1 Hz bins; the tone


def test_audio_span_and_missing_streams(tmp_path, tiny_world):
    path = tmp_path / "tone.mp4"
    _write_tone(path)
    sound = AudioSpec(8000)
    assert len(decode_media(str(path), [sound], 0.5, 1.5).audio[sound]) == 8000
    audio_only = tmp_path / "audio only.mp4"
    _write_tone(audio_only, video=False)
    assert len(decode_media(str(audio_only), [sound]).audio[sound]) > 15000
    with pytest.raises(DecodeError, match=r"audio only\.mp4: no video stream"):
        decode_media(str(audio_only), [FrameSpec(5, 16), sound])
    silent = tmp_path / "silent.mp4"
    _write_counter_video(silent)
    media = decode_media(str(silent), [FrameSpec(5, 16), sound])
    assert media.audio[sound] is None and len(media.frames[FrameSpec(5, 16)][0]) == 10


def _write_timed_clip(path, times_ms, last_ms, codec="libx264", audio_click_ms=None):
    """Grey counter frames (frame i at level 10 * i) shown at ``times_ms``, the last one for
    ``last_ms``, each packet carrying its real duration; with ``audio_click_ms``, a 16 kHz PCM
    track from 0 to the video's end, silent but for one click then. The suffix picks the
    container."""
    tb, size = Fraction(1, 1000), 16
    durations = dict(zip(times_ms, [*np.diff(times_ms).tolist(), last_ms], strict=True))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = tb
        if audio_click_ms is not None:  # every stream is added before the first packet
            sound = container.add_stream("pcm_s16le", rate=16000)
            sound.layout = "mono"
        for i, t in enumerate([*times_ms, None]):
            frame = None
            if t is not None:
                frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 10 * i, np.uint8),
                                                   format="rgb24")
                frame.pts, frame.time_base = t, tb
            for packet in stream.encode(frame):  # None: flush the encoder
                packet.duration = durations[packet.pts]
                container.mux(packet)
        if audio_click_ms is not None:
            wave = np.zeros(16 * (times_ms[-1] + last_ms), np.int16)
            wave[16 * audio_click_ms] = 20000
            frame = av.AudioFrame.from_ndarray(wave[None], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            container.mux(sound.encode(frame))
            container.mux(sound.encode())
    return path


def test_variable_frame_rate_last_frame_lasts_its_own_duration(tmp_path):
    # Frames at 0, 0.1 and 0.5 s, the last shown for 0.05 s: the clip ends at 0.55 s, though
    # one average frame interval (0.55 s / 3 frames) would hold the last frame to 0.683 s.
    path = _write_timed_clip(tmp_path / "vfr.mp4", [0, 100, 500], 50)
    with av.open(str(path)) as container:
        assert math.isclose(1 / container.streams.video[0].average_rate, 0.55 / 3)
    media = decode_media(str(path), [FrameSpec(10, 8), FrameSpec(5, 8)])
    assert math.isclose(media.duration, 0.55)
    frames, times = media.frames[FrameSpec(10, 8)]
    np.testing.assert_allclose(times, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])  # no step at 0.6
    assert _indices(frames) == [0, 1, 1, 1, 1, 2]
    frames, times = media.frames[FrameSpec(5, 8)]
    np.testing.assert_allclose(times, [0.0, 0.2, 0.4])  # the last frame falls between steps
    assert _indices(frames) == [0, 1, 1]


def test_matroska_video_starting_after_zero_counts_from_its_first_frame(tmp_path):
    # Ten frames 0.1 s apart from 0.007 s: FFmpeg declares the file 0.007 s long from 0.007 s
    # (Matroska's duration counts from 0); the clip is the video's 1.0 s, 10 steps at 10 fps.
    path = _write_timed_clip(tmp_path / "late.webm", [7 + 100 * i for i in range(10)], 100,
                             codec="libvpx")
    with av.open(str(path)) as container:
        assert (container.start_time, container.duration) == (7000, 1007000)
    media = decode_media(str(path), [FrameSpec(10, 8), FrameSpec(5, 8)])
    assert media.duration == 1.0
    frames, times = media.frames[FrameSpec(10, 8)]
    np.testing.assert_array_equal(times, np.arange(10) / 10)  # no step at t = 1.0
    assert _indices(frames) == list(range(10))
    frames, times = media.frames[FrameSpec(5, 8)]
    np.testing.assert_array_equal(times, np.arange(5) / 5)
    assert _indices(frames) == [0, 2, 4, 6, 8]
    frames, times = decode_clip(str(path), FrameSpec(10, 8), start=0.5, end=1.0)
    np.testing.assert_array_equal(times, np.arange(5) / 10)
    assert _indices(frames) == [5, 6, 7, 8, 9]  # t = 0.5 s after the first frame: frame 5


def test_audio_shares_the_video_start(tmp_path):
    # The audio starts at 0, the video at 0.007 s, a click at 0.507 s: at 0.5 s in the clip.
    path = _write_timed_clip(tmp_path / "late.mkv", [7 + 100 * i for i in range(10)], 100,
                             codec="libvpx", audio_click_ms=507)
    sound = AudioSpec(16000)
    media = decode_media(str(path), [FrameSpec(10, 8), sound])
    assert len(media.frames[FrameSpec(10, 8)][1]) == 10
    assert len(media.audio[sound]) == 16000 and np.argmax(np.abs(media.audio[sound])) == 8000
    waveform = decode_media(str(path), [sound], 0.25, 0.75).audio[sound]
    assert len(waveform) == 8000 and np.argmax(np.abs(waveform)) == 4000
