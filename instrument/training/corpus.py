"""The snare corpus: snare-family samples from Debian's Hydrogen drum kits.

`build_corpus` downloads `hydrogen-drumkits` and `hydrogen-drumkits-effects`
with apt, picks instruments by their *names in drumkit.xml* (not by file
names), copies the files into `<out>/<kit>/`, and writes a manifest with kit,
instrument, licence, split and sha256 for every file.

Validation holds out whole kits, so the numbers say how a model does on kits
it never heard.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

DEBIAN_PACKAGES = ("hydrogen-drumkits", "hydrogen-drumkits-effects")
KITS_DIR = "usr/share/hydrogen/data/drumkits"

# Snare family: snares, rimshots, rim clicks, side sticks, and claps (they fill
# the same backbeat slot and widen the plane). Rolls are not one-shots.
SNARE_FAMILY = re.compile(r"snare|rim ?shot|rim ?click|side ?stick|clap", re.IGNORECASE)
EXCLUDED = re.compile(r"roll", re.IGNORECASE)

# Kits whose drumkit.xml carries no <license>; taken from the packages' debian/copyright.
LICENSE_FROM_DEBIAN_COPYRIGHT = {
    "ColomboAcousticDrumkit": "GPL-2+",
    "Millo-Drums_v.1": "GPL-2",
    "Millo_MultiLayered2": "GPL-2",
    "Millo_MultiLayered3": "GPL-2",
}

# Held out for validation: one electronic, one acoustic multi-layer, one mixed kit.
# Fixed by name so that the split never changes when the corpus is rebuilt.
HOLDOUT_KITS = ("ElectricEmpireKit", "The Black Pearl 1.0", "rumpf_kit_z01_gm")

MANIFEST_FIELDS = ("path", "kit", "instrument", "license", "split", "sha256")


@dataclass(frozen=True)
class CorpusFile:
    path: str  # relative to the corpus folder: "<kit>/<file>"
    kit: str
    instrument: str
    license: str
    split: str  # "train" or "val"
    sha256: str


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop the XML namespace, which varies between kit versions


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name and child.text:
            return child.text.strip()
    return None


def scan_kit(drumkit_xml: Path) -> list[tuple[str, str, str, Path]]:
    """(kit, instrument, licence, sample path) for every snare-family layer of one kit."""
    root = ET.parse(drumkit_xml).getroot()
    kit = _child_text(root, "name") or drumkit_xml.parent.name
    license = _child_text(root, "license") or LICENSE_FROM_DEBIAN_COPYRIGHT.get(drumkit_xml.parent.name, "unknown")
    found = []
    for instrument in root.iter():
        if _local(instrument.tag) != "instrument":
            continue
        name = _child_text(instrument, "name") or ""
        if not SNARE_FAMILY.search(name) or EXCLUDED.search(name):
            continue
        for element in instrument.iter():
            if _local(element.tag) == "filename" and element.text:
                found.append((kit, name, license, drumkit_xml.parent / element.text.strip()))
    return found


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def build_corpus(out_dir: Path, manifest_path: Path, cache_dir: Path | None = None) -> list[CorpusFile]:
    """Download the Debian packages, extract the snare family into `out_dir`, write the manifest."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise UserError("building the corpus needs apt-get and dpkg (Debian or Ubuntu)")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(cache_dir or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        if not all(list(cache.glob(f"{pkg}_*.deb")) for pkg in DEBIAN_PACKAGES):
            result = subprocess.run(["apt-get", "download", *DEBIAN_PACKAGES], cwd=cache, capture_output=True, text=True)
            if result.returncode != 0:
                raise UserError(f"apt-get download {' '.join(DEBIAN_PACKAGES)} failed: {result.stderr.strip()[-300:]}")
        extracted = Path(tmp) / "extracted"
        for deb in sorted(cache.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(extracted)], check=True)
        entries = []
        for drumkit_xml in sorted((extracted / KITS_DIR).glob("*/drumkit.xml")):
            entries.extend(scan_kit(drumkit_xml))
        files = _copy_entries(entries, Path(out_dir))
    write_manifest(files, manifest_path)
    return files


def _copy_entries(entries, out_dir: Path) -> list[CorpusFile]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files, seen = [], set()
    for kit, instrument, license, source in entries:
        if not source.is_file():
            continue  # a layer naming a file the package does not ship
        rel = f"{_safe_name(kit)}/{_safe_name(source.name)}"
        if rel in seen:
            continue  # one file used by two layers or instruments
        seen.add(rel)
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        split = "val" if kit in HOLDOUT_KITS else "train"
        files.append(CorpusFile(rel, kit, instrument, license, split, sha256_of(target)))
    return files


def write_manifest(files: list[CorpusFile], manifest_path: Path) -> None:
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    with open(manifest_path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_FIELDS)
        for f in files:
            writer.writerow([getattr(f, field) for field in MANIFEST_FIELDS])


def read_manifest(manifest_path: Path) -> list[CorpusFile]:
    try:
        with open(manifest_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise UserError(f"{manifest_path}: cannot read the corpus manifest: {err.strerror}") from err
    try:
        return [CorpusFile(**{field: row[field] for field in MANIFEST_FIELDS}) for row in rows]
    except (KeyError, TypeError) as err:
        raise UserError(f"{manifest_path}: not a corpus manifest (columns must be {', '.join(MANIFEST_FIELDS)})") from err


def corpus_hash(files: list[CorpusFile]) -> str:
    """One hash for the whole corpus: the sorted (path, sha256) pairs."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        digest.update(f"{f.path}\t{f.sha256}\n".encode())
    return digest.hexdigest()
