"""What the page reads at start, as plain values: `serve` answers them at /settings and /models,
and `latent-snare site` writes them as settings.json and models.json."""

from __future__ import annotations

from ...core.kit import VELOCITY_LAYERS
from ...files.landmarks import landmarks_of
from ...model.knobs import CC_MAX, CC_MIN
from .params import PACK_GRID_RANGE


def settings_json(config, programs: list[str]) -> dict:
    """The page's MIDI mapping, loop, levels and limits, from `config`; `programs`: the model
    names program changes 0, 1, … select."""
    c = config
    return {
        "cc": [CC_MIN, CC_MAX],
        "midi": {
            "cc_x": c.midi.cc_x,
            "cc_y": c.midi.cc_y,
            "trigger_notes": list(c.midi.trigger_notes),
            "loop_cc": c.loop.toggle_cc,
            "save_cc": c.save.cc,
            "channel": c.midi.channel,
            "programs": programs,
        },
        "loop": {"bpm": c.loop.bpm, "steps_per_beat": c.loop.steps_per_beat, "velocity": c.loop.velocity},
        "velocity_range_db": c.voices.velocity_range_db,
        "ceiling_db": c.audio.ceiling_db,
        # A note plays the layer nearest its velocity (core/kit.py), as the instrument does.
        "velocity_layers": list(VELOCITY_LAYERS),
        "max_upload_mb": c.web.max_upload_mb,
        "pack_grid": list(PACK_GRID_RANGE),
    }


def models_json(snares) -> dict:
    """The models a Snares serves, the default first."""
    served = sorted(snares.served.values(), key=lambda s: s.name != snares.default)
    return {
        "default": snares.default,
        "models": [
            {
                "name": s.name,
                "sample_rate": s.model.sample_rate,
                "n_samples": s.model.n_samples,
                "identity": s.identity,
                "browser": s.spec is not None,  # the page can decode it itself
                "n_variants": s.model.n_variants,
                # Where the model puts its training snares: the pad's dots and the nearest name.
                "landmarks": landmarks_of(s.model),
            }
            for s in served
        ],
    }
