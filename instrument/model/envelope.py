"""The envelope snare: a point and a velocity -> band envelopes that decay -> audio, in numpy.

A dense decoder that outputs samples leaves a small error on every sample, and that error is
white hiss under the whole tail. This family cannot hiss: its decoder outputs *envelopes*, and
the audio is rendered from them, so where an envelope is silent the snare is silent.

    (point (2,), velocity) --MLP--> per band (n_bands):
        attack levels at ATTACK_KNOTS_S (0 to 8 ms: the stick's crack, at sub-ms resolution)
        decay rates between DECAY_KNOTS_S and the render's end (the wires and the room)
    --> log band amplitudes at the knots, linear in time between them (exponential decays)
                                 partials (n_partials x freq, amp, decay)      the drum head
    audio = sum_b noise_b(t) * env_b(t)  +  sum_k a_k exp(-t / tau_k) sin(2 pi f_k t)

What makes it sound like a struck drum, by construction:
- **Crack.** The envelope is rendered on a fine grid (FINE_HOP samples, 0.18 ms) over the first
  FINE_S, with knots at 0, 0.7, 1.5, 3, 5 and 8 ms: a band can burst and fall within a millisecond.
- **Tails that decay.** After the attack a band's log level can only fall, at a rate bounded
  above (no band switches off: at most MAX_LATE_FALL_DB_PER_S once the crack has passed) and
  below; a soft ceiling that falls from 0 dB at TAIL_CEILING_FROM_S to TAIL_CEILING_END_DB at the
  render's end takes over wherever a band would ring longer, and every partial has decayed as far
  by then, so every point and velocity ends in silence.
- **Velocity.** The MLP's outputs are `base(point) + (1 - velocity / 127) * soft(point)`: one
  learned change from a hard to a soft hit per point, linear in velocity, so a softer hit moves
  the whole timbre continuously (darker, less crack, on the data the corpus gives).
- **Round robins.** Variant k mixes noise of its own seed into the model's and applies a small
  fixed perturbation of the band levels, decay rates and partials (variant 0 is the model's own
  mean hit): repeated hits are never the same samples, and stay closer to each other than a
  4-CC knob step.

Noise comes from a counter-based integer hash (`hash_uniform`), band-filtered by an FFT of a
power-of-two length: the same bank in any process, and in any language that has 32-bit integer
multiplication and an FFT.

The same parameters also give the *expected* power spectrogram of the render at any STFT
resolution, in closed form and without rendering (`expected_power`). Training fits that to the
real snares' spectrograms (the torch twin in `training/envelope.py`, checked against this one by
the tests). `encode` searches the knobs for the hard hit closest to a dropped sample in the
log-spectral distance of real renders. Renders cost milliseconds each, so the 17 x 17 grid is
ranked in closed form instead: the expected power summed over a few hundred groups of cells
(`screen_power`), batched over the grid, each candidate at its render's peak (its attack rendered
alone). Pattern searches walk the screen from its best few points; real renders choose among
what they find and finish the walk on the finest steps, so a snare the model rendered is found
where it was rendered. `encode_by_renders` renders the whole grid: the reference, 5x slower.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from .decoder import ACTIVATIONS, MIDI_VELOCITY_MAX
from .knobs import CC_MAX

FAMILY = "envelope"
FAMILY_VERSION = 2  # 1 was free per-frame envelopes (gated tails, no velocity, no round robins)
LOG_EPS = 1e-10  # power floor of the spectral distance: magnitude 1e-5, the evaluation's floor
RESOLUTIONS = ((2048, 512), (512, 128), (128, 32))  # (n_fft, hop) of the spectral distance
GRID_STEPS = 17  # encode: a 17 x 17 grid of knob positions (127 / 16 = 7.9 CC apart), then refinement
GRID_STARTS = 3  # pattern searches start from the best few grid points
REFINE_STEPS_CC = (4.0, 2.0, 1.0, 0.5)  # pattern-search steps, in knob positions (the grid is 7.9 apart)
# encode's screen: expected power summed over log-spaced groups of bins and of STFT frames (about
# this many of each per resolution), so that a whole grid of candidates costs less than a few renders.
SCREEN_POOLS = 32
SCREEN_PARTIAL_STEP_HZ = 0.5  # the screen's table of a partial's spectrum (bins are 21.5 Hz and wider)
SCREEN_STEPS_CC = (4.0, 2.0, 1.0)  # the screen's pattern search; real renders take over below this
RENDER_STEPS_CC = (1.0, 0.5)  # the finish on real renders, from the screen's best finalist
FINE_GRID_POINTS = 4096  # frequencies at which band shapes are integrated through the window
NEIGHBOURS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float32)

# Envelope knots. The attack's levels are free; after it, each band falls between decay knots at
# its own rate. Knots get sparser with time, as a decay's detail does.
ATTACK_KNOTS_S = (0.0, 0.0007, 0.0015, 0.003, 0.005, 0.008)
DECAY_KNOTS_S = (0.012, 0.018, 0.026, 0.036, 0.05, 0.07, 0.095, 0.13, 0.18, 0.25, 0.35, 0.5, 0.7, 1.0)
CRACK_UNTIL_S = 0.05  # before this a band may fall as fast as the crack does; after it, no faster than a ringing drum
MAX_EARLY_FALL_DB_PER_S = 4000.0  # 40 dB in 10 ms: a crack component dying
MAX_LATE_FALL_DB_PER_S = 800.0  # 8 dB in 10 ms: real snares' largest 10-ms falls are 6-7 dB (median)
MIN_FALL_DB_PER_S = 3.0  # every band keeps falling, however slowly
TAIL_CEILING_FROM_S = 0.1  # the soft ceiling on every band: 0 dB re full scale here,
TAIL_CEILING_END_DB = -80.0  # falling straight in dB to this at the render's end (57 dB/s over 1.49 s)
MAX_LOG_LEVEL = 1.0  # e^1: louder than any normalized snare band
BAND_FLOOR_LOG = np.log(10 ** (-140 / 20))  # a render stops where every band and partial is below this
# Round robins: variant k > 0 mixes this much of its own noise into the model's (the rest is
# variant 0's, so the power is the same), and moves each band's level, each band's decay rate and
# each partial by these standard deviations (fixed per model and variant, from the hash below).
# Sized so that two variants sound closer than a 4-CC knob step does (the evaluation's measure):
# fully independent noise alone made two hits 3-5 dB apart, five times a knob step.
VARIANT_NOISE_MIX = 0.12
VARIANT_LEVEL_DB = 0.25
VARIANT_RATE_FRACTION = 0.015
VARIANT_PARTIAL_CENTS = 2.0
VARIANT_PARTIAL_DB = 0.3


@dataclass(frozen=True)
class EnvelopeConfig:
    n_samples: int = 65_536  # 1.49 s at 44.1 kHz: the longest real snares ring about this long
    sample_rate: int = 44_100
    hop: int = 128  # samples between render frames after the attack
    fine_hop: int = 8  # samples between render frames over the attack (0.18 ms)
    fine_hops: int = 11  # the attack's fine grid covers this many coarse hops (31.9 ms)
    n_bands: int = 32
    f_min_hz: float = 40.0  # lowest band edge; bands are log-spaced up to Nyquist
    n_partials: int = 4
    partial_hz: tuple = (80.0, 1200.0)  # the drum head's modes live here
    partial_decay_s: tuple = (0.004, 0.16)  # at most: TAIL_CEILING_END_DB down by the render's end
    hidden: tuple = (256, 256)
    activation: str = "tanh"
    n_variants: int = 4
    noise_seed: int = 0
    n_velocity_inputs: int = 1  # the MLP's soft-hit head (velocity changes timbre)
    family: str = field(default=FAMILY)
    version: int = FAMILY_VERSION

    def __post_init__(self):
        if self.family != FAMILY or self.version != FAMILY_VERSION:
            raise ValueError(
                f"family must be {FAMILY!r} version {FAMILY_VERSION} (retrain older envelope models), "
                f"got {self.family!r} version {self.version!r}"
            )
        if not isinstance(self.n_samples, int) or self.n_samples < self.hop * (self.fine_hops + 1):
            raise ValueError(
                f"n_samples must be an integer >= {self.hop * (self.fine_hops + 1)}, got {self.n_samples!r}"
            )
        if self.hop % self.fine_hop:
            raise ValueError(f"hop ({self.hop}) must be a multiple of fine_hop ({self.fine_hop})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.n_variants, int) or not 1 <= self.n_variants <= 16:
            raise ValueError(f"n_variants must be an integer in 1..16, got {self.n_variants!r}")
        object.__setattr__(self, "partial_hz", tuple(self.partial_hz))
        object.__setattr__(self, "partial_decay_s", tuple(self.partial_decay_s))
        longest_s = self.n_samples / self.sample_rate / (-TAIL_CEILING_END_DB / 20 * np.log(10))
        if self.partial_decay_s[1] > longest_s:
            raise ValueError(
                f"partial_decay_s must end at or below {longest_s:.3f} s (a partial {-TAIL_CEILING_END_DB:.0f} dB "
                f"down by the end of a {self.n_samples}-sample render), got {self.partial_decay_s[1]}"
            )
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def noise_length(self) -> int:
        """The bank's length: a power of two (a portable FFT), covering the render grid."""
        return 1 << int(np.ceil(np.log2(render_grid(self)[-1])))

    @property
    def knots_s(self) -> tuple[float, ...]:
        """Envelope knots: the attack's, then the decay's that fall inside the render, then its end
        (so that the ceiling holds up to the last sample)."""
        end_s = self.n_samples / self.sample_rate
        return ATTACK_KNOTS_S + tuple(k for k in DECAY_KNOTS_S if k < end_s) + (end_s,)

    @property
    def n_knots(self) -> int:
        return len(self.knots_s)

    @property
    def n_band_outputs(self) -> int:
        return self.n_bands * self.n_knots  # attack levels, then one decay rate per segment

    @property
    def n_outputs(self) -> int:
        """What one head of the MLP says: band parameters, then 3 per partial."""
        return self.n_band_outputs + 3 * self.n_partials

    @property
    def widths(self) -> list[int]:
        """The MLP: point -> hidden -> both heads at once (hard hit, and the change to a soft one)."""
        return [2, *self.hidden, self.n_outputs * (1 + self.n_velocity_inputs)]

    @property
    def n_parameters(self) -> int:
        w = self.widths
        return sum(a * b + b for a, b in zip(w[:-1], w[1:]))

    def to_dict(self) -> dict:
        return asdict(self)


