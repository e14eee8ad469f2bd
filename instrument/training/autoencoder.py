"""The dense snare autoencoders in torch (training side only; see architecture.py).

Parameter names (`encoder.0.weight`, `decoder.2.bias`, ...) are the contract
with the numpy decoder in `decoder.py`, which must give the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.architecture import LATENT_DIM, ModelConfig

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sig": nn.Sigmoid}


def _linear_stack(widths: list[int]) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(n_in, n_out) for n_in, n_out in zip(widths[:-1], widths[1:]))


class SnareAutoencoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = _linear_stack(config.encoder_widths)
        self.decoder = _linear_stack(config.decoder_widths)
        self.act = ACTIVATIONS[config.activation]()

    def _run(self, layers: nn.ModuleList, x: torch.Tensor, last_activated: bool) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(x)
            if i < len(layers) - 1 or last_activated:
                x = self.act(x)
        return x

    def encode(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, n_samples) -> latent mean (B, 2), and log-variance (B, 2) for the VAE, else None."""
        h = self._run(self.encoder, wave, self.config.encoder_last_activated)
        if self.config.variational:
            return h[:, :LATENT_DIM], h[:, LATENT_DIM:]
        return h, None

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, 2) -> (B, n_samples)"""
        return self._run(self.decoder, latent, last_activated=False)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(B, n_samples) -> reconstruction (B, n_samples), latent mean (B, 2), log-variance or None."""
        mean, log_var = self.encode(wave)
        latent = mean
        if log_var is not None and self.training:
            latent = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)  # reparameterization trick
        return self.decode(latent), mean, log_var
