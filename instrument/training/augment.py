"""Augmented snares, the way drum-synthesis work widens a small corpus.

Each variant of a real snare combines a few changes a producer would make
with a sampler: repitch by up to +-3 semitones, remix its tone (below a split
frequency) against its noise (above), scale its attack, shorten its tail, and
tilt its EQ. Variants are onset-aligned like the originals and peak-normalized.
Numpy only; seeded, so a training run sees the same variants on resume.
"""

from __future__ import annotations

import numpy as np

MAX_SEMITONES = 3.0
SPLIT_HZ = (300.0, 2000.0)  # tone/noise split frequency range
REMIX_DB = 6.0  # the noise part moves by up to this, against the tone
ATTACK_MS = 8.0
ATTACK_DB = 6.0
TAIL_DECAY_S = (0.08, 0.6)  # an extra exponential decay after the attack, when shortening
TILT_DB_PER_OCTAVE = 1.5
REFERENCE_HZ = 1000.0


def _repitch(wave: np.ndarray, semitones: float) -> np.ndarray:
    """Play faster or slower (pitch and length together, as a sampler does), same length out."""
    speed = 2.0 ** (semitones / 12.0)
    n = wave.size
    positions = np.arange(n) * speed
    return np.interp(positions, np.arange(n), wave, right=0.0)


def _spectral(wave: np.ndarray, sample_rate: int, gain_of_hz) -> np.ndarray:
    spectrum = np.fft.rfft(wave)
    freqs = np.fft.rfftfreq(wave.size, 1.0 / sample_rate)
    return np.fft.irfft(spectrum * gain_of_hz(freqs), n=wave.size)


def augment_one(wave: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    x = _repitch(wave.astype(np.float64), rng.uniform(-MAX_SEMITONES, MAX_SEMITONES))
    split_hz = np.exp(rng.uniform(*np.log(SPLIT_HZ)))
    noise_gain = 10 ** (rng.uniform(-REMIX_DB, REMIX_DB) / 20)
    tilt = rng.uniform(-TILT_DB_PER_OCTAVE, TILT_DB_PER_OCTAVE)
    # One spectral pass: a smooth tone/noise crossover, then the tilt around 1 kHz.
    x = _spectral(
        x,
        sample_rate,
        lambda f: (
            (1 + (noise_gain - 1) / (1 + (split_hz / np.maximum(f, 1.0)) ** 4))
            * 10 ** (tilt * np.log2(np.maximum(f, 20.0) / REFERENCE_HZ) / 20)
        ),
    )
    t = np.arange(x.size) / sample_rate
    attack = int(ATTACK_MS * 1e-3 * sample_rate)
    attack_gain = 10 ** (rng.uniform(-ATTACK_DB, ATTACK_DB) / 20)
    x[:attack] *= np.linspace(attack_gain, 1.0, attack)
    if rng.random() < 0.5:  # half the variants get a shorter tail
        tau = rng.uniform(*TAIL_DECAY_S)
        x *= np.exp(-np.maximum(t - ATTACK_MS * 1e-3, 0.0) / tau)
    peak = np.max(np.abs(x))
    return (x / peak if peak > 0 else x).astype(np.float32)


def augment_corpus(waves: np.ndarray, sample_rate: int, per_clip: int, rng: np.random.Generator) -> np.ndarray:
    """(N, n) real snares -> (N * per_clip, n) variants."""
    if per_clip <= 0 or len(waves) == 0:
        return np.zeros((0, waves.shape[1]), np.float32)
    return np.stack([augment_one(w, sample_rate, rng) for w in waves for _ in range(per_clip)])
