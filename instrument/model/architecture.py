"""The architecture of a snare autoencoder, described without torch.

Shared by the torch model (training) and the numpy decoder (playback), so both
agree on layer widths and on which layers carry the activation.

    small   encoder N -> 9 -> 2                decoder 2 -> 9 -> N
    med     encoder N -> 96 -> 24 -> 2         decoder 2 -> 24 -> 96 -> N
    big     encoder N -> 384 -> 96 -> 24 -> 2  decoder 2 -> 24 -> 96 -> 384 -> N

Every layer has the activation except the decoder's last, which is linear
because audio is signed. The seed applies the activation to the latent too, so
a sigmoid model's latent lives in (0, 1) and a tanh model's in (-1, 1). The
variational variant's encoder ends in a linear (mean, log-variance) head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

HIDDEN = {"small": (9,), "med": (96, 24), "big": (384, 96, 24)}
ACTIVATION_NAMES = ("relu", "tanh", "sig")
LATENT_DIM = 2


@dataclass(frozen=True)
class ModelConfig:
    size: str  # small | med | big
    activation: str  # relu | tanh | sig
    n_samples: int  # samples per snare at the model rate
    variational: bool = False

    def __post_init__(self):
        if self.size not in HIDDEN:
            raise ValueError(f"size must be one of {', '.join(HIDDEN)}, got {self.size!r}")
        if self.activation not in ACTIVATION_NAMES:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATION_NAMES)}, got {self.activation!r}")
        if not isinstance(self.n_samples, int) or self.n_samples < 16:
            raise ValueError(f"n_samples must be an integer >= 16, got {self.n_samples!r}")

    @property
    def encoder_widths(self) -> list[int]:
        head = 2 * LATENT_DIM if self.variational else LATENT_DIM
        return [self.n_samples, *HIDDEN[self.size], head]

    @property
    def decoder_widths(self) -> list[int]:
        return [LATENT_DIM, *reversed(HIDDEN[self.size]), self.n_samples]

    @property
    def encoder_last_activated(self) -> bool:
        return not self.variational

    @property
    def n_parameters(self) -> int:
        return sum(a * b + b for w in (self.encoder_widths, self.decoder_widths) for a, b in zip(w[:-1], w[1:]))

    def to_dict(self) -> dict:
        return asdict(self)
