"""The envelope snare in torch: the same MLP, parameters, expected spectrogram and render as
`instrument/model/envelope.py`, differentiable, for training. The fixed parts (band shapes,
noise bank, STFT weights) are built by the numpy module and copied here, so both sides play
the same noise; `tests/test_envelope.py` checks that they agree."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..model.envelope import RESOLUTIONS, EnvelopeConfig, EnvelopeSnare, partial_shape

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sig": torch.sigmoid}


class EnvelopeDecoder(nn.Module):
    """point (B, 2) -> parameters -> expected power spectrograms, or audio."""

    def __init__(self, config: EnvelopeConfig):
        super().__init__()
        self.config = config
        widths = config.widths
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act = ACTIVATIONS[config.activation]
        fixed = EnvelopeSnare(config, [])
        for i, g in enumerate(fixed.geometry):
            self.register_buffer(f"band_power_{i}", torch.tensor(g.band_power, dtype=torch.float32), persistent=False)
            self.register_buffer(f"w2_{i}", torch.tensor(g.w2.T, dtype=torch.float32), persistent=False)
            self.register_buffer(f"w1_{i}", torch.tensor(g.w1.T, dtype=torch.float32), persistent=False)
            self.register_buffer(f"freqs_{i}", torch.tensor(g.freqs_hz, dtype=torch.float32), persistent=False)
        self.register_buffer("bank", torch.from_numpy(fixed.bank), persistent=False)
        frame_t = np.arange(config.n_frames) * config.hop / config.sample_rate
        self.register_buffer("frame_t", torch.tensor(frame_t, dtype=torch.float32), persistent=False)

    def forward(self, latent: torch.Tensor):
        """(B, 2) -> (log_env (B, n_bands, n_frames), freq_hz, amp, decay_s (B, n_partials) each)"""
        x = latent
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        c = self.config
        head, k = c.n_bands * c.n_frames, c.n_partials
        (f_lo, f_hi), (d_lo, d_hi) = c.partial_hz, c.partial_decay_s
        log_env = torch.clamp(x[:, :head], max=1.0).reshape(-1, c.n_bands, c.n_frames)
        freq = f_lo * (f_hi / f_lo) ** torch.sigmoid(x[:, head : head + k])
        amp = torch.exp(torch.clamp(x[:, head + k : head + 2 * k], max=1.0))
        decay = d_lo * (d_hi / d_lo) ** torch.sigmoid(x[:, head + 2 * k :])
        return log_env, freq, amp, decay

    def expected_power(self, params) -> list[torch.Tensor]:
        """Per resolution (B, bins, n_stft): the expected |STFT|^2 of the render (see the numpy twin)."""
        log_env, freq, amp, decay = params
        env2 = torch.exp(2.0 * log_env)
        partial_env = amp[..., None] * torch.exp(-self.frame_t / decay[..., None])
        out = []
        for i, (n_fft, _hop) in enumerate(RESOLUTIONS):
            power = getattr(self, f"band_power_{i}") @ (env2 @ getattr(self, f"w2_{i}"))
            shape = partial_shape(
                getattr(self, f"freqs_{i}")[None, None, :], freq[..., None], n_fft, self.config.sample_rate, lib=torch
            )
            window_amp = partial_env @ getattr(self, f"w1_{i}")
            out.append(power + 0.25 * torch.einsum("bkf,bkm->bfm", shape, window_amp**2))
        return out

    def render(self, params) -> torch.Tensor:
        """(B, n_samples) audio, the numpy renderer's twin (used to check parity and to listen)."""
        log_env, freq, amp, decay = params
        c = self.config
        env = torch.exp(log_env)  # (B, n_bands, n_frames)
        start = torch.einsum("thb,zbt->zth", self.bank, env[:, :, :-1])
        end = torch.einsum("thb,zbt->zth", self.bank, env[:, :, 1:])
        ramp = torch.arange(c.hop, dtype=env.dtype) / c.hop
        noise = (start + (end - start) * ramp).reshape(env.shape[0], -1)[:, : c.n_samples]
        t64 = torch.arange(c.n_samples, dtype=torch.float64) / c.sample_rate
        cycles = torch.remainder(freq.double()[..., None] * t64, 1.0).to(noise.dtype)  # as numpy: the phase in float64
        t = t64.to(noise.dtype)
        tone = (amp[..., None] * torch.exp(t * (-1.0 / decay[..., None])) * torch.sin(2 * np.pi * cycles)).sum(1)
        return noise + tone


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
