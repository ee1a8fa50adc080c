import math

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