# --- fixed parts: the render grid, band shapes, noise bank, STFT weights --------------------------


def render_grid(config: EnvelopeConfig) -> np.ndarray:
    """Sample positions of the render's envelope frames: fine over the attack, then every hop,
    up to the first frame at or past the last sample. Between frames, amplitudes are linear."""
    fine_end = config.fine_hops * config.hop
    fine = np.arange(0, fine_end, config.fine_hop)
    coarse = np.arange(fine_end, config.n_samples - 1 + config.hop, config.hop)
    return np.concatenate([fine, coarse]).astype(np.int64)


def knot_interpolation(config: EnvelopeConfig) -> np.ndarray:
    """(n_knots, n_grid): log levels at the knots -> log levels at the render grid. Linear in
    time between knots (an exponential decay), held after the last knot's line continues: the
    last segment's rate carries on to the end."""
    knots = np.array(config.knots_s)
    grid_s = render_grid(config) / config.sample_rate
    weights = np.zeros((knots.size, grid_s.size))
    segment = np.clip(np.searchsorted(knots, grid_s, side="right") - 1, 0, knots.size - 2)
    frac = (grid_s - knots[segment]) / (knots[segment + 1] - knots[segment])  # > 1 past the last knot
    np.add.at(weights, (segment, np.arange(grid_s.size)), 1.0 - frac)
    np.add.at(weights, (segment + 1, np.arange(grid_s.size)), frac)
    return weights


