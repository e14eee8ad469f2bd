"""What a drummer hears in the first bar: the attack, the decay, velocity, round robins.

The plane's measures (`sound.py`) average a whole spectrogram; these look at the onset,
the slope of the decay and what changes from hit to hit. Every measure is numpy only and takes
waves as the instrument plays them (any length, any level: each is measured re its own peak).

The onset of a wave is where the dataset conditions it: the first sample within 30 dB of the
peak (`ONSET_THRESHOLD_DB`), less 0.5 ms (`ONSET_PREROLL_MS`). Every window below starts there.

1. **Onset rise** (`onset_rise_ms`): the RMS envelope over a centred 0.7-ms window; its largest
   value in the first 30 ms after the onset is the attack's peak. The rise time is the time from
   the last point below 10 % of that peak to the first point at 90 % of it (linear interpolation
   between samples), in ms.
2. **Crack** (`crack_db`): the first 12 ms after the onset (a 1-ms cosine fade at its end, none at
   its start, so the stick's first milliseconds count in full), zero-padded to 8192 samples: the
   energy in 2.5-16 kHz against the energy in 60-390 Hz, in dB.
3. **Boom** (`boom_db`): the first 230 ms after the onset (a 10-ms fade at the end): the 60-150 Hz
   band's share of all the segment's energy, in dB (0 dB: all of it).
4. **Largest fall** (`largest_fall_db`): the wave above 1 kHz, in consecutive 10-ms Hann frames
   (441 samples at 44.1 kHz, no overlap) from the onset. Each frame's level is in dB re the
   loudest frame and floored at -60 dB, so a decay into silence falls only as far as 60 dB below
   the peak. From 50 ms after the onset, for each frame still within 60 dB of the peak, the fall
   to the next frame; the largest such fall, in dB. A real snare decays smoothly (a few dB per
   10 ms); a band envelope that switches off falls 20-45 dB at once.
5. **Cut off** (`end_db`): the RMS of the wave's last 30 ms in dB re its peak sample. A position
   is cut off while audible when this is above -60 dB.
6. **Velocity** (`centroid_octaves`, `velocity_pairs`): the power spectral centroid of the first
   100 ms after the onset (a 10-ms fade at the end), as log2 of Hz, so differences are octaves.
   For each drum with layers at two velocities, the layers nearest velocity 70 (soft) and 120
   (hard); the real change is centroid(hard) - centroid(soft). The model's change: the drum's
   point (where its hard layer encodes), rendered at the hard layer's velocity minus the same
   point at the soft layer's velocity. Pairs whose real change is under 0.05 octave are one sample
   played at two levels (many soundfont presets): they are counted and left out. Reported: the
   fraction of the other pairs where the model moves the same way as the real drum (a model
   change of 0 moves no way), and the median model change over the median real change.
7. **Round robins** (`sound_distance_db`): how far apart two hits *sound*, in the measure the
   corpus builder uses to call two hits the same (`corpus/dedupe.py`: 32 log bands of 46-ms frames
   at 22.05 kHz, dB under each hit's own maximum, the mean |difference| over the cells where
   either is above -50 dB, at the best of +-1 frame; under 1 dB is "the same sound"). The
   variants' distance is the mean over pairs of variants at a few knob positions; the 4-CC step is
   the distance from variant 0 at those positions to variant 0 at the positions 4 CC to the right
   and up: a round robin must stay nearer its siblings than a small turn of a knob takes the sound.

`model_feel` gathers them for one model (as `latent-snare evaluate` stores them in its .json):
1-3 on the held-out snares against the model at the points they encode to (median of paired
differences, model minus original); 4-5 over the 9x9 knob grid (and 5 over 16x16); 6 on the
held-out pairs, and the training pairs too when fewer than 8 held-out ones are not flat; 7 at five
knob positions. `reference_feel` gives the same for the held-out originals themselves and for the
mean snare, PCA-2 and the nearest training snare standing in for each held-out snare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..files.audio import ONSET_PREROLL_MS, ONSET_THRESHOLD_DB
from ..model.knobs import CC_MAX
from .corpus.dedupe import distance_db, fingerprint

RISE_RMS_MS = 0.7
RISE_SEARCH_MS = 30.0
RISE_LOW, RISE_HIGH = 0.1, 0.9
CRACK_MS = 12.0
CRACK_HIGH_HZ = (2_500.0, 16_000.0)
CRACK_LOW_HZ = (60.0, 390.0)
CRACK_FADE_MS = 1.0
CRACK_FFT = 8192
BOOM_MS = 230.0
BOOM_HZ = (60.0, 150.0)
BOOM_FADE_MS = 10.0
FALL_FRAME_MS = 10.0
FALL_FROM_MS = 50.0
FALL_ABOVE_HZ = 1_000.0
FALL_RANGE_DB = 60.0
FALL_BIG_DB = 15.0  # a fall over this in 10 ms is a gate, not a decay
END_MS = 30.0
END_AUDIBLE_DB = -60.0
CENTROID_MS = 100.0
CENTROID_FADE_MS = 10.0
SOFT_VELOCITY, HARD_VELOCITY = 70.0, 120.0
FLAT_OCTAVES = 0.05  # a real change smaller than this is one sample at two levels: no direction to follow
BAND_FFT, BAND_HOP = 1024, 441
ROUND_ROBIN_CC = ((32.0, 32.0), (96.0, 32.0), (64.0, 64.0), (32.0, 96.0), (96.0, 96.0))
KNOB_STEP_CC = 4.0
FEEL_GRID_STEPS = 9
_TINY = 1e-20


def onset_index(wave: np.ndarray, sample_rate: int) -> int:
    """Where the dataset puts a snare's start: the first sample within 30 dB of the peak, less 0.5 ms."""
    wave = np.abs(np.nan_to_num(np.asarray(wave, np.float64)))
    peak = float(wave.max()) if wave.size else 0.0
    if peak <= 0:
        return 0
    first = int(np.argmax(wave >= peak * 10 ** (ONSET_THRESHOLD_DB / 20)))
    return max(0, first - int(ONSET_PREROLL_MS * 1e-3 * sample_rate))


