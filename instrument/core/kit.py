"""A kit: every hit a note can play at one knob position, as a sampler lays them out.

    kit[layer, variant] -> (n,) float32 at the engine rate, finished (core/dsp.finish_snare)

- **Velocity layers.** The model renders a soft, a medium and a hard hit (VELOCITY_LAYERS); a
  note plays the layer nearest its velocity (`LAYER_OF_VELOCITY`, split halfway between the
  layers), at the level its exact velocity gives. A model that plays no velocity timbre (the
  seed's dense family) has one layer.
- **Round robins.** Each layer has `variants` hits that differ as strokes of one drum do;
  consecutive notes take them in turn, so a roll is never one sample repeated.

A kit of one layer and one variant is a single snare: what the decode worker publishes first,
so the knob answers within a decode, and what a model without either plays.
"""

from __future__ import annotations

import numpy as np

VELOCITY_LAYERS = (40, 80, 127)  # MIDI velocities the layers are rendered at


def layer_of_velocity(n_layers: int = len(VELOCITY_LAYERS)) -> list[int]:
    """(128,) the layer each MIDI velocity plays (velocity 0, a note-off, maps to the softest)."""
    if n_layers == 1:
        return [0] * 128
    bounds = [(a + b) / 2 for a, b in zip(VELOCITY_LAYERS[:-1], VELOCITY_LAYERS[1:])]
    return [int(np.searchsorted(bounds, v, side="left")) for v in range(128)]


def as_kit(hits: np.ndarray) -> np.ndarray:
    """A kit (layers, variants, n) as it is, or one snare (n,) as the kit (1, 1, n) that plays it
    for every note."""
    hits = np.asarray(hits)
    return hits if hits.ndim == 3 else hits[None, None, :]