def decay_segments_s(config: EnvelopeConfig) -> tuple[np.ndarray, np.ndarray]:
    """(start, length) of each decay segment, from the attack's last knot to the render's end."""
    knots = np.array(config.knots_s[len(ATTACK_KNOTS_S) - 1 :])
    return knots[:-1], np.diff(knots)


def fall_bounds_np_per_s(config: EnvelopeConfig) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of each decay segment's fall rate, in nepers per second."""
    start_s, _ = decay_segments_s(config)
    hi_db = np.where(start_s < CRACK_UNTIL_S, MAX_EARLY_FALL_DB_PER_S, MAX_LATE_FALL_DB_PER_S)
    to_np = np.log(10) / 20
    return np.full(start_s.shape, MIN_FALL_DB_PER_S * to_np), hi_db * to_np


def tail_ceiling_log(config: EnvelopeConfig) -> np.ndarray:
    """(n_knots,) the soft ceiling's log level at each knot: 0 dB at TAIL_CEILING_FROM_S, falling
    straight to TAIL_CEILING_END_DB at the end. Before that it rises back as steeply as a band may
    fall, out of reach of the attack: continuous, so taking it over never steepens a fall."""
    knots = np.array(config.knots_s)
    rate_db_per_s = -TAIL_CEILING_END_DB / (knots[-1] - TAIL_CEILING_FROM_S)
    before = knots < TAIL_CEILING_FROM_S
    db = -(knots - TAIL_CEILING_FROM_S) * np.where(before, MAX_LATE_FALL_DB_PER_S, rate_db_per_s)
    return db * np.log(10) / 20


def band_edges_hz(config: EnvelopeConfig) -> np.ndarray:
    """n_bands + 2 log-spaced points: band b rises from edge b, peaks at b + 1, falls to b + 2."""
    nyquist = config.sample_rate / 2
    return np.geomspace(config.f_min_hz, nyquist, config.n_bands + 2)


def band_gains(config: EnvelopeConfig, freqs_hz: np.ndarray) -> np.ndarray:
    """(n_bands, F) amplitude responses whose squares sum to 1 between the first and last centre
    (a power-complementary filterbank: flat noise in, flat noise out). Below the first centre
    the first band stays open, above the last the last one does, so nothing is lost."""
    logf = np.log(np.maximum(freqs_hz, 1e-3))
    centres = np.log(band_edges_hz(config)[1:-1])
    power = np.zeros((config.n_bands, freqs_hz.size))
    for b in range(config.n_bands):
        if b > 0:  # rising slope from the previous centre
            rise = (logf - centres[b - 1]) / (centres[b] - centres[b - 1])
            power[b] = np.where((rise > 0) & (rise <= 1), np.sin(0.5 * np.pi * np.clip(rise, 0, 1)) ** 2, power[b])
        else:
            power[b] = np.where(logf <= centres[0], 1.0, power[b])
        if b < config.n_bands - 1:
            fall = (logf - centres[b]) / (centres[b + 1] - centres[b])
            power[b] = np.where((fall > 0) & (fall <= 1), np.cos(0.5 * np.pi * np.clip(fall, 0, 1)) ** 2, power[b])
        else:
            power[b] = np.where(logf > centres[-1], 1.0, power[b])
    return np.sqrt(power)


def hash_uniform(seed: int, stream: int, n: int) -> np.ndarray:
    """(n,) float64 uniform in (0, 1): a counter-based 32-bit integer hash (lowbias32) of each
    index, salted by seed and stream. Portable: the same numbers from any language with 32-bit
    wrapping multiplication (JavaScript: Math.imul)."""
    x = np.arange(n, dtype=np.uint32) ^ np.uint32((seed * 0x9E3779B9 + stream * 0x85EBCA6B) & 0xFFFFFFFF)
    x = (x + np.uint32((stream * 0xC2B2AE35) & 0xFFFFFFFF)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    x = (x * np.uint32(0x7FEB352D)).astype(np.uint32)
    x ^= x >> np.uint32(15)
    x = (x * np.uint32(0x846CA68B)).astype(np.uint32)
    x ^= x >> np.uint32(16)
    return (x.astype(np.float64) + 0.5) / 2.0**32


def hash_normal(seed: int, stream: int, n: int) -> np.ndarray:
    """(n,) standard normal numbers from two hashed uniforms (Box-Muller)."""
    u1, u2 = hash_uniform(seed, 2 * stream, n), hash_uniform(seed, 2 * stream + 1, n)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def noise_bands(config: EnvelopeConfig, variant: int) -> np.ndarray:
    """(n_bands, noise_length) float64 unit-RMS band noises of one variant."""
    length = config.noise_length
    streams = [(variant + 1) * 1000 + b for b in range(config.n_bands)]
    # Independent noise per band: overlapping bands cut from one noise would be correlated, and
    # their powers would not add up to what `expected_power` predicts.
    white = np.stack([(hash_uniform(config.noise_seed, s, length) - 0.5) * np.sqrt(12.0) for s in streams])
    gains = band_gains(config, np.fft.rfftfreq(length, 1.0 / config.sample_rate))
    bands = np.fft.irfft(np.fft.rfft(white, axis=1) * gains, n=length, axis=1)
    return bands / np.sqrt(np.mean(bands**2, axis=1, keepdims=True))


@dataclass(frozen=True)
class Bank:
    """One variant's noise, laid out for the render's two matmuls (fine frames, then coarse)."""

    fine: np.ndarray  # (n_fine_segments, fine_hop, n_bands) float32
    coarse: np.ndarray  # (n_coarse_segments, hop, n_bands) float32


def noise_bank(config: EnvelopeConfig, variant: int) -> Bank:
    grid = render_grid(config)
    n_fine = config.fine_hops * config.hop // config.fine_hop  # fine frames; their last segment ends at fine_end
    bands = noise_bands(config, 0)
    if variant:  # independent noises add in power: the mix keeps unit RMS
        bands = np.sqrt(1 - VARIANT_NOISE_MIX**2) * bands + VARIANT_NOISE_MIX * noise_bands(config, variant)
    bands = bands[:, : grid[-1]].T.astype(np.float32)  # (length, n_bands)
    fine_end = grid[n_fine]
    return Bank(
        fine=np.ascontiguousarray(bands[:fine_end].reshape(n_fine, config.fine_hop, config.n_bands)),
        coarse=np.ascontiguousarray(bands[fine_end:].reshape(-1, config.hop, config.n_bands)),
    )


def variant_offsets(config: EnvelopeConfig, variant: int) -> dict[str, np.ndarray]:
    """Variant k's fixed perturbation (all zeros for variant 0, the model's own mean hit)."""
    if variant == 0:
        zeros = np.zeros
        return {
            "level": zeros(config.n_bands),
            "rate": zeros(config.n_bands),
            "cents": zeros(config.n_partials),
            "amp_db": zeros(config.n_partials),
        }
    n, k = config.n_bands, config.n_partials
    draw = hash_normal(config.noise_seed + 7919, variant, 2 * n + 2 * k)
    return {
        "level": draw[:n] * VARIANT_LEVEL_DB * np.log(10) / 20,  # nepers
        "rate": draw[n : 2 * n] * VARIANT_RATE_FRACTION,
        "cents": draw[2 * n : 2 * n + k] * VARIANT_PARTIAL_CENTS,
        "amp_db": draw[2 * n + k :] * VARIANT_PARTIAL_DB,
    }


def _hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float64)  # periodic, as torch