def _segment(wave: np.ndarray, sample_rate: int, ms: float, fade_ms: float) -> np.ndarray:
    """`ms` from the onset (zero-padded past the wave's end), with a cosine fade over its last `fade_ms`."""
    start = onset_index(wave, sample_rate)
    n = int(round(ms * 1e-3 * sample_rate))
    out = np.zeros(n)
    part = np.asarray(wave[start : start + n], np.float64)
    out[: part.size] = np.nan_to_num(part)
    fade = min(n, int(round(fade_ms * 1e-3 * sample_rate)))
    if fade > 0:
        out[n - fade :] *= 0.5 * (1 + np.cos(np.pi * (np.arange(fade) + 1) / fade))
    return out


def _band_energy(power: np.ndarray, freqs: np.ndarray, band: tuple[float, float]) -> float:
    return float(np.sum(power[(freqs >= band[0]) & (freqs < band[1])]))


def rms_envelope(wave: np.ndarray, sample_rate: int, window_ms: float = RISE_RMS_MS) -> np.ndarray:
    """(n,) -> (n,) the RMS over a centred window of `window_ms` (zeros beyond the ends)."""
    width = max(1, int(round(window_ms * 1e-3 * sample_rate)))
    x = np.nan_to_num(np.asarray(wave, np.float64)) ** 2
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(x.size)
    lo = np.clip(idx - width // 2, 0, x.size)
    hi = np.clip(idx - width // 2 + width, 0, x.size)
    return np.sqrt(np.maximum(csum[hi] - csum[lo], 0.0) / width)


def onset_rise_ms(wave: np.ndarray, sample_rate: int) -> float:
    """10-90 % rise time of the 0.7-ms RMS envelope at the onset, in ms (measure 1)."""
    env = rms_envelope(wave, sample_rate)
    start = onset_index(wave, sample_rate)
    stop = min(env.size, start + int(RISE_SEARCH_MS * 1e-3 * sample_rate))
    if stop <= start or env[start:stop].max() <= 0:
        return float("nan")
    top = start + int(np.argmax(env[start:stop]))
    high, low = RISE_HIGH * env[top], RISE_LOW * env[top]
    # The first sample at 90 % of the peak, interpolated back towards the sample before it.
    i = start + int(np.argmax(env[start : top + 1] >= high))
    t90 = float(i) if i == 0 or env[i - 1] >= high else i - 1 + (high - env[i - 1]) / (env[i] - env[i - 1])
    # The last sample below 10 % before that, interpolated forwards (none: the wave starts loud).
    below = np.flatnonzero(env[:i] < low)
    if below.size:
        j = int(below[-1])
        t10 = j + (low - env[j]) / (env[j + 1] - env[j])
    else:
        t10 = 0.0
    return float(max(0.0, t90 - t10) / sample_rate * 1e3)


def crack_db(wave: np.ndarray, sample_rate: int) -> float:
    """First 12 ms: energy in 2.5-16 kHz against 60-390 Hz, in dB (measure 2)."""
    seg = _segment(wave, sample_rate, CRACK_MS, CRACK_FADE_MS)
    power = np.abs(np.fft.rfft(seg, CRACK_FFT)) ** 2
    freqs = np.fft.rfftfreq(CRACK_FFT, 1.0 / sample_rate)
    high = _band_energy(power, freqs, CRACK_HIGH_HZ)
    low = _band_energy(power, freqs, CRACK_LOW_HZ)
    return float(10 * np.log10((high + _TINY) / (low + _TINY)))


def boom_db(wave: np.ndarray, sample_rate: int) -> float:
    """60-150 Hz share of the first 230 ms's energy, in dB (measure 3)."""
    seg = _segment(wave, sample_rate, BOOM_MS, BOOM_FADE_MS)
    power = np.abs(np.fft.rfft(seg)) ** 2
    freqs = np.fft.rfftfreq(seg.size, 1.0 / sample_rate)
    return float(10 * np.log10((_band_energy(power, freqs, BOOM_HZ) + _TINY) / (float(np.sum(power)) + _TINY)))


def high_band_levels_db(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """Levels above 1 kHz in consecutive 10-ms Hann frames from the onset, dB re the loudest, floored at -60."""
    frame = int(round(FALL_FRAME_MS * 1e-3 * sample_rate))
    x = np.nan_to_num(np.asarray(wave, np.float64))[onset_index(wave, sample_rate) :]
    n_frames = x.size // frame
    if n_frames == 0:
        return np.zeros(0)
    frames = x[: n_frames * frame].reshape(n_frames, frame) * np.hanning(frame)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(frame, 1.0 / sample_rate)
    energy = power[:, freqs >= FALL_ABOVE_HZ].sum(axis=1)
    if energy.max() <= 0:
        return np.full(n_frames, -FALL_RANGE_DB)
    return np.maximum(10 * np.log10(energy / energy.max() + _TINY), -FALL_RANGE_DB)


def largest_fall_db(wave: np.ndarray, sample_rate: int) -> float:
    """The largest 10-ms fall above 1 kHz from 50 ms after the onset, within 60 dB of the peak (measure 4)."""
    levels = high_band_levels_db(wave, sample_rate)
    first = int(round(FALL_FROM_MS / FALL_FRAME_MS))
    if levels.size < first + 2:
        return 0.0
    before, after = levels[first:-1], levels[first + 1 :]
    falls = (before - after)[before > -FALL_RANGE_DB]
    return float(max(0.0, falls.max())) if falls.size else 0.0


def end_db(wave: np.ndarray, sample_rate: int) -> float:
    """RMS of the last 30 ms, in dB re the peak sample (measure 5: above -60 dB is cut off while audible)."""
    x = np.nan_to_num(np.asarray(wave, np.float64))
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    tail = x[-max(1, int(round(END_MS * 1e-3 * sample_rate))) :]
    return float(20 * np.log10((np.sqrt(np.mean(tail**2)) + 1e-12) / max(peak, 1e-12)))


def centroid_octaves(wave: np.ndarray, sample_rate: int) -> float:
    """log2 of the power spectral centroid (Hz) of the first 100 ms (measure 6)."""
    seg = _segment(wave, sample_rate, CENTROID_MS, CENTROID_FADE_MS)
    power = np.abs(np.fft.rfft(seg)) ** 2
    freqs = np.fft.rfftfreq(seg.size, 1.0 / sample_rate)
    total = float(power[1:].sum())
    if total <= 0:
        return float("nan")
    return float(np.log2(np.sum(freqs[1:] * power[1:]) / total))


def sound_distance_db(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """How far apart two hits sound, in dB: the corpus de-duplicator's envelope distance (measure 7)."""
    return distance_db(fingerprint(np.asarray(a), sample_rate), fingerprint(np.asarray(b), sample_rate))


# --- over sets of snares -------------------------------------------------------------------------


def per_wave(waves: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
    """The per-snare measures (1-5) of each row of `waves` (B, n)."""
    waves = np.atleast_2d(waves)
    return {
        "onset_rise_ms": np.array([onset_rise_ms(w, sample_rate) for w in waves]),
        "crack_db": np.array([crack_db(w, sample_rate) for w in waves]),
        "boom_db": np.array([boom_db(w, sample_rate) for w in waves]),
        "largest_fall_db": np.array([largest_fall_db(w, sample_rate) for w in waves]),
        "end_db": np.array([end_db(w, sample_rate) for w in waves]),
    }


PAIRED = ("onset_rise_ms", "crack_db", "boom_db")


def paired_differences(originals: np.ndarray, renders: np.ndarray, sample_rate: int) -> dict:
    """Measures 1-3 of `renders` minus those of the `originals` they stand for: the median of
    paired differences (`*_diff`), beside the originals' own median, as numbers for JSON."""
    real, model = per_wave(originals, sample_rate), per_wave(renders, sample_rate)
    out = {}
    for key in PAIRED:
        out[f"{key}_diff"] = float(np.nanmedian(model[key] - real[key]))
        out[f"{key}_original"] = float(np.nanmedian(real[key]))
    return out


def decay_summary(waves: np.ndarray, sample_rate: int) -> dict:
    """Measures 4-5 over a set of snares (a knob grid, or real ones): median and worst largest
    fall, how many fall more than 15 dB in 10 ms, how many are still audible at their end."""
    m = per_wave(waves, sample_rate)
    falls, ends = m["largest_fall_db"], m["end_db"]
    return {
        "count": int(len(falls)),
        "largest_fall_db_median": float(np.median(falls)),
        "largest_fall_db_worst": float(np.max(falls)),
        "falls_over_15_db": int(np.sum(falls > FALL_BIG_DB)),
        "cut_off": int(np.sum(ends > END_AUDIBLE_DB)),
        "end_db_worst": float(np.max(ends)),
    }


def grid_decay(model, steps: int = FEEL_GRID_STEPS, grid_waves: np.ndarray | None = None) -> dict:
    """`decay_summary` over a `steps` x `steps` knob grid at full velocity, variant 0 (pass the 9x9
    grid's waves if already rendered)."""
    if grid_waves is None:
        ccs = np.linspace(0, CC_MAX, steps)
        grid_waves = np.stack([model.decode_cc(x, y) for y in ccs for x in ccs])
    return {"grid_steps": int(round(np.sqrt(len(grid_waves)))), **decay_summary(grid_waves, model.sample_rate)}


@dataclass
class VelocityPair:
    """Two layers of one drum: indices into a `Snares`, and their MIDI velocities."""

    drum: str
    soft: int
    hard: int
    soft_velocity: float
    hard_velocity: float


def velocity_pairs(velocity, drums) -> list[VelocityPair]:
    """For each drum with layers at two or more velocities, the layer nearest 70 (soft) and the
    layer nearest 120 (hard) among the rest, harder than the soft one. Drums whose layers share
    one velocity (or have none known) give no pair."""
    if velocity is None or drums is None:
        return []
    velocity = np.asarray(velocity, np.float64)
    by_drum: dict[str, list[int]] = {}
    for i, drum in enumerate(drums):
        by_drum.setdefault(drum, []).append(i)
    pairs = []
    for drum, idx in by_drum.items():
        levels = sorted({float(velocity[i]) for i in idx if np.isfinite(velocity[i])})
        if len(levels) < 2:
            continue
        hard_v = min(levels[1:], key=lambda v: abs(v - HARD_VELOCITY))
        soft_v = min([v for v in levels if v < hard_v], key=lambda v: abs(v - SOFT_VELOCITY))
        soft = next(i for i in idx if velocity[i] == soft_v)
        hard = next(i for i in idx if velocity[i] == hard_v)
        pairs.append(VelocityPair(drum, soft, hard, soft_v, hard_v))
    return pairs


def _real_changes(waves: np.ndarray, pairs: list[VelocityPair], sample_rate: int) -> np.ndarray:
    return np.array(
        [centroid_octaves(waves[p.hard], sample_rate) - centroid_octaves(waves[p.soft], sample_rate) for p in pairs]
    )


def velocity_changes(model, waves: np.ndarray, pairs: list[VelocityPair], latents=None) -> dict:
    """Measure 6 on `pairs` of rows of `waves`: the real centroid change soft -> hard, and the
    model's at the point the hard layer encodes to (`latents`, one per row of `waves`, if known).
    Pairs whose real change is under `FLAT_OCTAVES` (one sample played at every velocity, as
    many soundfont presets do) have no direction to follow: they are counted (`flat_pairs`) and
    left out of the rest."""
    sr = model.sample_rate
    real_all = _real_changes(waves, pairs, sr) if pairs else np.zeros(0)
    moving = [p for p, r in zip(pairs, real_all) if abs(r) >= FLAT_OCTAVES]
    out = {"pairs": len(moving), "flat_pairs": len(pairs) - len(moving)}
    if not moving:
        return out
    real = real_all[np.abs(real_all) >= FLAT_OCTAVES]
    rendered = []
    for p in moving:
        z = model.encode(waves[p.hard]) if latents is None else latents[p.hard]
        hard = model.decode(z, velocity=p.hard_velocity)
        soft = model.decode(z, velocity=p.soft_velocity)
        rendered.append(centroid_octaves(hard, sr) - centroid_octaves(soft, sr))
    rendered = np.array(rendered)
    median_real = float(np.median(real))
    return {
        **out,
        "real_octaves_median": median_real,
        "model_octaves_median": float(np.median(rendered)),
        "same_direction": float(np.mean(np.sign(rendered) * np.sign(real) > 0)),
        "model_over_real": float(np.median(rendered) / median_real),
    }


def real_velocity_changes(waves: np.ndarray, pairs: list[VelocityPair], sample_rate: int) -> dict:
    """The real side of measure 6 alone (for the reference rows), flat pairs left out as above."""
    real = _real_changes(waves, pairs, sample_rate) if pairs else np.zeros(0)
    moving = real[np.abs(real) >= FLAT_OCTAVES]
    out = {"pairs": int(moving.size), "flat_pairs": int(real.size - moving.size)}
    if moving.size:
        out.update(real_octaves_median=float(np.median(moving)), rising=float(np.mean(moving > 0)))
    return out


def round_robin_distance(model, points_cc=ROUND_ROBIN_CC, velocity: float = 127.0) -> dict:
    """Measure 7: the mean distance between the variants at each point (0 with one variant)
    against the distance of a 4-CC knob step (right and up) from the same points, variant 0."""
    sr = model.sample_rate
    n = max(1, int(getattr(model, "n_variants", 1)))
    variant_d, step_d = [], []
    for x, y in points_cc:
        hits = [model.decode_cc(x, y, velocity=velocity, variant=k) for k in range(n)]
        variant_d += [sound_distance_db(hits[i], hits[j], sr) for i in range(n) for j in range(i + 1, n)]
        for dx, dy in ((KNOB_STEP_CC, 0.0), (0.0, KNOB_STEP_CC)):
            neighbour = model.decode_cc(min(CC_MAX, x + dx), min(CC_MAX, y + dy), velocity=velocity, variant=0)
            step_d.append(sound_distance_db(hits[0], neighbour, sr))
    variants = float(np.mean(variant_d)) if variant_d else 0.0
    step = float(np.mean(step_d))
    return {
        "variants": n,
        "variant_db": variants,
        "step_4cc_db": step,
        "variant_over_step": variants / step if step else 0.0,
    }


MIN_HELD_OUT_PAIRS = 8  # fewer held-out velocity pairs (not flat) than this: the training pairs are reported too


def model_feel(model, val, val_latents: np.ndarray, recon: np.ndarray, grid_waves: np.ndarray, train=None) -> dict:
    """Every measure of this module for one model, as numbers for its .json.

    `val` and `train` are `Snares` (`velocity` and `drums` are used where they exist);
    `val_latents` their encoded points, `recon` the renders there, `grid_waves` the 9x9 knob
    grid (`sound.knob_grid`). A model that plays velocity is compared with each held-out clip at
    that clip's velocity (`recon` is used otherwise). Velocity pairs of the training split are
    measured (and marked so) when the held-out kits have fewer than `MIN_HELD_OUT_PAIRS`."""
    sr = model.sample_rate
    velocity = getattr(val, "velocity", None)
    if velocity is not None and getattr(model, "plays_velocity", False):
        # Each held-out clip against the model played at that clip's own velocity.
        recon = np.stack([model.decode(z, velocity=float(v)) for z, v in zip(val_latents, velocity)])
    out = {
        "paired": paired_differences(val.waves, recon, sr),
        "grid": grid_decay(model, grid_waves=grid_waves),
        "grid16": grid_decay(model, steps=16),
        "round_robins": round_robin_distance(model),
        "velocity": {},
    }
    held = velocity_pairs(getattr(val, "velocity", None), getattr(val, "drums", None))
    out["velocity"]["held_out"] = velocity_changes(model, val.waves, held, val_latents)
    if train is not None and out["velocity"]["held_out"]["pairs"] < MIN_HELD_OUT_PAIRS:
        pairs = velocity_pairs(getattr(train, "velocity", None), getattr(train, "drums", None))
        if pairs and not getattr(model, "plays_velocity", True):
            # A model that ignores velocity moves no way: no need to search for its points.
            latents = np.zeros((len(train.waves), 2))
        else:
            latents = None
        out["velocity"]["training"] = velocity_changes(model, train.waves, pairs, latents)
    return out


def reference_feel(train, val, sample_rate: int, pca: np.ndarray, mean: np.ndarray, nearest: np.ndarray) -> dict:
    """The same measures for the references: the held-out originals themselves (decay, and the
    real velocity change), and the mean snare, PCA-2 and the nearest training snare standing in
    for each held-out snare (paired differences and decay)."""
    out = {
        "originals": {
            **decay_summary(val.waves, sample_rate),
            **{
                f"{k}_median": float(np.nanmedian(v))
                for k, v in per_wave(val.waves, sample_rate).items()
                if k in PAIRED
            },
        }
    }
    held = velocity_pairs(getattr(val, "velocity", None), getattr(val, "drums", None))
    out["originals"]["velocity_held_out"] = real_velocity_changes(val.waves, held, sample_rate)
    if out["originals"]["velocity_held_out"]["pairs"] < MIN_HELD_OUT_PAIRS:
        pairs = velocity_pairs(getattr(train, "velocity", None), getattr(train, "drums", None))
        out["originals"]["velocity_training"] = real_velocity_changes(train.waves, pairs, sample_rate)
    stand_ins = {"mean_snare": np.repeat(mean[None], len(val.waves), 0), "pca2": pca, "nearest_train": nearest}
    for name, waves in stand_ins.items():
        decay = decay_summary(waves[:1] if name == "mean_snare" else waves, sample_rate)
        out[name] = {"paired": paired_differences(val.waves, waves, sample_rate), "decay": decay}
    return out
