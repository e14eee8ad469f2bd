"""What the plane must do, for any model family: reach, silence, a full plane, a round trip.

- reach: held-out snares encoded and decoded, multi-resolution log-STFT distance to the
  original (median), beside three references: PCA-2 fitted on the training split, the mean
  training snare played every time, and the nearest training snare (an oracle with perfect
  memory and perfect choice);
- tail: 8-16 kHz energy 0.35-0.55 s after the onset, in dB re the snare's peak, over a 9x9
  knob grid (median and worst): hiss shows here, real snares sit at -70 to -90 dB;
- plane: how many of the 16 cells of a 4x4 knob grid the held-out snares land in; the 9x9
  grid's mean pairwise distance against the training corpus's; the largest step between
  grid neighbours against the median step;
- round trip: a snare rendered at each 9x9 grid point, encoded again: the largest knob error.

Every number goes through the numpy model, exactly as the instrument plays it.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from ..files.audio import ONSET_THRESHOLD_DB
from ..model.knobs import CC_MAX, KnobMap
from .feel import reference_feel
from .spectral import log_stft_distance

GRID_STEPS = 9
TAIL_WINDOW_S = (0.35, 0.55)
TAIL_BAND_HZ = (8_000.0, 16_000.0)
PLANE_CELLS = 4
WARP_STEPS = 17  # grid on which the knobs' warp is measured
PAIRWISE_SUBSET = 96  # corpus snares in the pairwise-diversity reference (all pairs of a fixed subset)


def lsd(a: np.ndarray, b: np.ndarray, batch: int = 64) -> np.ndarray:
    """Log-STFT distance per pair, (B, n) x2 -> (B,)"""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    out = []
    with torch.no_grad():
        for i in range(0, len(a), batch):
            out.append(
                log_stft_distance(
                    torch.from_numpy(np.ascontiguousarray(a[i : i + batch], np.float32)),
                    torch.from_numpy(np.ascontiguousarray(b[i : i + batch], np.float32)),
                ).numpy()
            )
    return np.concatenate(out)


def peak_normalized(waves: np.ndarray) -> np.ndarray:
    """Shapes, not levels: the instrument plays every snare at its own peak."""
    waves = np.nan_to_num(np.asarray(waves, np.float32))
    return waves / np.maximum(np.max(np.abs(waves), axis=-1, keepdims=True), 1e-9)


def references(
    train: np.ndarray, val: np.ndarray, sample_rate: int | None = None, train_snares=None, val_snares=None
) -> dict:
    """Median held-out distance of PCA-2, the mean snare, and the nearest training snare; with a
    `sample_rate`, also the feel's measures of those three and of the held-out originals
    (`feel.reference_feel`; the `Snares` give the velocity pairs where they know velocities)."""
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:2]
    pca = (mean + ((val - mean) @ basis.T) @ basis).astype(np.float32)
    distances = [lsd(np.repeat(v[None], len(train), 0), train) for v in val]
    out = {
        "pca2": float(np.median(lsd(val, pca))),
        "mean_snare": float(np.median(lsd(val, np.repeat(mean[None], len(val), 0)))),
        "nearest_train": float(np.median([d.min() for d in distances])),
    }
    if sample_rate is not None:
        nearest = train[[int(np.argmin(d)) for d in distances]]
        out["feel"] = reference_feel(
            train_snares if train_snares is not None else SimpleNamespace(waves=train),
            val_snares if val_snares is not None else SimpleNamespace(waves=val),
            sample_rate,
            pca,
            mean,
            nearest,
        )
    return out


def fit_length(waves: np.ndarray, n_samples: int) -> np.ndarray:
    """Renders cut or zero-padded to the originals' length, for distances that compare whole files
    (a model may render longer than the dataset's clips)."""
    waves = np.asarray(waves)
    if waves.shape[-1] >= n_samples:
        return waves[..., :n_samples]
    return np.pad(waves, [(0, 0)] * (waves.ndim - 1) + [(0, n_samples - waves.shape[-1])])


def tail_db(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """(B, n) -> (B,) 8-16 kHz RMS 0.35-0.55 s after each onset, in dB re the snare's peak."""
    out = []
    for wave in np.atleast_2d(waves):
        peak = float(np.max(np.abs(wave)))
        onset = int(np.argmax(np.abs(wave) >= peak * 10 ** (ONSET_THRESHOLD_DB / 20)))
        lo, hi = onset + int(TAIL_WINDOW_S[0] * sample_rate), onset + int(TAIL_WINDOW_S[1] * sample_rate)
        segment = np.zeros(hi - lo)
        part = wave[lo:hi]
        segment[: part.size] = part
        spectrum = np.fft.rfft(segment * np.hanning(segment.size))
        freqs = np.fft.rfftfreq(segment.size, 1.0 / sample_rate)
        band = (freqs >= TAIL_BAND_HZ[0]) & (freqs < TAIL_BAND_HZ[1])
        # Parseval, with the Hann window's mean square (3/8) taken out: the band's RMS in the window.
        rms = np.sqrt(2 * np.sum(np.abs(spectrum[band]) ** 2) / segment.size**2 / 0.375)
        out.append(20 * np.log10(max(rms, 1e-12) / max(peak, 1e-12)))
    return np.array(out)


def knob_grid(model, steps: int = GRID_STEPS) -> tuple[np.ndarray, np.ndarray]:
    """The CC grid (steps*steps, 2), row-major with y outer, and its snares as decoded."""
    ccs = np.linspace(0, CC_MAX, steps)
    points = np.array([(x, y) for y in ccs for x in ccs])
    return points, np.stack([model.decode(model.knobs.cc_to_latent(x, y)) for x, y in points])


def plane_metrics(model, grid_waves: np.ndarray, train: np.ndarray, val_cc: np.ndarray) -> dict:
    n = int(round(np.sqrt(len(grid_waves))))
    grid = grid_waves.reshape(n, n, -1)
    steps = np.concatenate(
        [
            lsd(grid[:, :-1].reshape(-1, grid.shape[-1]), grid[:, 1:].reshape(-1, grid.shape[-1])),
            lsd(grid[:-1].reshape(-1, grid.shape[-1]), grid[1:].reshape(-1, grid.shape[-1])),
        ]
    )
    i, j = np.triu_indices(len(grid_waves), 1)
    grid_pairwise = float(np.mean(lsd(grid_waves[i], grid_waves[j])))
    subset = train[np.random.default_rng(0).permutation(len(train))[:PAIRWISE_SUBSET]]
    i, j = np.triu_indices(len(subset), 1)
    corpus_pairwise = float(np.mean(lsd(subset[i], subset[j])))
    cells = {
        (
            min(int(x * PLANE_CELLS / (CC_MAX + 1)), PLANE_CELLS - 1),
            min(int(y * PLANE_CELLS / (CC_MAX + 1)), PLANE_CELLS - 1),
        )
        for x, y in val_cc
    }
    return {
        "cells_hit": len(cells),
        "diversity": grid_pairwise / corpus_pairwise,
        "step_max_over_median": float(steps.max() / np.median(steps)),
        "step_median": float(np.median(steps)),
    }


def round_trip_cc(model, grid_points: np.ndarray, grid_waves: np.ndarray) -> float:
    """The largest knob error (in CC) when each grid snare is encoded again."""
    errors = [
        np.max(np.abs(np.array(model.knobs.latent_to_cc(model.encode(w))) - cc))
        for cc, w in zip(grid_points, grid_waves)
    ]
    return float(np.max(errors))


def sound_metrics(
    model,
    train: np.ndarray,
    val: np.ndarray,
    val_latents: np.ndarray | None = None,
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """`val_latents` and `grid` (from `knob_grid`): what the caller has already computed, if anything."""
    val_latents = model.encode(val) if val_latents is None else val_latents
    recon = fit_length(model.decode(val_latents), val.shape[-1])
    val_cc = np.array([model.knobs.latent_to_cc(z) for z in val_latents])
    points, grid_waves = knob_grid(model) if grid is None else grid
    grid_waves = peak_normalized(grid_waves)
    tails = tail_db(grid_waves, model.sample_rate)
    return {
        "val_log_stft": float(np.median(lsd(val, recon))),
        "tail_db_median": float(np.median(tails)),
        "tail_db_worst": float(np.max(tails)),
        **plane_metrics(model, grid_waves, train, val_cc),
        "round_trip_cc": round_trip_cc(model, points, grid_waves),
    }


def even_steps(model, steps: int = WARP_STEPS) -> KnobMap:
    """The model's knob map with a warp that gives equal turns of each knob about equal changes
    in sound: along each axis, the steps between neighbouring grid snares (averaged over the
    other axis) are laid out evenly over the knob's travel."""
    knobs = KnobMap(model.knobs.axes, model.knobs.lo, model.knobs.hi)  # measured on the linear map
    ccs = np.linspace(0, CC_MAX, steps)
    grid = peak_normalized(np.stack([model.decode(knobs.cc_to_latent(x, y)) for y in ccs for x in ccs]))
    grid = grid.reshape(steps, steps, -1)  # [row = y, col = x]
    along_x = lsd(grid[:, :-1].reshape(-1, grid.shape[-1]), grid[:, 1:].reshape(-1, grid.shape[-1])).reshape(
        steps, steps - 1
    )
    along_y = lsd(grid[:-1].reshape(-1, grid.shape[-1]), grid[1:].reshape(-1, grid.shape[-1])).reshape(steps - 1, steps)
    warp = []
    for step in (along_x.mean(axis=0), along_y.mean(axis=1)):
        if not np.all(np.isfinite(step)) or step.max() <= 0:
            return knobs  # every knob position sounds the same (a collapsed model): nothing to even out
        arc = np.concatenate([[0.0], np.cumsum(np.maximum(step, 1e-6 * step.max()))])
        # The knob fraction t reaches the box fraction where the sound has changed by t of the total.
        warp.append(np.interp(np.linspace(0, 1, steps), arc / arc[-1], np.linspace(0, 1, steps)))
    return KnobMap(knobs.axes, knobs.lo, knobs.hi, np.array(warp))