def frame_weights(config: EnvelopeConfig, n_fft: int, hop: int, power: int) -> np.ndarray:
    """(n_stft_frames, n_grid): STFT frame m's window^power-weighted sum of a signal that is
    linear between the render grid's frames. The STFT is centred with zero padding."""
    n = config.n_samples
    grid = render_grid(config)
    n_stft = n // hop + 1
    window = _hann(n_fft) ** power
    weights = np.zeros((n_stft, grid.size))
    # Every (STFT frame, sample) pair inside the signal; the sample's window weight is split
    # between the two grid frames around it, as the linear interpolation splits its value.
    m, k = np.meshgrid(np.arange(n_stft), np.arange(n_fft), indexing="ij")
    sample = m * hop - n_fft // 2 + k
    inside = (sample >= 0) & (sample < n)
    m, k, sample = m[inside], k[inside], sample[inside]
    frame = np.searchsorted(grid, sample, side="right") - 1
    frac = (sample - grid[frame]) / (grid[frame + 1] - grid[frame])
    np.add.at(weights, (m, frame), window[k] * (1.0 - frac))
    np.add.at(weights, (m, frame + 1), window[k] * frac)
    return weights


def hann_response(delta_bins, lib=np):
    """|W(delta)| / W(0) of a periodic Hann window, `delta` in bins, elementwise. `lib` is the
    array library of `delta_bins`: numpy here, torch for training's twin (which passes it)."""
    near_one = lib.abs(lib.abs(delta_bins) - 1.0) < 1e-4
    safe = lib.where(near_one, lib.zeros_like(delta_bins), delta_bins)
    return lib.where(near_one, lib.full_like(delta_bins, 0.5), lib.abs(lib.sinc(safe) / (1.0 - safe**2)))


@dataclass
class SpectralGeometry:
    """Everything fixed that maps envelopes to expected STFT power at one resolution."""

    n_fft: int
    hop: int
    freqs_hz: np.ndarray  # (bins,)
    band_power: np.ndarray  # (bins, n_bands): each unit-RMS band's power density at each bin
    w2: np.ndarray  # (n_stft, n_grid): window^2 weights, for noise power
    w1: np.ndarray  # (n_stft, n_grid): window weights, for partial amplitude


def partial_shape(freqs_hz, partial_hz, n_fft: int, sample_rate: int, lib=np):
    """|W|^2 / W(0)^2 at each bin for a sine at `partial_hz`, its negative-frequency image included
    (it matters near DC at small FFT sizes). Broadcasting; `lib` as in `hann_response`."""
    scale = n_fft / sample_rate
    return (
        hann_response((freqs_hz - partial_hz) * scale, lib) ** 2
        + hann_response((freqs_hz + partial_hz) * scale, lib) ** 2
    )


def spectral_geometry(config: EnvelopeConfig, n_fft: int, hop: int) -> SpectralGeometry:
    freqs = np.fft.rfftfreq(n_fft, 1.0 / config.sample_rate)
    # Each unit-RMS band's power density on a fine grid (gain^2 over its mean across the spectrum),
    # seen through the window: a bin collects what the window's main lobe and side lobes let in,
    # from both signs of frequency. Small FFTs have bins wider than the low bands.
    # The fine grid is log-spaced, so that the lowest bands (a few Hz wide) are resolved too.
    nyquist = config.sample_rate / 2
    edges = np.concatenate([[0.0], np.geomspace(config.f_min_hz / 4, nyquist, FINE_GRID_POINTS)])
    fine, df = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    density = band_gains(config, fine) ** 2
    density /= (density @ df)[:, None] / nyquist  # mean 1 over linear frequency: a unit-RMS band
    bin_hz = config.sample_rate / n_fft
    # 1.5: the Hann window's equivalent noise bandwidth, in bins (white noise in, 1 out).
    kernel = partial_shape(freqs[:, None], fine[None, :], n_fft, config.sample_rate) * (df / bin_hz / 1.5)
    band_power = kernel @ density.T
    return SpectralGeometry(
        n_fft, hop, freqs, band_power, frame_weights(config, n_fft, hop, 2), frame_weights(config, n_fft, hop, 1)
    )


def log_groups(n: int, n_groups: int) -> np.ndarray:
    """(G, n) 0/1: indices 0..n-1 in contiguous groups that widen with the index (log-spaced, the
    first ones single), G <= n_groups: fine where a spectrum's low bins and a hit's attack are."""
    edges = np.concatenate([[0], np.unique(np.round(np.geomspace(1, n, n_groups)).astype(np.int64))])
    groups = np.zeros((edges.size - 1, n), np.float32)
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        groups[i, lo:hi] = 1.0
    return groups


