"""A trained snare model evaluated with numpy: the playback path never imports torch.

At these sizes decoding one latent is a chain of matrix-vector products bound
by the memory traffic of the last layer's weights; numpy does it about 3x
faster than torch on 2 cores (see bench/decode.py), and starts without
torch's 2 s import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .architecture import LATENT_DIM
from .knobs import KnobMap

MIDI_VELOCITY_MAX = 127  # a hit with no velocity (a drop, a file, the page's default) is a hard one


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form of 1 / (1 + exp(-x))


ACTIVATIONS = {"relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh, "sig": _sigmoid}


class DenseStack:
    """Linear layers with one activation, optionally skipped after the last layer."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], activation: str, last_activated: bool):
        self.layers = layers  # [(weight (out, in), bias (out,))], torch's nn.Linear layout
        self.act = ACTIVATIONS[activation]
        self.last_activated = last_activated

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(..., in) -> (..., out)"""
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight.T + bias
            if i < len(self.layers) - 1 or self.last_activated:
                x = self.act(x)
        return x


class DenseAutoencoder:
    """The seed's family: a dense encoder and decoder over raw samples."""

    def __init__(self, encoder: DenseStack, decoder: DenseStack):
        self.encoder = encoder
        self.decoder = decoder

    def decode(self, latent) -> np.ndarray:
        """(2,) -> (n_samples,) or (B, 2) -> (B, n_samples), float32"""
        return self.decoder(np.asarray(latent, dtype=np.float32)).astype(np.float32, copy=False)

    def encode(self, wave, knobs=None) -> np.ndarray:
        """(n_samples,) -> (2,) or (B, n_samples) -> (B, 2); the VAE's mean for variational models.
        The encoder's answer may lie beyond the knobs' reach; `knobs` is not needed."""
        h = self.encoder(np.asarray(wave, dtype=np.float32))
        return h[..., :LATENT_DIM].astype(np.float32, copy=False)


@dataclass
class SnareModel:
    """A loaded model of any family: `net` decodes points and encodes waves; the rest describes it."""

    name: str
    path: Path  # the .safetensors file
    config: object  # the family's config: ModelConfig (dense) or EnvelopeConfig
    sample_rate: int
    knobs: KnobMap
    net: object  # DenseAutoencoder or EnvelopeSnare
    meta: dict = field(repr=False)

    @property
    def family(self) -> str:
        return getattr(self.config, "family", "dense")

    @property
    def n_samples(self) -> int:
        return self.config.n_samples

    @property
    def n_variants(self) -> int:
        """Round robins: how many different hits one point and velocity has (1: every hit alike)."""
        return getattr(self.config, "n_variants", 1)

    @property
    def plays_velocity(self) -> bool:
        """Whether velocity changes the timbre (the envelope family), not only the level."""
        return getattr(self.config, "n_velocity_inputs", 0) > 0

    def decode(self, latent, velocity: float = MIDI_VELOCITY_MAX, variant: int = 0) -> np.ndarray:
        """(2,) -> (n_samples,) or (B, 2) -> (B, n_samples), float32, peak level about 1.
        `velocity` (MIDI 1..127) chooses the timbre of a softer or harder hit, where the family
        learned one; the level is the player's (velocity_range_db). `variant` (0..n_variants-1)
        picks one round robin. The dense family has neither and ignores both."""
        if self.family == "dense":
            return self.net.decode(latent)
        return self.net.decode(latent, velocity=velocity, variant=variant)

    def encode(self, wave) -> np.ndarray:
        """(n_samples,) -> (2,) or (B, n_samples) -> (B, 2)"""
        return self.net.encode(wave, self.knobs)

    def decode_cc(self, cc_x: float, cc_y: float, velocity: float = MIDI_VELOCITY_MAX, variant: int = 0) -> np.ndarray:
        return self.decode(self.knobs.cc_to_latent(cc_x, cc_y), velocity, variant)
