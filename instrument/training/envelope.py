"""The envelope snare in torch: the same MLP, parameters, expected spectrogram and render as
`instrument/model/envelope.py`, differentiable, for training. The fixed parts (render grid,
knot interpolation, bounds, band shapes, noise bank, STFT weights) are built by the numpy module
and copied here, so both sides play the same noise; `tests/test_envelope.py` checks that they
agree."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..model.envelope import (
    MAX_LOG_LEVEL,
    RESOLUTIONS,
    EnvelopeConfig,
    EnvelopeSnare,
    Params,
    _split,
    partial_shape,
    velocity_mix,
)

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sig": torch.sigmoid}


def _buffer(module: nn.Module, name: str, array) -> None:
    module.register_buffer(name, torch.tensor(np.asarray(array), dtype=torch.float32), persistent=False)


class EnvelopeDecoder(nn.Module):
    """(point (B, 2), velocity (B,)) -> parameters -> expected power spectrograms, or audio."""

    def __init__(self, config: EnvelopeConfig):
        super().__init__()
        self.config = config
        widths = config.widths
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = ACTIVATIONS[config.activation]
        fixed = EnvelopeSnare(config, [])
        for i, g in enumerate(fixed.geometry):
            _buffer(self, f"band_power_{i}", g.band_power)
            # Each STFT frame sees a few grid frames: sparse, 3-10x faster than dense (bench'd
            # in training on 2 cores), forward and backward.
            self.register_buffer(f"w2_{i}", sparse_weights(g.w2), persistent=False)
            self.register_buffer(f"w1_{i}", sparse_weights(g.w1), persistent=False)
            _buffer(self, f"freqs_{i}", g.freqs_hz)
        shaper = fixed.shaper
        _buffer(self, "interp", shaper.interp)
        _buffer(self, "fall_lo", shaper.fall_lo)
        _buffer(self, "fall_span", shaper.fall_span)
        _buffer(self, "segment_s", shaper.segment_s)
        _buffer(self, "ceiling", shaper.ceiling)
        _buffer(self, "grid_t", fixed.grid / config.sample_rate)
        self._fixed = fixed  # the numpy side's banks, for `render`

    def forward(self, latent: torch.Tensor, velocity: torch.Tensor):
        """(B, 2), (B,) MIDI velocity -> (log_env (B, n_bands, n_grid), freq_hz, amp, decay_s (B, n_partials))"""
        x = latent
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        c = self.config
        raw = velocity_mix(x, velocity[:, None], c.n_outputs)
        attack, rate, f_raw, a_raw, d_raw = _split(c, raw)
        attack = torch.clamp(attack, max=MAX_LOG_LEVEL)
        fall = (self.fall_lo + self.fall_span * torch.sigmoid(rate)) * self.segment_s
        levels = torch.cat([attack, attack[..., -1:] - torch.cumsum(fall, dim=-1)], dim=-1)
        levels = self.ceiling - nn.functional.softplus(self.ceiling - levels)
        (f_lo, f_hi), (d_lo, d_hi) = c.partial_hz, c.partial_decay_s
        freq = f_lo * (f_hi / f_lo) ** torch.sigmoid(f_raw)
        amp = torch.exp(torch.clamp(a_raw, max=0.0))
        decay = d_lo * (d_hi / d_lo) ** torch.sigmoid(d_raw)
        return levels @ self.interp, freq, amp, decay

    def expected_power(self, params) -> list[torch.Tensor]:
        """Per resolution (B, bins, n_stft): the expected |STFT|^2 of the render (see the numpy twin)."""
        log_env, freq, amp, decay = params
        env2 = torch.exp(2.0 * log_env)
        partial_env = amp[..., None] * torch.exp(-self.grid_t / decay[..., None])
        out = []
        for i, (n_fft, _hop) in enumerate(RESOLUTIONS):
            shape = partial_shape(
                getattr(self, f"freqs_{i}")[None, None, :], freq[..., None], n_fft, self.config.sample_rate, lib=torch
            )
            window_amp = frames_of(partial_env, getattr(self, f"w1_{i}"))
            out.append(
                power_spectrogram(
                    getattr(self, f"band_power_{i}"), frames_of(env2, getattr(self, f"w2_{i}")), shape, window_amp
                )
            )
        return out

    @torch.no_grad()
    def render(self, params, variant: int = 0) -> np.ndarray:
        """(B, n_samples) audio through the numpy renderer (for listening and the parity test)."""
        log_env, freq, amp, decay = (p.detach().cpu().double().numpy() for p in params)
        return np.stack(
            [
                self._fixed.render(Params(log_env[i], freq[i], amp[i], decay[i]), variant)
                for i in range(log_env.shape[0])
            ]
        )


def power_spectrogram(band_power, band_frames, partial_shapes, partial_frames) -> torch.Tensor:
    """(B, bins, n_stft): noise bands' power (band_power (bins, n_bands) @ band_frames (B, n_bands,
    n_stft)) plus the partials' (partial_shapes (B, K, bins), partial_frames (B, K, n_stft)
    window-weighted amplitudes: a sine of amplitude a has power a^2 / 4 at its bin), in one
    batched product."""
    b = band_frames.shape[0]
    shapes = torch.cat([band_power.expand(b, -1, -1), 0.25 * partial_shapes.transpose(1, 2)], dim=2)
    return shapes @ torch.cat([band_frames, partial_frames**2], dim=1)


def sparse_weights(weights: np.ndarray) -> torch.Tensor:
    return torch.tensor(weights, dtype=torch.float32).to_sparse_csr()


def frames_of(grid_values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, C, n_grid) values at the render grid -> (B, C, n_stft) window-weighted sums, through
    a sparse (n_stft, n_grid) weight matrix."""
    b, c, g = grid_values.shape
    return (weights @ grid_values.reshape(b * c, g).T).T.reshape(b, c, -1)


def stft_power(waves: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(B, n) -> (B, bins, frames) |STFT|^2 with the numpy twin's framing (periodic Hann, zero padding)."""
    window = torch.hann_window(n_fft, dtype=waves.dtype, device=waves.device)
    spec = torch.stft(
        waves, n_fft, hop_length=hop, window=window, center=True, pad_mode="constant", return_complex=True
    )
    return spec.real**2 + spec.imag**2


def to_numpy_layers(model: EnvelopeDecoder) -> dict[str, np.ndarray]:
    """The MLP's weights as the model file stores them: mlp.{i}.weight / mlp.{i}.bias."""
    return {
        f"mlp.{i}.{kind}": getattr(layer, kind).detach().cpu().numpy()
        for i, layer in enumerate(model.layers)
        for kind in ("weight", "bias")
    }