@dataclass
class ScreenGeometry:
    """One resolution's spectrogram summed over groups of bins (F) and of frames (T): encode's
    screen. Sums of expected power are linear in the band envelopes' power, so the noise's
    share is two small products; the partials' needs their window sums at each group's first frame."""

    bin_groups: np.ndarray  # (F, bins) 0/1
    frame_groups: np.ndarray  # (T, n_stft) 0/1
    band_power: np.ndarray  # (F, n_bands): each unit-RMS band's power summed over a group of bins
    w2: np.ndarray  # (T, n_grid): window^2 weights summed over a group of frames
    w1: np.ndarray  # (T, n_grid): window weights at each group's first frame
    frames: np.ndarray  # (T,) frames in each group
    hop_s: float  # between frames
    cells: np.ndarray  # (F, T): (bin, frame) cells in each group, to turn sums into means
    partial_hz: np.ndarray  # (P,) a fine grid over the partials' range (much finer than a bin)
    partial_shapes: np.ndarray  # (P, F): a partial's `partial_shape` at each, summed over each group

    def partial_shape(self, freq_hz: np.ndarray) -> np.ndarray:
        """(..., K) -> (..., K, F): linear between the table's frequencies."""
        step = self.partial_hz[1] - self.partial_hz[0]
        at = np.clip((freq_hz - self.partial_hz[0]) / step, 0.0, self.partial_hz.size - 1.001)
        i = at.astype(np.int64)
        frac = (at - i)[..., None].astype(np.float32)
        return self.partial_shapes[i] * (1.0 - frac) + self.partial_shapes[i + 1] * frac


def screen_geometry(config: EnvelopeConfig, g: SpectralGeometry) -> ScreenGeometry:
    bin_groups = log_groups(g.freqs_hz.size, SCREEN_POOLS)
    frame_groups = log_groups(g.w2.shape[0], SCREEN_POOLS)
    partial_hz = np.arange(config.partial_hz[0], config.partial_hz[1] + SCREEN_PARTIAL_STEP_HZ, SCREEN_PARTIAL_STEP_HZ)
    return ScreenGeometry(
        bin_groups=bin_groups,
        frame_groups=frame_groups,
        band_power=(bin_groups @ g.band_power).astype(np.float32),
        w2=(frame_groups @ g.w2).astype(np.float32),
        w1=g.w1[np.argmax(frame_groups, axis=1)].astype(np.float32),
        frames=frame_groups.sum(axis=1).astype(np.float32),
        hop_s=g.hop / config.sample_rate,
        cells=np.outer(bin_groups.sum(axis=1), frame_groups.sum(axis=1)).astype(np.float32),
        partial_hz=partial_hz,
        partial_shapes=(
            partial_shape(g.freqs_hz, partial_hz[:, None], g.n_fft, config.sample_rate) @ bin_groups.T
        ).astype(np.float32),
    )


