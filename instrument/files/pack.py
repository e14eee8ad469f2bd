"""`latent-snare pack`: an N x N grid of snares over the knob plane, as files any sampler takes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import UserError
from ..model.knobs import CC_MAX, CC_MIN
from .latent_map import draw_grid_map
from .saving import render_snare, write_snare

INDEX_NAME, MAP_NAME = "index.csv", "latent-map.png"


def grid_ccs(n: int) -> np.ndarray:
    """N whole knob positions over the knob travel, both ends included."""
    return np.linspace(CC_MIN, CC_MAX, n).round()


def render_pack(model, grid_n: int, out_dir: Path, config, velocity: int = 127) -> list[dict]:
    """Write the pack: WAVs named by row, column and CC, each a hit at `velocity` (its timbre and
    level); index.csv (file, latent, CC, velocity); the map picture."""
    if not 2 <= grid_n <= 32:
        raise UserError(f"--grid {grid_n}: allowed 2..32 (a 32x32 pack is 1024 files)")
    out_dir = Path(out_dir)
    ccs = grid_ccs(grid_n)
    rows = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for r, cc_y in enumerate(ccs):
            for c, cc_x in enumerate(ccs):
                latent = model.knobs.cc_to_latent(cc_x, cc_y)
                name = f"{model.name}-r{r + 1:02d}c{c + 1:02d}-x{int(cc_x):03d}-y{int(cc_y):03d}.wav"
                wave = render_snare(model, latent, velocity, config.voices.velocity_range_db, config.audio.ceiling_db)
                write_snare(out_dir / name, wave, model.sample_rate, model, latent)
                rows.append(
                    {
                        "file": name,
                        "row": r + 1,
                        "col": c + 1,
                        "cc_x": int(cc_x),
                        "cc_y": int(cc_y),
                        "latent_x": f"{latent[0]:.6f}",
                        "latent_y": f"{latent[1]:.6f}",
                        "velocity": velocity,
                        "model": model.name,
                    }
                )
        with open(out_dir / INDEX_NAME, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        draw_grid_map(
            model,
            ccs,
            out_dir / MAP_NAME,
            [f"r{row['row']:02d}c{row['col']:02d}" for row in rows],
            (config.midi.cc_x, config.midi.cc_y),
        )
    except (OSError, sf.LibsndfileError) as err:
        raise UserError(f"{out_dir}: cannot write the pack there: {getattr(err, 'strerror', None) or err}") from err
    return rows
