"""Near-duplicate rejection: the same hit, whatever its gain, offset, sample rate or package.

Each hit is first conditioned exactly as the dataset loader does it (mono,
resampled to 22.05 kHz, onset-aligned, peak-normalized). Two measures:

- the envelope distance: a log-magnitude STFT pooled into 32 log-spaced bands,
  in dB under its own maximum (floored at -60 dB); the mean absolute
  difference over the cells where either hit is above -50 dB, at the best of
  ±1 frame lag. It says how alike two hits *sound*.
- the waveform similarity: the peak normalized cross-correlation of the first
  0.3 s within ±10 ms. It says whether two hits come from one *recording*
  (gain, resampling and a synth's velocity filter keep it near 1; two strokes
  on one drum, with different noise, fall far below).

A hit is a duplicate of one already kept if they sound the same
(envelope < SAME_SOUND_DB), or are one recording that sounds nearly the same
(envelope < SAME_SOURCE_DB and waveform >= SAME_SOURCE_CORR).

Measured on the real sources: gain-scaled copies (Hydrogen's Gimme A Hand
velocity layers, soundfont presets sharing a sample) are under 0.1 dB; one
soundfont sample at velocities 80/127 is 0.2-2 dB with correlation >= 0.96;
distinct strokes of one drum (The Black Pearl's layers) are >= 2.1 dB with
correlation 0.6-0.87, and some kits' "layers" (BJA_Pacific SN4_*) are one
recording reprocessed (1.8-2.1 dB, correlation >= 0.99).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ...files.audio import condition

FP_RATE = 22_050
FP_SECONDS = 0.75
N_FFT = 1024
HOP = 256
N_BANDS = 32
LOW_HZ = 40.0
FLOOR_DB = -60.0
ACTIVE_DB = -50.0  # cells above this in either fingerprint are compared
MAX_LAG_FRAMES = 1  # ±11.6 ms
WAVE_SECONDS = 0.3
MAX_LAG_MS = 10.0
SAME_SOUND_DB = 1.0
SAME_SOURCE_DB = 2.0
SAME_SOURCE_CORR = 0.9


@dataclass(frozen=True)
class Fingerprint:
    pcm_sha256: str  # exact duplicates: the same decoded samples at the same rate
    bands_db: np.ndarray  # (frames, N_BANDS) float32, dB under the maximum, floored
    wave: np.ndarray  # (WAVE_SECONDS * FP_RATE,) float32, onset-aligned, unit energy


def _band_matrix() -> np.ndarray:
    freqs = np.fft.rfftfreq(N_FFT, 1 / FP_RATE)
    edges = np.geomspace(LOW_HZ, FP_RATE / 2, N_BANDS + 1)
    weights = np.zeros((freqs.size, N_BANDS), np.float32)
    for b in range(N_BANDS):
        inside = (freqs >= edges[b]) & (freqs < edges[b + 1])
        if not inside.any():  # a low band narrower than one bin: take the nearest bin
            inside = np.abs(freqs - np.sqrt(edges[b] * edges[b + 1])) == np.min(
                np.abs(freqs - np.sqrt(edges[b] * edges[b + 1]))
            )
        weights[inside, b] = 1.0
    return weights


_BANDS = _band_matrix()
_WINDOW = np.hanning(N_FFT).astype(np.float32)


def fingerprint(mono: np.ndarray, sample_rate: int) -> Fingerprint:
    """Raises ValueError for a silent signal."""
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    pcm_sha = hashlib.sha256(f"{sample_rate}:".encode() + mono.tobytes()).hexdigest()
    x = condition(mono, sample_rate, FP_RATE, round(FP_SECONDS * FP_RATE))
    n_frames = 1 + (x.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n_frames, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2 @ _BANDS
    db = 10 * np.log10(power + 1e-20)
    db = np.maximum(db - db.max(), FLOOR_DB).astype(np.float32)
    wave = x[: round(WAVE_SECONDS * FP_RATE)]
    return Fingerprint(pcm_sha, db, wave / np.sqrt(np.sum(wave.astype(np.float64) ** 2)))


def waveform_similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Peak |normalized cross-correlation| of the two waves within ±MAX_LAG_MS."""
    n = 1 << int(np.ceil(np.log2(a.wave.size + b.wave.size)))
    corr = np.fft.irfft(np.fft.rfft(a.wave, n) * np.conj(np.fft.rfft(b.wave, n)), n)
    lag = round(MAX_LAG_MS * 1e-3 * FP_RATE)
    return float(np.max(np.abs(np.concatenate([corr[-lag:], corr[: lag + 1]]))))


