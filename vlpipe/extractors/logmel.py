"""The VGGish log-mel front end, numerically as in Google's reference input pipeline.

A mono waveform → magnitude STFT (25 ms periodic-Hann window, 10 ms hop, FFT length the next
power of two) → 64 HTK-mel bands between 125 and 7500 Hz → ``log(mel + 0.01)`` → examples of
96 frames (0.96 s) without overlap. Everything is vectorised numpy in float64, like the reference.
"""

from __future__ import annotations

import math

import numpy as np

RATE = 16_000
WINDOW_SECONDS = 0.025
HOP_SECONDS = 0.010
MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_SECONDS = 0.96  # both the length and the hop of an example
EXAMPLE_FRAMES = round(EXAMPLE_SECONDS / HOP_SECONDS)  # 96


def hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """The HTK mel scale: ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def mel_matrix(spectrogram_bins: int, rate: int = RATE, bands: int = MEL_BANDS,
               low_hz: float = MEL_MIN_HZ, high_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """``(spectrogram_bins, bands)`` triangular weights, linear in mel; the DC row is zero.

    The linear bins span 0 .. Nyquist; band ``i`` rises from edge ``i`` to edge ``i + 1`` and
    falls to edge ``i + 2`` of ``bands + 2`` mel-spaced edges between ``low_hz`` and ``high_hz``.
    """
    nyquist = rate / 2
    if not 0.0 <= low_hz < high_hz <= nyquist:
        raise ValueError(f"need 0 <= low_hz < high_hz <= Nyquist ({nyquist}), "
                         f"got {low_hz}, {high_hz}")
    bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, spectrogram_bins))[:, None]  # (B, 1)
    edges = np.linspace(hertz_to_mel(low_hz), hertz_to_mel(high_hz), bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]  # (bands,) each
    rising = (bins_mel - lower) / (centre - lower)
    falling = (upper - bins_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))  # (B, bands)
    weights[0, :] = 0.0  # HTK leaves out the DC bin
    return weights


def periodic_hann(length: int) -> np.ndarray:
    """The periodic Hann window (one period of a raised cosine, not symmetric)."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / length)


def frame_count(length: int, window: int, hop: int) -> int:
    """How many whole windows of ``window`` fit in ``length`` at ``hop`` (0 if none)."""
    return 0 if length < window else 1 + (length - window) // hop


def log_mel_spectrogram(waveform: np.ndarray, rate: int = RATE) -> np.ndarray:
    """``waveform (S,)`` → ``(F, 64)`` log-mel frames, F = 1 + (S - 400) // 160 at 16 kHz."""
    window = round(rate * WINDOW_SECONDS)
    hop = round(rate * HOP_SECONDS)
    fft_length = 2 ** math.ceil(math.log2(window))
    samples = np.asarray(waveform, dtype=np.float64)
    count = frame_count(len(samples), window, hop)
    if count == 0:
        return np.zeros((0, MEL_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(samples, window)[::hop][:count]  # (F, W)
    spectrum = np.fft.rfft(frames * periodic_hann(window), n=fft_length, axis=-1)
    magnitude = np.abs(spectrum)  # (F, fft_length / 2 + 1)
    mel = magnitude @ mel_matrix(magnitude.shape[1], rate)
    return np.log(mel + LOG_OFFSET)


def waveform_to_examples(waveform: np.ndarray, rate: int = RATE) -> np.ndarray:
    """``waveform (S,)`` → ``(N, 96, 64) float32`` examples of consecutive log-mel frames; a
    trailing part shorter than 0.96 s is dropped, audio shorter than one example gives N = 0."""
    log_mel = log_mel_spectrogram(waveform, rate)
    count = len(log_mel) // EXAMPLE_FRAMES
    # (count · 96, 64) → (count, 96, 64): the example hop equals its length
    examples = log_mel[: count * EXAMPLE_FRAMES].reshape(count, EXAMPLE_FRAMES, MEL_BANDS)
    return examples.astype(np.float32)
