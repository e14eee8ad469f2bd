"""What a web page needs, besides the weights, to decode an envelope snare itself.

The page's decoder (app/serve/static/snare-model.js) renders the same samples as
`EnvelopeSnare.decode` and `render_snare` (tests/e2e/test_site.py holds it within -90 dB). Every
constant and fixed curve it uses comes from here, computed by the functions numpy renders with,
so a change to the family changes both sides at once: the JavaScript only has the arithmetic.
"""

from __future__ import annotations

import numpy as np

from ..core.dsp import DC_BLOCK_HZ, SNARE_PEAK_DB, TAIL_FADE_MS
from ..core.kit import VELOCITY_LAYERS
from ..model.envelope import (
    ATTACK_KNOTS_S,
    BAND_FLOOR_LOG,
    GRID_STARTS,
    GRID_STEPS,
    LOG_EPS,
    MAX_LOG_LEVEL,
    NEIGHBOURS,
    PARTIAL_BLOCK,
    REFINE_STEPS_CC,
    RESOLUTIONS,
    VARIANT_NOISE_MIX,
    EnvelopeSnare,
    Shaper,
    band_edges_hz,
    render_grid,
    variant_offsets,
)
from . import audio

SPEC_FORMAT = "latent-snare-browser"
SPEC_VERSION = 1  # bumped whenever snare-model.js must change with it


def browser_spec(model) -> dict | None:
    """The page decoder's description of `model` (a SnareModel), as JSON-ready values; None for
    a family the page cannot render (the seed's dense autoencoders: the page asks the server)."""
    net = model.net
    if not isinstance(net, EnvelopeSnare):
        return None
    c = net.config
    shaper = Shaper(c)
    grid = render_grid(c)
    return {
        "format": SPEC_FORMAT,
        "version": SPEC_VERSION,
        "name": model.name,
        "sample_rate": c.sample_rate,
        "n_samples": c.n_samples,
        "hop": c.hop,
        "fine_hop": c.fine_hop,
        "n_fine": c.fine_hops * c.hop // c.fine_hop,  # fine grid frames, then one every hop
        "n_grid": int(grid.size),
        "noise_length": c.noise_length,
        "n_bands": c.n_bands,
        "n_partials": c.n_partials,
        "n_variants": c.n_variants,
        "noise_seed": c.noise_seed,
        "widths": c.widths,
        "activation": c.activation,
        "knots_s": list(c.knots_s),
        "n_attack_knots": len(ATTACK_KNOTS_S),
        "fall_lo": shaper.fall_lo.tolist(),
        "fall_span": shaper.fall_span.tolist(),
        "segment_s": shaper.segment_s.tolist(),
        "ceiling": shaper.ceiling.tolist(),
        "max_log_level": MAX_LOG_LEVEL,
        "band_floor_log": float(BAND_FLOOR_LOG),
        "log_band_centres": np.log(band_edges_hz(c)[1:-1]).tolist(),
        "partial_hz": list(c.partial_hz),
        "partial_decay_s": list(c.partial_decay_s),
        "partial_block": PARTIAL_BLOCK,
        "variant_noise_mix": VARIANT_NOISE_MIX,
        "variant_offsets": [
            {key: value.tolist() for key, value in variant_offsets(c, v).items()} for v in range(c.n_variants)
        ],
        "dc_block_hz": DC_BLOCK_HZ,
        "tail_fade_ms": TAIL_FADE_MS,
        "snare_peak_db": SNARE_PEAK_DB,
        "velocity_layers": list(VELOCITY_LAYERS),
        "knobs": model.knobs.to_dict(),
        # A dropped file, as files/audio.py conditions it, and the distance encode searches in.
        "condition": {
            "max_duration_s": audio.MAX_DURATION_S,
            "onset_threshold_db": audio.ONSET_THRESHOLD_DB,
            "onset_preroll_ms": audio.ONSET_PREROLL_MS,
            "fade_out_ms": audio.FADE_OUT_MS,
            "silence_peak": audio.SILENCE_PEAK,
        },
        "resolutions": [list(r) for r in RESOLUTIONS],
        "log_eps": LOG_EPS,
        "encode": {
            "grid_steps": GRID_STEPS,
            "grid_starts": GRID_STARTS,
            "refine_steps_cc": list(REFINE_STEPS_CC),
            "neighbours": NEIGHBOURS.tolist(),
        },
    }
