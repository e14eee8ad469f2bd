"""Every trainable model by name, and one `fit` for both families.

- the seed's nine dense autoencoders and their two variants (`train.py`), 700 epochs;
- the envelope snares (`train_envelope.py`), which stop early on the held-out kits.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import UserError
from ..model.envelope import EnvelopeConfig
from .dataset import Dataset
from .train import MODEL_N_SAMPLES, Recipe, extra_recipes, seed_recipes, train
from .train_envelope import EnvelopeRecipe, train_envelope

ENVELOPE_EPOCHS = 300


def envelope_recipes(epochs: int | None = None) -> list[EnvelopeRecipe]:
    """The envelope snares render their own length (EnvelopeConfig.n_samples, 1.49 s)."""
    epochs = epochs or ENVELOPE_EPOCHS
    return [
        EnvelopeRecipe(
            "env",
            EnvelopeConfig(),
            epochs=epochs,
            note="envelope snare: 32 noise bands, attack knots to 0.7 ms then bounded decays, 4 partials, "
            "velocity head, 4 round robins; MLP 2-256-256",
        ),
        EnvelopeRecipe(
            "env-small",
            EnvelopeConfig(hidden=(64, 64)),
            epochs=epochs,
            note="the same, MLP 2-64-64: a smoother, simpler plane",
        ),
    ]


def all_recipes(n_samples: int = MODEL_N_SAMPLES, epochs: int | None = None) -> list:
    """In the model card's order. `epochs` None: each family's own default (700 seed, 300 envelope)."""
    dense = {} if epochs is None else {"epochs": epochs}
    return seed_recipes(n_samples, **dense) + extra_recipes(n_samples, **dense) + envelope_recipes(epochs)


def recipe_for(name: str, n_samples: int = MODEL_N_SAMPLES, epochs: int | None = None):
    for recipe in all_recipes(n_samples, epochs):
        if recipe.name == name:
            return recipe
    known = ", ".join(r.name for r in all_recipes())
    raise UserError(f"--arch {name!r} is not a known model; choose one of: {known}")


def fit(recipe, data: Dataset, out_path: Path, device: str = "auto", progress: bool = True) -> Path:
    """Train (or resume) any recipe; returns the model's .safetensors path."""
    # Half the cores: torch's worker threads spin while waiting for each other, so on a shared
    # 2-core machine two threads beside any other busy process ran 10x slower than one.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    if isinstance(recipe, EnvelopeRecipe):
        return train_envelope(recipe, data, out_path, device=device, progress=progress)
    assert isinstance(recipe, Recipe)
    return train(recipe, data, out_path, device=device, progress=progress)
