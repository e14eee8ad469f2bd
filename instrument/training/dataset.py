"""A folder of snares as model-ready arrays, split by kit into train and validation.

A folder built by `latent-snare corpus` carries `manifest.csv`, whose split
column decides. Any other folder (a producer's own library) is split by its
first-level subfolders, treated as kits: a fifth of the kits (at least one),
chosen by a hash of their names, is held out. A flat folder, or one with fewer
than three kits, holds out a fifth of its files instead.

A producer's kit folders hold kicks and hats beside the snares. Files whose
path names another drum (kick, hat, tom, cymbal...) are left out, unless
`all_files`; files named as snares, rims or claps, and files whose names say
nothing, are kept. `Dataset.found` says what was found and what was used.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..files.audio import find_audio_files, load_snare
from .corpus import corpus_hash, read_manifest, sha256_of
from .corpus.sources import SNARE_FAMILY

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
# A sample with no velocity (a one-layer kit, a sample folder) is taken as a hard hit: that is how
# single samples are recorded and chosen, and a sampler plays its only layer at full velocity.
HARD_HIT = 127
VAL_FRACTION = 0.2
MIN_KITS_FOR_KIT_SPLIT = 3
# Drum names in file and folder names, as kits spell them ("Snare-2.wav", "BD01.wav", "HiHat_open.flac").
SNARE_NAME = re.compile(SNARE_FAMILY.pattern + r"|(?<![a-z])(sd|sn)(?![a-z])", re.IGNORECASE)
OTHER_DRUM_NAME = re.compile(
    r"(?<![a-z])(kick|bd|bass ?drum|hi-?hats?|hh|oh|ch|toms?|floor ?tom|cymbals?|crash|ride|"
    r"splash|china|cowbell|conga|bongo|shaker|tambourine|tamb|perc\w*)(?![a-z])",
    re.IGNORECASE,
)


@dataclass
class Snares:
    waves: np.ndarray  # (N, n_samples) float32, peak-normalized
    names: list[str]  # paths relative to the data folder
    kits: list[str]
    velocity: np.ndarray  # (N,) MIDI velocity each clip was played at; HARD_HIT where nobody said
    drums: list[str]  # the drum each clip is a layer of: clips of one drum share a point in the plane

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class Dataset:
    train: Snares
    val: Snares
    corpus_hash: str
    source: str
    found: str = ""  # what the folder held and what was used, for the person training


def _held_out(keys: set[str]) -> set[str]:
    """A fifth of the keys (at least one), chosen by a hash of their names: stable across runs."""
    ranked = sorted(keys, key=lambda k: hashlib.sha256(k.encode()).hexdigest())
    return set(ranked[: max(1, round(len(ranked) * VAL_FRACTION))])


def _split_user_folder(folder: Path, files: list[Path]) -> list[tuple[Path, str, str]]:
    kits = {f: (f.relative_to(folder).parts[0] if len(f.relative_to(folder).parts) > 1 else ".") for f in files}
    by_kit = len(set(kits.values())) >= MIN_KITS_FOR_KIT_SPLIT
    keys = {f: kits[f] if by_kit else str(f.relative_to(folder)) for f in files}
    held_out = _held_out(set(keys.values())) if len(files) >= MIN_KITS_FOR_KIT_SPLIT else set()
    return [(f, kits[f], "val" if keys[f] in held_out else "train") for f in files]


def drum_kind(relative_path: str) -> str:
    """ "snare" (named as a snare, rim or clap), "other" (named as another drum) or "unnamed"."""
    if SNARE_NAME.search(relative_path):
        return "snare"
    return "other" if OTHER_DRUM_NAME.search(relative_path) else "unnamed"


def _pick_snares(folder: Path, files: list[Path], all_files: bool) -> tuple[list[Path], str]:
    kinds = {f: drum_kind(str(f.relative_to(folder))) for f in files}
    count = {kind: sum(k == kind for k in kinds.values()) for kind in ("snare", "other", "unnamed")}
    kits = len({f.relative_to(folder).parts[0] for f in files if len(f.relative_to(folder).parts) > 1})
    found = (
        f"{len(files)} audio files"
        + (f" in {kits} kit folders" if kits else "")
        + f": {count['snare']} named as snares, rims or claps, {count['other']} as other drums, {count['unnamed']} unnamed"
    )
    if all_files or not count["other"]:
        return files, found + "; using all of them"
    return [f for f in files if kinds[f] != "other"], found + "; leaving out the other drums (--all-files keeps them)"


def load_dataset(folder: str | Path, sample_rate: int, n_samples: int, all_files: bool = False) -> Dataset:
    """Load and condition every snare under `folder`; bad files are skipped with a warning naming them."""
    folder = Path(folder)
    manifest = folder / MANIFEST_NAME
    if manifest.is_file():
        entries = read_manifest(manifest)
        listing = [(folder / e.path, e.kit, e.split, _velocity(e.velocity), _drum(e)) for e in entries]
        expected = {folder / e.path: e.sha256 for e in entries}
        digest = corpus_hash(entries)
        found = f"{len(entries)} snares listed in {manifest}"
    else:
        files, found = _pick_snares(folder, find_audio_files(folder), all_files)
        listing = [(f, kit, split, HARD_HIT, str(f)) for f, kit, split in _split_user_folder(folder, files)]
        expected = {}
        digest = hashlib.sha256(
            "".join(f"{f.relative_to(folder)}\t{sha256_of(f)}\n" for f in files).encode()
        ).hexdigest()
    if not listing:
        raise UserError(f"{folder}: no snares found (looked for .wav, .flac, .aif, .aiff, .ogg; {found})")

    parts: dict[str, tuple[list, ...]] = {"train": ([], [], [], [], []), "val": ([], [], [], [], [])}
    skipped = 0
    for path, kit, split, velocity, drum in listing:
        if path in expected and path.is_file() and sha256_of(path) != expected[path]:
            log.warning("%s: contents differ from the manifest's sha256; using it anyway", path)
        try:
            wave = load_snare(path, sample_rate, n_samples)
        except UserError as err:
            log.warning("skipping %s", err)
            skipped += 1
            continue
        for column, value in zip(parts[split], (wave, str(path.relative_to(folder)), kit, velocity, drum)):
            column.append(value)
    if not parts["train"][0]:
        raise UserError(f"{folder}: none of the {len(listing)} files is a usable snare ({skipped} skipped)")
    if not parts["val"][0]:
        # Too few kits to hold one out: validate on the training set and say so.
        log.warning("%s: no held-out kit; validation numbers are on training data", folder)
        parts["val"] = parts["train"]
    return Dataset(
        train=_stack(*parts["train"], n_samples),
        val=_stack(*parts["val"], n_samples),
        corpus_hash=digest,
        source=str(folder),
        found=found + (f"; {skipped} unreadable, skipped" if skipped else ""),
    )


def _velocity(text: str) -> int:
    return int(text) if text.strip() else HARD_HIT


def _drum(entry) -> str:
    """Clips with a velocity are layers of the drum their unit and instrument name; any other
    clip is a drum of its own (a sample folder's files share an "instrument" only by accident)."""
    return f"{entry.kit}/{entry.instrument}" if entry.velocity.strip() else entry.path


def _stack(waves: list, names: list, kits: list, velocity: list, drums: list, n_samples: int) -> Snares:
    array = np.stack(waves).astype(np.float32) if waves else np.zeros((0, n_samples), np.float32)
    return Snares(array, list(names), list(kits), np.asarray(velocity, np.float32), list(drums))
