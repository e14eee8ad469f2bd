"""Landmarks: where a model puts the snares it was trained on, as knob positions, so the pages can
draw them on the pad (a player aims at real snares) and name the nearest one under the point.

Computed once per shipped model (encoding takes seconds a snare) and stored in the model's JSON
as "landmarks": a list of {"cc": [x, y], "kit": ..., "instrument": ...}, CCs rounded to 0.1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CC_DECIMALS = 1  # a tenth of a knob step is below what a pad or a knob can tell apart


def corpus_landmarks(model, snares, progress=None) -> list[dict]:
    """One landmark per drum of `snares` (a training Dataset's split: waves, kits, drums,
    velocity, names): its hardest clip, encoded by `model`, the way training gives each drum one
    point. `progress(done, total)` is called after each encode."""
    hardest: dict[str, int] = {}
    for i, drum in enumerate(snares.drums):
        if drum not in hardest or snares.velocity[i] > snares.velocity[hardest[drum]]:
            hardest[drum] = i
    picks = list(hardest.values())
    landmarks = []
    for done, i in enumerate(picks, 1):
        cc = model.knobs.latent_to_cc(model.encode(snares.waves[i]))
        landmarks.append(
            {
                "cc": [round(float(c), CC_DECIMALS) for c in cc],
                "kit": snares.kits[i],
                "instrument": _instrument(snares, i),
            }
        )
        if progress:
            progress(done, len(picks))
    return landmarks


def _instrument(snares, i: int) -> str:
    """The drum's instrument name where the manifest gave one ("KIT/INSTRUMENT"), else the file's name."""
    drum, kit = snares.drums[i], snares.kits[i]
    if drum != snares.names[i] and drum.startswith(kit + "/"):
        return drum[len(kit) + 1 :]
    return Path(snares.names[i]).stem


def landmarks_of(model) -> list[dict]:
    """The landmarks stored with `model` ([] for a model shipped without them)."""
    stored = model.meta.get("landmarks", [])
    return stored if isinstance(stored, list) else []


def write_landmarks(meta_path: Path, landmarks: list[dict]) -> None:
    """Store `landmarks` in the model description at `meta_path` (atomically), one per line: the
    file stays small and a diff shows which moved."""
    meta_path = Path(meta_path)
    meta = json.loads(meta_path.read_text())
    meta.pop("landmarks", None)
    body = json.dumps(meta, indent=2)
    lines = ",\n".join("    " + json.dumps(entry, ensure_ascii=False) for entry in landmarks)
    text = body[: body.rindex("}")].rstrip() + ',\n  "landmarks": [\n' + lines + "\n  ]\n}\n"
    json.loads(text)  # the splice above must still be JSON
    tmp = meta_path.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, meta_path)
