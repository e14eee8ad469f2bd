"""Perceptual descriptors of one snare, used to orient the knobs and colour the map."""

from __future__ import annotations

import numpy as np

BRIGHTNESS_WINDOW_MS = 100.0  # the attack carries most of what reads as "bright"
DECAY_ENERGY_FRACTION = 0.95


def brightness_hz(wave: np.ndarray, sample_rate: int) -> float:
    """Spectral centroid of the first 100 ms, in Hz."""
    head = wave[: int(BRIGHTNESS_WINDOW_MS * 1e-3 * sample_rate)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(head * np.hanning(head.size)))
    freqs = np.fft.rfftfreq(head.size, 1.0 / sample_rate)
    total = spectrum.sum()
    return float((freqs * spectrum).sum() / total) if total > 0 else 0.0


def decay_s(wave: np.ndarray, sample_rate: int) -> float:
    """Time by which 95% of the snare's energy has sounded, in seconds."""
    energy = np.cumsum(wave.astype(np.float64) ** 2)
    if energy[-1] <= 0:
        return 0.0
    return float(np.searchsorted(energy, DECAY_ENERGY_FRACTION * energy[-1]) / sample_rate)


def describe(waves: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, n_samples) -> brightness in Hz (N,), decay in s (N,)"""
    return (
        np.array([brightness_hz(w, sample_rate) for w in waves]),
        np.array([decay_s(w, sample_rate) for w in waves]),
    )
