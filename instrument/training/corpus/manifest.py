"""The corpus manifest: one CSV row per file, and the rule that splits units into train and val.

The manifest is committed (models/corpus.csv) and also written into the corpus
folder (manifest.csv), where `dataset.load_dataset` reads its split column.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

from ...errors import UserError

# Held out from the original Hydrogen corpus: one electronic, one acoustic multi-layer, one mixed kit.
# Fixed by name so that the split never changes when the corpus is rebuilt.
HOLDOUT_KITS = ("ElectricEmpireKit", "The Black Pearl 1.0", "rumpf_kit_z01_gm")

# Units of the original corpus's two packages keep exactly today's split: HOLDOUT_KITS, the rest train.
FIXED_SPLIT_PACKAGES = ("hydrogen-drumkits", "hydrogen-drumkits-effects")

# Every other unit (a kit, a soundfont preset, a package's sample folder) is held out when a hash of
# its name falls under this fraction: stable across rebuilds, and a new unit never moves an old one.
VAL_UNIT_FRACTION = 0.18
SPLIT_SALT = "latent-snare/corpus-split/v1"

# The columns the dataset loader needs; a manifest without them is refused.
REQUIRED_FIELDS = ("path", "kit", "instrument", "license", "split", "sha256")


@dataclass(frozen=True)
class CorpusFile:
    path: str  # relative to the corpus folder: "<unit>/<file>.wav"
    kit: str  # the split unit: a Hydrogen kit, a soundfont preset, or a package's sample folder
    instrument: str  # e.g. "Snare Rimshot", or "38 Acoustic Snare" for a rendered GM note
    license: str
    split: str  # "train" or "val"
    sha256: str  # of the file as written
    source: str = ""  # the Debian package it came from
    origin: str = ""  # where inside the package: a file path, or "<soundfont> bank:program note"
    velocity: str = ""  # MIDI velocity of a rendered hit; empty for copied samples
    sample_rate: str = ""
    seconds: str = ""


MANIFEST_FIELDS = tuple(f.name for f in fields(CorpusFile))


def split_for(unit: str, package: str) -> str:
    """'train' or 'val' for one unit; depends only on its name (and, for the old kits, the fixed list)."""
    if package in FIXED_SPLIT_PACKAGES:
        return "val" if unit in HOLDOUT_KITS else "train"
    digest = hashlib.sha256(f"{SPLIT_SALT}\n{unit}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < VAL_UNIT_FRACTION else "train"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_manifest(files: list[CorpusFile], manifest_path: Path) -> None:
    manifest_path = Path(manifest_path)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest_path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        for f in files:
            writer.writerow([getattr(f, field) for field in MANIFEST_FIELDS])


def read_manifest(manifest_path: Path) -> list[CorpusFile]:
    """Rows of a manifest; older manifests with only the required columns still read."""
    try:
        with open(manifest_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise UserError(f"{manifest_path}: cannot read the corpus manifest: {err.strerror}") from err
    try:
        return [
            CorpusFile(**{field: row[field] for field in MANIFEST_FIELDS if row.get(field) is not None}) for row in rows
        ]
    except (KeyError, TypeError) as err:
        raise UserError(
            f"{manifest_path}: not a corpus manifest (columns must include {', '.join(REQUIRED_FIELDS)})"
        ) from err


def corpus_hash(files: list[CorpusFile]) -> str:
    """One hash for the whole corpus: the sorted (path, sha256) pairs."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\t{f.sha256}\n".encode())
    return digest.hexdigest()
