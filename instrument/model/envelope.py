"""The envelope snare: a 2-D point -> time-frequency envelopes -> audio, in numpy.

A dense decoder that outputs samples leaves a small error on every sample, and
that error is white hiss under the whole tail. This family cannot hiss: its
decoder outputs *envelopes*, and the audio is rendered from them, so where an
envelope is silent the snare is silent.

    point (2,) --MLP--> log band amplitudes (n_bands, n_frames)   the snare wires, the crack, the room
                        partials (n_partials x freq, amp, decay)   the drum head
    audio = sum_b noise_b(t) * env_b(t)  +  sum_k a_k exp(-t / tau_k) sin(2 pi f_k t)

`noise_b` are fixed-seed noises, one per band (a bank built once per model):
the same point always gives the same samples, in any process. Band envelopes
are linear between frames `hop` samples apart (2.9 ms at 44.1 kHz), so an
attack can rise within one frame.

The same parameters also give the *expected* power spectrogram of the render
at any STFT resolution, in closed form and without rendering (`expected_power`).
Training fits that to the real snares' spectrograms (a multi-resolution
log-spectral distance; the torch twin in `training/envelope.py`, checked
against this one by the tests). `encode` searches the knobs for the snare closest to a
dropped sample in the same distance: a grid of renders, then a pattern search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np

from .decoder import ACTIVATIONS
from .knobs import CC_MAX

FAMILY = "envelope"
PARTIAL_FLOOR_DB = 140.0  # a partial is rendered until it has decayed this far: below a 24-bit file's last bit
PARTIAL_FLOOR_DECAYS = (
    PARTIAL_FLOOR_DB / 20 * np.log(10)
)  # in time constants: exp(-t / tau) reaches the floor at t = 16.1 tau
LOG_EPS = 1e-10  # power floor of the spectral distance: magnitude 1e-5, the evaluation's floor
RESOLUTIONS = ((2048, 512), (512, 128), (128, 32))  # (n_fft, hop) of the spectral distance
GRID_STEPS = 17  # encode: a 17 x 17 grid of knob positions (127 / 16 = 7.9 CC apart), then refinement
GRID_STARTS = 3  # pattern searches start from the best few grid points
REFINE_STEPS_CC = (4.0, 2.0, 1.0, 0.5)  # pattern-search steps, in knob positions (the grid is 7.9 apart)
FINE_GRID_POINTS = 4096  # frequencies at which band shapes are integrated through the window
NEIGHBOURS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float32)


@dataclass(frozen=True)
class EnvelopeConfig:
    n_samples: int
    sample_rate: int = 44_100
    hop: int = 128  # samples between envelope frames
    n_bands: int = 32
    f_min_hz: float = 40.0  # lowest band edge; bands are log-spaced up to Nyquist
    n_partials: int = 4
    partial_hz: tuple = (80.0, 1200.0)  # the drum head's modes live here
    partial_decay_s: tuple = (0.005, 1.5)
    hidden: tuple = (256, 256)
    activation: str = "tanh"
    noise_seed: int = 0
    family: str = field(default=FAMILY)

    def __post_init__(self):
        if self.family != FAMILY:
            raise ValueError(f"family must be {FAMILY!r}, got {self.family!r}")
        if not isinstance(self.n_samples, int) or self.n_samples < self.hop:
            raise ValueError(f"n_samples must be an integer >= hop ({self.hop}), got {self.n_samples!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        object.__setattr__(self, "partial_hz", tuple(self.partial_hz))
        object.__setattr__(self, "partial_decay_s", tuple(self.partial_decay_s))
        object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def n_frames(self) -> int:
        return -(-self.n_samples // self.hop) + 1  # frames at 0, hop, ..., covering the last sample

    @property
    def n_outputs(self) -> int:
        return self.n_bands * self.n_frames + 3 * self.n_partials

    @property
    def widths(self) -> list[int]:
        return [2, *self.hidden, self.n_outputs]

    @property
    def n_parameters(self) -> int:
        w = self.widths
        return sum(a * b + b for a, b in zip(w[:-1], w[1:]))

    def to_dict(self) -> dict:
        return asdict(self)


# --- fixed parts: band shapes, noise bank, STFT smoothing ------------------------------------------


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


def noise_bank(config: EnvelopeConfig) -> np.ndarray:
    """(n_frames - 1, hop, n_bands) float32: unit-RMS band noises, laid out for the render's matmul."""
    length = (config.n_frames - 1) * config.hop
    rng = np.random.default_rng(config.noise_seed)
    # Independent noise per band: overlapping bands cut from one noise would be correlated, and
    # their powers would not add up to what `expected_power` predicts.
    spectrum = np.fft.rfft(rng.standard_normal((config.n_bands, length)), axis=1)
    gains = band_gains(config, np.fft.rfftfreq(length, 1.0 / config.sample_rate))
    bands = np.fft.irfft(spectrum * gains, n=length, axis=1)  # (n_bands, length)
    bands /= np.sqrt(np.mean(bands**2, axis=1, keepdims=True))
    return np.ascontiguousarray(bands.T.reshape(config.n_frames - 1, config.hop, config.n_bands), dtype=np.float32)