def stft_power(waves: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(..., n) -> (..., bins, frames) |STFT|^2, periodic Hann, centred with zero padding."""
    n = waves.shape[-1]
    padded = np.pad(waves, [(0, 0)] * (waves.ndim - 1) + [(n_fft // 2, n_fft // 2)])
    starts = np.arange(n // hop + 1) * hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., starts, :]
    spectrum = np.fft.rfft(frames * _hann(n_fft), axis=-1)
    return np.swapaxes(np.abs(spectrum) ** 2, -1, -2)


# --- the model -------------------------------------------------------------------------------------


PARTIAL_BLOCK = 512  # samples per row of the partials' factored render (see `partials`)


def partials(freq_hz, amp, decay_s, n_samples: int, sample_rate: int, block: int = PARTIAL_BLOCK) -> np.ndarray:
    """(..., K) each -> (..., n_samples) float32: the sum of K damped sines a * exp(-t / tau) * sin(2 pi f t).

    Each is Im(a z^n) with z = exp(-1/(tau sr) + 2 pi i f / sr), and z^(jB + k) = z^(jB) z^k: with
    rows of B samples (`block`) the whole sum is one small matrix product, (rows, 2K) @ (2K, B),
    instead of a sine and an exponential per sample and partial. Both factors come straight from
    exp, cos and sin in float64 (the phase reduced mod 1 cycle), so no error accumulates along the tail."""
    f = np.asarray(freq_hz, np.float64)[..., None]
    rate = -1.0 / np.asarray(decay_s, np.float64)[..., None]
    rows = -(-n_samples // block)
    k = np.arange(block) / sample_rate  # (B,) seconds into a row
    row = np.arange(rows) * (block / sample_rate)  # (rows,) seconds at each row's start
    inner_phase = 2 * np.pi * np.mod(f * k, 1.0)  # (..., K, B)
    inner = np.exp(rate * k)  # (..., K, B)
    outer_phase = 2 * np.pi * np.mod(f * row, 1.0)  # (..., K, rows)
    outer = np.asarray(amp, np.float64)[..., None] * np.exp(rate * row)
    # Im(s b) = Im(s) Re(b) + Re(s) Im(b), summed over the partials by the product.
    left = np.swapaxes(np.concatenate([outer * np.sin(outer_phase), outer * np.cos(outer_phase)], axis=-2), -1, -2)
    right = np.concatenate([inner * np.cos(inner_phase), inner * np.sin(inner_phase)], axis=-2)  # (..., 2K, B)
    product = left @ right  # (..., rows, B)
    return product.reshape(*product.shape[:-2], -1)[..., :n_samples].astype(np.float32)


def softplus(x):
    return np.logaddexp(0.0, x)


@dataclass
class Params:
    """One hit's physical parameters (leading batch dimensions allowed)."""

    log_env: np.ndarray  # (..., n_bands, n_grid) natural-log RMS amplitude of each band at the render grid
    freq_hz: np.ndarray  # (..., n_partials)
    amp: np.ndarray  # (..., n_partials) peak amplitude
    decay_s: np.ndarray  # (..., n_partials)


class Shaper:
    """The fixed constants that bound raw head outputs into a struck, decaying drum."""

    def __init__(self, config: EnvelopeConfig):
        self.interp = knot_interpolation(config)  # (n_knots, n_grid)
        lo, hi = fall_bounds_np_per_s(config)
        self.fall_lo, self.fall_span = lo, hi - lo  # (D,) nepers per second
        self.segment_s = decay_segments_s(config)[1]  # (D,)
        self.ceiling = tail_ceiling_log(config)  # (n_knots,)

    def knot_levels(self, attack: np.ndarray, rate_raw: np.ndarray, rate_scale=1.0) -> np.ndarray:
        """attack (..., n_bands, A) and rate_raw (..., n_bands, D) -> log levels (..., n_bands,
        n_knots): the attack's levels, then falls at bounded rates (times `rate_scale`), under
        the falling ceiling. Training's twin (`training/envelope.py`) does the same in torch."""
        attack = np.minimum(attack, MAX_LOG_LEVEL)
        rate = (self.fall_lo + self.fall_span * ACTIVATIONS["sig"](rate_raw)) * rate_scale  # a round robin's scale
        fall = np.minimum(rate, self.fall_lo + self.fall_span) * self.segment_s  # may not break the bound
        levels = np.concatenate([attack, attack[..., -1:] - np.cumsum(fall, axis=-1)], axis=-1)
        # A soft minimum with the ceiling: smooth, and itself a decay where it takes over.
        return self.ceiling - softplus(self.ceiling - levels)


def _split(config: EnvelopeConfig, raw):
    """One head's raw outputs (..., n_outputs) -> attack (..., n_bands, A), rate (..., n_bands, D),
    then the partials' raw frequency, amplitude and decay (..., n_partials) each."""
    a, n = len(ATTACK_KNOTS_S), config.n_bands
    bands = raw[..., : config.n_band_outputs].reshape(*raw.shape[:-1], n, config.n_knots)
    k, head = config.n_partials, config.n_band_outputs
    return (
        bands[..., :a],
        bands[..., a:],
        raw[..., head : head + k],
        raw[..., head + k : head + 2 * k],
        raw[..., head + 2 * k :],
    )


def velocity_mix(raw, velocity, n_outputs: int):
    """(..., 2 * n_outputs) heads -> (..., n_outputs): hard + (1 - velocity / 127) * soft."""
    softness = 1.0 - velocity / MIDI_VELOCITY_MAX
    return raw[..., :n_outputs] + softness * raw[..., n_outputs:]


class EnvelopeSnare:
    """The numpy half of the family: decode (render), expected spectrograms, and encode."""

    def __init__(self, config: EnvelopeConfig, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.config = config
        self.layers = layers  # [(weight (out, in), bias (out,))], torch's nn.Linear layout
        self.act = ACTIVATIONS[config.activation]
        self.shaper = Shaper(config)

    @cached_property
    def banks(self) -> list[Bank]:
        return [noise_bank(self.config, v) for v in range(self.config.n_variants)]

    @cached_property
    def offsets(self) -> list[dict[str, np.ndarray]]:
        return [variant_offsets(self.config, v) for v in range(self.config.n_variants)]

    @cached_property
    def geometry(self) -> list[SpectralGeometry]:
        return [spectral_geometry(self.config, n_fft, hop) for n_fft, hop in RESOLUTIONS]

    @cached_property
    def grid(self) -> np.ndarray:
        return render_grid(self.config)

    def hidden(self, latent) -> np.ndarray:
        """(..., 2) -> (..., widths[-1]) both heads' raw outputs."""
        x = np.asarray(latent, dtype=np.float32)
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x

    def params(self, latent, velocity: float = MIDI_VELOCITY_MAX, variant: int = 0, raw=None) -> Params:
        """(..., 2) -> Params of a hit at `velocity` (MIDI), round robin `variant`. `raw`: the
        heads' outputs when already computed (several velocities of one point)."""
        knots, freq_hz, amp, decay_s = self.knot_params(latent, velocity, variant, raw)
        return Params(log_env=knots @ self.shaper.interp, freq_hz=freq_hz, amp=amp, decay_s=decay_s)

    def knot_params(self, latent, velocity: float = MIDI_VELOCITY_MAX, variant: int = 0, raw=None):
        """`params` with the bands' log levels at the knots (..., n_bands, n_knots), before they
        are interpolated to the render grid; then the partials' frequency, amplitude and decay."""
        c = self.config
        raw = self.hidden(latent) if raw is None else raw
        raw = velocity_mix(raw.astype(np.float64), float(velocity), c.n_outputs)
        attack, rate, f_raw, a_raw, d_raw = _split(c, raw)
        off = self.offsets[variant]
        knots = self.shaper.knot_levels(attack + off["level"][:, None], rate, 1.0 + off["rate"][:, None])
        sig = ACTIVATIONS["sig"]
        (f_lo, f_hi), (d_lo, d_hi) = c.partial_hz, c.partial_decay_s
        return (
            knots,
            f_lo * (f_hi / f_lo) ** sig(f_raw) * 2 ** (off["cents"] / 1200),
            np.exp(np.minimum(a_raw, 0.0)) * 10 ** (off["amp_db"] / 20),
            d_lo * (d_hi / d_lo) ** sig(d_raw),
        )

    def render(self, p: Params, variant: int = 0) -> np.ndarray:
        """Params of one hit -> (n_samples,) float32 audio, with variant `variant`'s noise."""
        c, bank = self.config, self.banks[variant]
        env = np.exp(p.log_env).astype(np.float32)  # (n_bands, n_grid)
        n_fine = bank.fine.shape[0]
        out = np.zeros(c.n_samples, np.float32)
        # Each segment between grid frames: sum over bands of noise x (env at its start, fading to its end).
        parts = ((bank.fine, 0, c.fine_hop, 0), (bank.coarse, n_fine, c.hop, n_fine * c.fine_hop))
        for noise, first, hop, offset in parts:
            # Stop where every band is below the floor: the rest of the render is silence.
            last = first + noise.shape[0]
            audible = np.flatnonzero(p.log_env[:, first:last].max(axis=0) > BAND_FLOOR_LOG)
            count = 0 if audible.size == 0 else int(audible[-1]) + 1
            if count == 0:
                continue
            e = env[:, first : first + count + 1]
            start = np.matmul(noise[:count], e[:, :-1].T[:, :, None])[..., 0]  # (count, hop)
            end = np.matmul(noise[:count], e[:, 1:].T[:, :, None])[..., 0]
            ramp = np.arange(hop, dtype=np.float32) / hop
            seg = (start + (end - start) * ramp).reshape(-1)
            stop = min(c.n_samples, offset + seg.size)
            out[offset:stop] = seg[: stop - offset]
        out += partials(p.freq_hz, p.amp, p.decay_s, c.n_samples, c.sample_rate)
        return out

    def decode(self, latent, velocity: float = MIDI_VELOCITY_MAX, variant: int = 0) -> np.ndarray:
        """(2,) -> (n_samples,) or (B, 2) -> (B, n_samples), float32"""
        latent = np.asarray(latent, dtype=np.float32)
        if not 0 <= variant < self.config.n_variants:
            raise ValueError(f"variant must be in 0..{self.config.n_variants - 1}, got {variant}")
        if latent.ndim == 1:
            return self.render(self.params(latent, velocity, variant), variant)
        return np.stack([self.render(self.params(z, velocity, variant), variant) for z in latent])

    def expected_power(self, p: Params) -> list[np.ndarray]:
        """Params (batch, ...) -> per resolution (batch, bins, n_stft) expected |STFT|^2 of the render."""
        grid_t = self.grid / self.config.sample_rate
        env2 = np.exp(2.0 * p.log_env)  # (B, n_bands, n_grid)
        partial_env = p.amp[..., None] * np.exp(-grid_t / p.decay_s[..., None])  # (B, K, n_grid)
        out = []
        for g in self.geometry:
            power = g.band_power @ (env2 @ g.w2.T)  # (B, bins, n_stft)
            shape = partial_shape(g.freqs_hz[None, None, :], p.freq_hz[..., None], g.n_fft, self.config.sample_rate)
            amp = partial_env @ g.w1.T  # (B, K, n_stft): window-weighted amplitude
            power = power + 0.25 * np.matmul(np.swapaxes(shape, -1, -2), amp**2)  # sum over partials
            out.append(power)
        return out

    @cached_property
    def screens(self) -> list[ScreenGeometry]:
        return [screen_geometry(self.config, g) for g in self.geometry]

    @cached_property
    def interp32(self) -> np.ndarray:
        return self.shaper.interp.astype(np.float32)

    def screen_power(self, latent) -> list[np.ndarray]:
        """(B, 2) -> per resolution (B, F, T): the expected power of each point's hard hit, at
        its render's peak level, averaged over each screen group; `expected_power` summed
        before it is computed, in float32."""
        knots, freq_hz, amp, decay_s = (x.astype(np.float32) for x in self.knot_params(latent))
        log_env = knots @ self.interp32  # (B, n_bands, n_grid)
        env = _exp_above_floor(log_env)
        grid_t = (self.grid / self.config.sample_rate).astype(np.float32)
        partial_env = _exp_above_floor(np.log(amp)[..., None] - grid_t / decay_s[..., None])  # (B, K, n_grid)
        peak2 = self.attack_peak(env, freq_hz, amp, decay_s) ** 2
        env2 = env * env
        out = []
        for s in self.screens:
            noise = s.band_power @ (env2 @ s.w2.T)  # (B, F, T)
            # A partial's window sum decays as the partial does, from a group's first frame on:
            # its square summed over the group is a geometric series.
            ratio = np.exp(-2.0 * s.hop_s / decay_s)[..., None]  # (B, K, 1) from one frame to the next
            amp2 = (partial_env @ s.w1.T) ** 2 * (1.0 - ratio**s.frames) / (1.0 - ratio)  # (B, K, T)
            power = noise + 0.25 * np.matmul(np.swapaxes(s.partial_shape(freq_hz), -1, -2), amp2)
            out.append(power / (s.cells * peak2[:, None, None]))
        return out

    def attack_peak(self, env, freq_hz, amp, decay_s) -> np.ndarray:
        """(B,) the peak of each hard hit's render over its attack's fine grid (`render`'s first
        part, batched): a struck hit peaks there, and the distance compares renders at their peaks."""
        c, bank = self.config, self.banks[0]
        n_fine = bank.fine.shape[0]
        e = np.moveaxis(env[..., : n_fine + 1], -1, 0)  # (n_fine + 1, B, n_bands)
        start = bank.fine @ np.swapaxes(e[:-1], -1, -2)  # (n_fine, fine_hop, B)
        end = bank.fine @ np.swapaxes(e[1:], -1, -2)
        ramp = (np.arange(c.fine_hop, dtype=np.float32) / c.fine_hop)[:, None]
        noise = (start + (end - start) * ramp).reshape(-1, env.shape[0])  # (n_fine * fine_hop, B)
        sines = partials(freq_hz, amp, decay_s, noise.shape[0], c.sample_rate, block=c.fine_hop * 8)  # (B, n)
        return np.maximum(np.abs(noise.T + sines).max(axis=-1), 1e-9)

    def encode(self, wave, knobs, grid_steps: int = GRID_STEPS) -> np.ndarray:
        """(n_samples,) -> (2,): the point within the knobs' reach whose hard hit is closest to
        `wave` in the multi-resolution log-spectral distance. (B, n) -> (B, 2), one by one.

        A render costs milliseconds, while the expected power summed over groups of cells
        (`screen_power`) costs tens for the whole grid: the screen ranks the grid and walks
        from its best few points; real renders then choose among those finalists and finish the
        walk on a fine step, so a snare this model rendered is still found where it was rendered
        (the screen's expectation is not the render's noise)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2:
            return np.stack([self.encode(w, knobs, grid_steps) for w in wave])
        search = _Search(self, knobs, wave)
        grid_cc = _knob_grid(grid_steps)
        screened = search.screen(grid_cc)
        starts = np.argsort(screened)[:GRID_STARTS]
        finalists, _ = _pattern_search(grid_cc[starts], screened[starts], search.screen, SCREEN_STEPS_CC)
        rendered = search.rendered(finalists)
        first = int(np.argmin(rendered))
        found, _ = _pattern_search(
            finalists[first : first + 1], rendered[first : first + 1], search.rendered, RENDER_STEPS_CC
        )
        return knobs.cc_to_latent(*found[0])

    def encode_by_renders(self, wave, knobs, grid_steps: int = GRID_STEPS) -> np.ndarray:
        """`encode` through real renders only: every grid point rendered, then pattern searches
        from the best few. The reference the fast search is measured against (about 300 renders)."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2:
            return np.stack([self.encode_by_renders(w, knobs, grid_steps) for w in wave])
        search = _Search(self, knobs, wave)
        grid_cc = _knob_grid(grid_steps)
        rendered = search.rendered(grid_cc)
        best, best_d = grid_cc[int(np.argmin(rendered))], np.inf
        for start in np.argsort(rendered)[:GRID_STARTS]:
            if rendered[start] >= best_d:
                break  # a refined point is already closer than every remaining start
            cc, d = _pattern_search(
                grid_cc[start : start + 1], rendered[start : start + 1], search.rendered, REFINE_STEPS_CC
            )
            if d[0] < best_d:
                best, best_d = cc[0], d[0]
        return knobs.cc_to_latent(*best)

    def _log_power(self, wave: np.ndarray) -> list[np.ndarray]:
        """Log STFT power per resolution of `wave` at its own peak: encoding ignores level (a
        dropped file is normalized, and velocity sets the level of what the model plays)."""
        return [np.log(power + LOG_EPS) for power in self._power(wave)]

    def _power(self, wave: np.ndarray) -> list[np.ndarray]:
        wave = wave / max(float(np.max(np.abs(wave))), 1e-9)
        return [stft_power(wave, g.n_fft, g.hop).astype(np.float32) for g in self.geometry]

    def render_distance(self, latent: np.ndarray, target_log_power: list[np.ndarray]) -> float:
        """One point's render vs a target's log power per resolution: mean |log-magnitude| difference."""
        rendered = self._log_power(self.decode(latent))
        return float(np.mean([0.5 * np.abs(a - b).mean() for a, b in zip(rendered, target_log_power)]))


def _knob_grid(steps: int) -> np.ndarray:
    """(steps * steps, 2) knob positions over both knobs' travel, x fastest."""
    axis = np.linspace(0.0, CC_MAX, steps)
    return np.stack(np.meshgrid(axis, axis, indexing="xy"), axis=-1).reshape(-1, 2)


def _exp_above_floor(log_level: np.ndarray) -> np.ndarray:
    """exp in float32, zero below the render's floor (a subnormal float would slow the products)."""
    floor = np.float32(BAND_FLOOR_LOG)
    return np.where(log_level > floor, np.exp(np.maximum(log_level, floor)), np.float32(0.0))


class _Search:
    """One target's two distances over knob positions (N, 2) -> (N,): the screen (expected power
    over groups of cells, batched) and real renders (remembered: a pattern search asks again
    for the neighbours it has already rendered)."""

    def __init__(self, net: EnvelopeSnare, knobs, wave: np.ndarray):
        self.net, self.knobs = net, knobs
        power = net._power(wave)
        self.target_log_power = [np.log(p + LOG_EPS) for p in power]
        # The target's mean power over the same groups: averaging first also tames the noise of
        # single STFT cells, which the expectation does not have.
        self.target_screen = np.concatenate(
            [
                np.log(s.bin_groups @ p @ s.frame_groups.T / s.cells + LOG_EPS).reshape(-1)
                for s, p in zip(net.screens, power)
            ]
        )
        # Every resolution weighs the same, and within one each group as many cells as it holds.
        self.weights = np.concatenate([(s.cells / s.cells.sum() / len(net.screens)).reshape(-1) for s in net.screens])
        self.renders: dict[tuple[float, float], float] = {}

    def screen(self, cc: np.ndarray) -> np.ndarray:
        """The mean |log-magnitude| difference over the groups, at each render's peak level."""
        power = np.concatenate(
            [e.reshape(len(cc), -1) for e in self.net.screen_power(self.knobs.cc_to_latents(cc))], axis=1
        )
        return 0.5 * (np.abs(np.log(power + LOG_EPS) - self.target_screen) * self.weights).sum(axis=1)

    def rendered(self, cc: np.ndarray) -> np.ndarray:
        for c in map(tuple, cc.tolist()):
            if c not in self.renders:
                self.renders[c] = self.net.render_distance(self.knobs.cc_to_latent(*c), self.target_log_power)
        return np.array([self.renders[c] for c in map(tuple, cc.tolist())])


def _pattern_search(starts: np.ndarray, start_d: np.ndarray, distance, steps_cc) -> tuple[np.ndarray, np.ndarray]:
    """Walk each start (S, 2) to the closest of its eight neighbours while one is closer than
    where it stands (`start_d` (S,) there), then take the next, smaller step. The walkers move in
    step, so that one call of `distance` (knob positions (N, 2) -> (N,)) serves all of them."""
    best, best_d = np.array(starts, dtype=np.float64), np.array(start_d, dtype=np.float64)
    for step in steps_cc:
        walking = np.arange(len(best))
        while walking.size:
            around = np.clip(best[walking, None, :] + step * NEIGHBOURS, 0.0, CC_MAX)  # (A, 8, 2)
            d = distance(around.reshape(-1, 2)).reshape(walking.size, -1)
            closest = np.argmin(d, axis=1)
            moved = d[np.arange(walking.size), closest] < best_d[walking] - 1e-9
            best[walking[moved]] = around[moved, closest[moved]]
            best_d[walking[moved]] = d[moved, closest[moved]]
            walking = walking[moved]
    return best, best_d