def is_duplicate(envelope_db: float, similarity: float) -> bool:
    return envelope_db < SAME_SOUND_DB or (envelope_db < SAME_SOURCE_DB and similarity >= SAME_SOURCE_CORR)


def distance_db(a: Fingerprint, b: Fingerprint) -> float:
    """Mean absolute dB difference over the active cells, at the best lag; 0 for identical PCM."""
    if a.pcm_sha256 == b.pcm_sha256:
        return 0.0
    best = np.inf
    n = a.bands_db.shape[0]
    for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
        x = a.bands_db[max(0, lag) : n + min(0, lag)]
        y = b.bands_db[max(0, -lag) : n + min(0, -lag)]
        active = (x > ACTIVE_DB) | (y > ACTIVE_DB)
        if active.any():
            best = min(best, float(np.mean(np.abs(x - y)[active])))
    return best


class DuplicateFilter:
    """Keeps the first of every group of near-duplicates, in the order hits are offered."""

    def __init__(self):
        self._kept: list[Fingerprint] = []
        self._names: list[str] = []
        self._drums: list[str] = []  # the drum each kept hit is a layer of ("" for none)
        self._by_sha: dict[str, str] = {}
        self._stack: np.ndarray | None = None  # (capacity, frames, N_BANDS), the first len(self._names) rows kept

    def offer(self, name: str, fp: Fingerprint, drum: str = "") -> tuple[str, float, float] | None:
        """None if `fp` is new (and now kept under `name`), else (the kept twin's name, envelope
        distance in dB, waveform similarity). A hit of `drum` is never a duplicate of another
        layer of the same drum: a softer layer that sounds like the harder one is that drum's
        velocity data, not a copy (an identical file still is)."""
        if fp.pcm_sha256 in self._by_sha:
            return self._by_sha[fp.pcm_sha256], 0.0, 1.0
        if self._names:
            distances = self._distances(fp)
            for i in np.argsort(distances):
                if distances[i] >= SAME_SOURCE_DB:
                    break
                if drum and self._drums[i] == drum:
                    continue
                similarity = waveform_similarity(fp, self._kept[i])
                if is_duplicate(float(distances[i]), similarity):
                    return self._names[i], float(distances[i]), similarity
        if self._stack is None or len(self._names) == self._stack.shape[0]:
            grown = np.zeros((max(64, 2 * len(self._names)), *fp.bands_db.shape), np.float32)
            if self._stack is not None:
                grown[: len(self._names)] = self._stack
            self._stack = grown
        self._stack[len(self._names)] = fp.bands_db
        self._kept.append(fp)
        self._names.append(name)
        self._drums.append(drum)
        self._by_sha[fp.pcm_sha256] = name
        return None

    def _distances(self, fp: Fingerprint) -> np.ndarray:
        """distance_db against every kept fingerprint at once."""
        kept, n = self._stack[: len(self._names)], fp.bands_db.shape[0]
        best = np.full(kept.shape[0], np.inf)
        for lag in range(-MAX_LAG_FRAMES, MAX_LAG_FRAMES + 1):
            x = fp.bands_db[None, max(0, lag) : n + min(0, lag)]
            y = kept[:, max(0, -lag) : n + min(0, -lag)]
            active = (x > ACTIVE_DB) | (y > ACTIVE_DB)
            diff = np.where(active, np.abs(x - y), 0.0).sum(axis=(1, 2)) / np.maximum(active.sum(axis=(1, 2)), 1)
            best = np.minimum(best, diff)
        return best