def _hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float64)  # periodic, as torch


def frame_weights(config: EnvelopeConfig, n_fft: int, hop: int, power: int) -> np.ndarray:
    """(n_stft_frames, n_frames): STFT frame m's window^power-weighted sum of a signal that is
    linear between envelope frames. The STFT is centred with zero padding."""
    n = config.n_samples
    n_stft = n // hop + 1
    window = _hann(n_fft) ** power
    weights = np.zeros((n_stft, config.n_frames))
    # Every (STFT frame, sample) pair inside the signal; the sample's window weight is split
    # between the two envelope frames around it, as the linear interpolation splits its value.
    m, k = np.meshgrid(np.arange(n_stft), np.arange(n_fft), indexing="ij")
    sample = m * hop - n_fft // 2 + k
    inside = (sample >= 0) & (sample < n)
    m, k, sample = m[inside], k[inside], sample[inside]
    frame, frac = np.divmod(sample, config.hop)
    frac = frac / config.hop
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
    w2: np.ndarray  # (n_stft, n_frames): window^2 weights, for noise power
    w1: np.ndarray  # (n_stft, n_frames): window weights, for partial amplitude


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


def stft_power(waves: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(..., n) -> (..., bins, frames) |STFT|^2, periodic Hann, centred with zero padding."""
    n = waves.shape[-1]
    padded = np.pad(waves, [(0, 0)] * (waves.ndim - 1) + [(n_fft // 2, n_fft // 2)])
    starts = np.arange(n // hop + 1) * hop
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=-1)[..., starts, :]
    spectrum = np.fft.rfft(frames * _hann(n_fft), axis=-1)
    return np.swapaxes(np.abs(spectrum) ** 2, -1, -2)


# --- the model -------------------------------------------------------------------------------------


@dataclass
class Params:
    """What the MLP says about one or more points (leading batch dimensions allowed)."""

    log_env: np.ndarray  # (..., n_bands, n_frames) natural-log RMS amplitude of each band
    freq_hz: np.ndarray  # (..., n_partials)
    amp: np.ndarray  # (..., n_partials) peak amplitude
    decay_s: np.ndarray  # (..., n_partials)


def split_outputs(config: EnvelopeConfig, raw: np.ndarray) -> Params:
    """The MLP's raw outputs (..., n_outputs) -> bounded, physical parameters."""
    head = config.n_bands * config.n_frames
    k = config.n_partials
    log_env = raw[..., :head].reshape(*raw.shape[:-1], config.n_bands, config.n_frames)
    f_raw, a_raw, d_raw = raw[..., head : head + k], raw[..., head + k : head + 2 * k], raw[..., head + 2 * k :]
    (f_lo, f_hi), (d_lo, d_hi) = config.partial_hz, config.partial_decay_s
    sig = ACTIVATIONS["sig"]
    return Params(
        log_env=np.minimum(log_env, 1.0),  # e^1: louder than any normalized snare band
        freq_hz=f_lo * (f_hi / f_lo) ** sig(f_raw),
        amp=np.exp(np.minimum(a_raw, 1.0)),
        decay_s=d_lo * (d_hi / d_lo) ** sig(d_raw),
    )


class EnvelopeSnare:
    """The numpy half of the family: decode (render), expected spectrograms, and encode."""

    def __init__(self, config: EnvelopeConfig, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.config = config
        self.layers = layers  # [(weight (out, in), bias (out,))], torch's nn.Linear layout
        self.act = ACTIVATIONS[config.activation]

    @cached_property
    def bank(self) -> np.ndarray:
        return noise_bank(self.config)

    @cached_property
    def geometry(self) -> list[SpectralGeometry]:
        return [spectral_geometry(self.config, n_fft, hop) for n_fft, hop in RESOLUTIONS]

    @cached_property
    def _time_s(self) -> np.ndarray:
        return np.arange(self.config.n_samples) / self.config.sample_rate

    @cached_property
    def _time_s32(self) -> np.ndarray:
        return self._time_s.astype(np.float32)

    def params(self, latent) -> Params:
        """(..., 2) -> Params"""
        x = np.asarray(latent, dtype=np.float32)
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if i < len(self.layers) - 1:
                x = self.act(x)
        return split_outputs(self.config, x)

    def render(self, p: Params) -> np.ndarray:
        """Params of one point -> (n_samples,) float32 audio."""
        c = self.config
        env = np.exp(p.log_env).astype(np.float32)  # (n_bands, n_frames)
        # Each hop-long segment i: sum over bands of noise x (env at frame i, fading to frame i + 1).
        start = np.matmul(self.bank, env[:, :-1].T[:, :, None])[..., 0]  # (n_frames - 1, hop)
        end = np.matmul(self.bank, env[:, 1:].T[:, :, None])[..., 0]
        ramp = np.arange(c.hop, dtype=np.float32) / c.hop
        snare = (start + (end - start) * ramp).reshape(-1)[: c.n_samples]  # the noise bands
        for f, a, tau in zip(p.freq_hz, p.amp, p.decay_s):
            # A partial stops where its decay is PARTIAL_FLOOR_DB down: most decay within a fraction
            # of the snare, and the partials are most of a render's cost (half of it saved, median).
            n = min(c.n_samples, int(np.ceil(tau * PARTIAL_FLOOR_DECAYS * c.sample_rate)))
            # The phase in cycles is reduced in float64 (a float32 f*t drifts by 1e-3 rad after
            # 0.75 s at 1 kHz); the sine and decay run in float32, which is fast.
            cycles = np.mod(float(f) * self._time_s[:n], 1.0).astype(np.float32)
            snare[:n] += (
                np.float32(a)
                * np.exp(self._time_s32[:n] * np.float32(-1.0 / tau))
                * np.sin(np.float32(2 * np.pi) * cycles)
            )
        return snare

    def decode(self, latent) -> np.ndarray:
        """(2,) -> (n_samples,) or (B, 2) -> (B, n_samples), float32"""
        latent = np.asarray(latent, dtype=np.float32)
        if latent.ndim == 1:
            return self.render(self.params(latent))
        return np.stack([self.render(self.params(z)) for z in latent])

    def expected_power(self, p: Params) -> list[np.ndarray]:
        """Params (batch, ...) -> per resolution (batch, bins, n_stft) expected |STFT|^2 of the render."""
        frame_t = np.arange(self.config.n_frames) * self.config.hop / self.config.sample_rate
        env2 = np.exp(2.0 * p.log_env)  # (B, n_bands, n_frames)
        partial_env = p.amp[..., None] * np.exp(-frame_t / p.decay_s[..., None])  # (B, K, n_frames)
        out = []
        for g in self.geometry:
            power = g.band_power @ (env2 @ g.w2.T)  # (B, bins, n_stft)
            shape = partial_shape(g.freqs_hz[None, None, :], p.freq_hz[..., None], g.n_fft, self.config.sample_rate)
            amp = partial_env @ g.w1.T  # (B, K, n_stft): window-weighted amplitude
            power = power + 0.25 * np.matmul(np.swapaxes(shape, -1, -2), amp**2)  # sum over partials
            out.append(power)
        return out

    def encode(self, wave, knobs, grid_steps: int = GRID_STEPS) -> np.ndarray:
        """(n_samples,) -> (2,): the point within the knobs' reach whose snare is closest to `wave`
        in the multi-resolution log-spectral distance: a grid of knob positions, then a pattern
        search over the knobs from the most promising grid points, on real renders (so a snare
        this model rendered is found again exactly).
        (B, n) -> (B, 2), one by one."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2:
            return np.stack([self.encode(w, knobs, grid_steps) for w in wave])
        target = self._log_power(wave)
        axis = np.linspace(0.0, CC_MAX, grid_steps)
        grid_cc = np.stack(np.meshgrid(axis, axis, indexing="xy"), axis=-1).reshape(-1, 2)
        grid = np.stack([knobs.cc_to_latent(*cc) for cc in grid_cc])
        # Every grid point's render is compared, so a sharp valley between grid points is entered
        # from its nearest grid point; the best few are refined, best first.
        rendered = np.array([self.render_distance(z, target) for z in grid])
        best, best_d = grid_cc[int(np.argmin(rendered))], np.inf
        for start in np.argsort(rendered)[:GRID_STARTS]:
            if rendered[start] >= best_d:
                break  # a refined point is already closer than every remaining start
            cc, d = self._pattern_search(grid_cc[start], rendered[start], knobs, target)
            if d < best_d:
                best, best_d = cc, d
        return knobs.cc_to_latent(*best)

    def _pattern_search(self, best: np.ndarray, best_d: float, knobs, target) -> tuple[np.ndarray, float]:
        """Walk to the closest neighbour while one is closer, then halve the step (about)."""
        for step in REFINE_STEPS_CC:
            moved = True
            while moved:
                around = np.clip(best + step * NEIGHBOURS, 0.0, CC_MAX)
                d = [self.render_distance(knobs.cc_to_latent(*cc), target) for cc in around]
                moved = min(d) < best_d - 1e-9
                if moved:
                    best, best_d = around[int(np.argmin(d))], min(d)
        return best, best_d

    def _log_power(self, wave: np.ndarray) -> list[np.ndarray]:
        """Log STFT power per resolution of `wave` at its own peak: encoding ignores level (a
        dropped file is normalized, and velocity sets the level of what the model plays)."""
        wave = wave / max(float(np.max(np.abs(wave))), 1e-9)
        return [np.log(stft_power(wave, g.n_fft, g.hop).astype(np.float32) + LOG_EPS) for g in self.geometry]

    def render_distance(self, latent: np.ndarray, target_log_power: list[np.ndarray]) -> float:
        """One point's render vs a target's log power per resolution: mean |log-magnitude| difference."""
        rendered = self._log_power(self.decode(latent))
        return float(np.mean([0.5 * np.abs(a - b).mean() for a, b in zip(rendered, target_log_power)]))
