"""Small signal helpers with units in their names. No state, no threads."""

from __future__ import annotations

import numpy as np
import soxr

DC_BLOCK_HZ = 20.0
TAIL_FADE_MS = 10.0
# Every playable snare is normalized to this peak, so velocity alone sets the level and a
# few stacked hits still pass under the limiter's ceiling without much gain reduction.
SNARE_PEAK_DB = -6.0
# Every model's output layer is bounded (tanh, sigmoid, or linear near unit scale): a decode this
# far above full scale means broken weights, and is refused rather than normalized into a sound.
MAX_DECODER_PEAK = 8.0


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def fade_out(n_samples: int, fade_samples: int) -> np.ndarray:
    """Gain curve of ones ending in a raised-cosine fade to exactly zero."""
    gain = np.ones(n_samples, dtype=np.float32)
    fade_samples = min(fade_samples, n_samples)
    if fade_samples > 0:
        gain[n_samples - fade_samples :] = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, fade_samples, dtype=np.float32))
    return gain


def velocity_to_gain(velocity: int, range_db: float) -> float:
    """MIDI velocity 1..127 -> linear gain, 127 at 0 dB and 1 at -range_db, straight in dB between."""
    velocity = min(max(int(velocity), 1), 127)
    return db_to_gain(-range_db * (127 - velocity) / 126)


def dc_block(wave: np.ndarray, sample_rate: int, cutoff_hz: float = DC_BLOCK_HZ) -> np.ndarray:
    """Subtract a centred moving average about one cutoff period long: removes DC and subsonic
    drift a decoder may add (it would thump on every hit), vectorized so it fits the knob budget."""
    window = max(3, int(sample_rate / cutoff_hz) | 1)
    padded = np.pad(wave.astype(np.float64), window // 2, mode="reflect" if wave.size > window // 2 else "edge")
    sums = np.cumsum(np.concatenate(([0.0], padded)))
    return (wave - (sums[window:] - sums[:-window]) / window).astype(np.float32)


def finish_snare(wave: np.ndarray, model_rate: int, out_rate: int) -> np.ndarray:
    """Decoder output -> playable snare at `out_rate`: DC-free, resampled, tail faded to zero,
    peak at SNARE_PEAK_DB. Raises ValueError for NaN/Inf, an absurd level, or a silent decode."""
    wave = np.asarray(wave, dtype=np.float32)
    if not np.all(np.isfinite(wave)):
        raise ValueError("decoder returned NaN or Inf")
    if float(np.max(np.abs(wave), initial=0.0)) > MAX_DECODER_PEAK:
        raise ValueError(f"decoder returned a peak above {MAX_DECODER_PEAK:g} (broken weights?)")
    wave = dc_block(wave, model_rate)
    if out_rate != model_rate:
        wave = soxr.resample(wave, model_rate, out_rate, quality="HQ")
    wave = wave.astype(np.float32, copy=False) * fade_out(wave.size, int(TAIL_FADE_MS * 1e-3 * out_rate))
    peak = float(np.max(np.abs(wave)))
    if peak < 1e-4:
        raise ValueError("decoder returned silence")
    return wave * (db_to_gain(SNARE_PEAK_DB) / peak)


def spectral_match(a: np.ndarray, b: np.ndarray, fft_size: int = 1024, hop: int = 256) -> float:
    """How alike two sounds are, 0..1: cosine similarity of their magnitude spectrograms
    (insensitive to small onset shifts and phase, which a listener does not hear either)."""
    n = min(a.size, b.size)

    def spectrogram(x):
        frames = np.lib.stride_tricks.sliding_window_view(np.asarray(x[:n], dtype=np.float64), fft_size)[::hop]
        return np.abs(np.fft.rfft(frames * np.hanning(fft_size), axis=1)).ravel()

    sa, sb = spectrogram(a), spectrogram(b)
    return float(np.dot(sa, sb) / (np.linalg.norm(sa) * np.linalg.norm(sb) + 1e-12))
