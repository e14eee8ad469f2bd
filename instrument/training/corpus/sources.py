"""Where the snares come from: one `Source` per Debian package, and what is picked from it.

Each source's `gather(root)` looks at the package unpacked under `root` and
returns `Candidate` hits, in a fixed order, with their unit (the split unit:
a Hydrogen kit, a soundfont preset, a package's sample folder), instrument
name and licence. Audio is read (or rendered) only when asked for.
"""

from __future__ import annotations

import functools
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...files.audio import AUDIO_SUFFIXES, read_audio
from .debian import check_allowed, copyright_text, license_from_copyright
from .soundfont import DRUM_BANK, RENDER_RATE, SNARE_NOTES, Hit, read_sf2_header, render_hits

# Snare family: snares, rimshots, rim clicks, side sticks, and claps (they fill the same backbeat
# slot and widen the plane). Rolls are not one-shots.
SNARE_FAMILY = re.compile(r"snare|rim ?shot|rim ?click|side ?stick|clap", re.IGNORECASE)
EXCLUDED = re.compile(r"roll|swirl", re.IGNORECASE)
# A Hydrogen instrument named only "Stick" (GMRockKit) is a side stick when its files say so.
SIDE_STICK_FILE = re.compile(r"side ?stick", re.IGNORECASE)
HYDROGEN_KITS_DIR = "usr/share/hydrogen/data/drumkits"

# Soundfont drum presets rendered on every snare-family note at these velocities (loudest first,
# so that when two velocities sound alike after peak normalization the loud one is kept).
VELOCITIES = (127, 80, 40)
# Kits whose snare-range notes are not snares (GS SFX kit: high Q, slap, scratch...).
NOT_A_DRUM_KIT = re.compile(r"sfx", re.IGNORECASE)
# Notes that the GS drum map gives another sound in some kits: (kit name, note, what plays there).
NOT_SNARE_NOTES = (
    (re.compile(r"brush", re.IGNORECASE), 40, "Brush Swirl"),  # a sweep held until note-off, not a hit
    (re.compile(r"orch", re.IGNORECASE), 39, "Castanets"),
)

Reader = Callable[[], tuple[np.ndarray, int]]  # -> (mono float32, sample rate)


@dataclass(frozen=True)
class Candidate:
    package: str
    unit: str
    instrument: str
    license: str
    origin: str  # where in the package: a file path or "<soundfont> <bank>:<program> note <n>"
    name: str  # output file name without suffix
    read: Reader = field(compare=False, repr=False)
    velocity: int | None = None
    rendered: bool = False  # rendered hits must also decay (one-shots) and be non-silent


@dataclass(frozen=True)
class Source:
    package: str
    gather: Callable[[Path], list[Candidate]] = field(repr=False)
    renders: bool = False  # needs FluidSynth


def _mono_file_reader(path: Path) -> Reader:
    def read():
        check_allowed(path=path)
        data, rate = read_audio(path)
        return data.mean(axis=1), rate

    return read


def _origin(path: Path, root: Path) -> str:
    return "/" + str(path.relative_to(root))


def _licence(
    root: Path,
    package: str,
    upstream_path: str,
    aliases: dict[str, str] | None = None,
    fallback: tuple[str, str] | None = None,
) -> str:
    """The licence debian/copyright gives `upstream_path`; `fallback` is (licence, a phrase the
    non-machine-readable copyright file must contain for it to apply)."""
    text = copyright_text(root, package)
    found = license_from_copyright(text, upstream_path)
    if found:
        return (aliases or {}).get(found, found)
    if fallback and fallback[1] in text:
        return fallback[0]
    raise UserError(f"{package}: no licence for {upstream_path} in usr/share/doc/{package}/copyright")


# --- Hydrogen drum kits --------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # drop the XML namespace, which varies between kit versions


def _child_text(element: ET.Element, name: str) -> str | None:
    for child in element:
        if _local(child.tag) == name and child.text:
            return child.text.strip()
    return None


def _layer_velocity(layer: ET.Element) -> int | None:
    """A Hydrogen layer's MIDI velocity: the middle of its <min>..<max> range (fractions of full
    velocity). A layer that spans the whole range says nothing about velocity: None (a hard hit)."""
    try:
        low, high = float(_child_text(layer, "min") or 0.0), float(_child_text(layer, "max") or 1.0)
    except ValueError:
        return None
    if low <= 0.0 and high >= 1.0:
        return None
    return max(1, min(127, round(127 * (low + high) / 2)))


def scan_kit(drumkit_xml: Path) -> list[tuple[str, str, str | None, Path, int | None]]:
    """(kit, instrument, licence or None, sample path, layer velocity or None) for every
    snare-family layer of one kit. Instruments are picked by their names in drumkit.xml, not by
    file names; the one exception is a layer whose file says it is a side stick (GMRockKit calls
    that instrument just "Stick")."""
    root = ET.parse(drumkit_xml).getroot()
    kit = _child_text(root, "name") or drumkit_xml.parent.name
    license = _child_text(root, "license")
    found = []
    for instrument in root.iter():
        if _local(instrument.tag) != "instrument":
            continue
        name = _child_text(instrument, "name") or ""
        if EXCLUDED.search(name):
            continue
        # Layers sit in the instrument or in its <instrumentComponent>; the oldest kits name one
        # file on the instrument itself.
        layers = [e for e in instrument.iter() if _local(e.tag) == "layer"]
        files = [(_child_text(e, "filename"), _layer_velocity(e)) for e in layers] or [
            (_child_text(instrument, "filename"), None)
        ]
        for filename, velocity in files:
            if filename and (SNARE_FAMILY.search(name) or SIDE_STICK_FILE.search(filename)):
                found.append((kit, name, license, drumkit_xml.parent / filename, velocity))
    return found


def hydrogen_kits(package: str, upstream_path: str) -> Source:
    """Every kit under usr/share/hydrogen/data/drumkits; a kit without <license> takes the one
    debian/copyright gives `upstream_path` ("{kit}" is the kit's folder)."""

    def gather(root: Path) -> list[Candidate]:
        out, seen = [], set()
        for drumkit_xml in sorted((root / HYDROGEN_KITS_DIR).glob("*/drumkit.xml")):
            for kit, instrument, license, path, velocity in scan_kit(drumkit_xml):
                if path in seen or not path.is_file():
                    continue  # a file used by two layers, or a layer naming a file the package lacks
                seen.add(path)
                if license is None:
                    folder = drumkit_xml.parent.name
                    license = _licence(root, package, upstream_path.format(kit=folder))
                origin = _origin(path, root)
                out.append(
                    Candidate(package, kit, instrument, license, origin, path.stem, _mono_file_reader(path), velocity)
                )
        return out

    return Source(package, gather)


# --- sample folders picked by file name ------------------------------------------------------


def named_files(
    package: str,
    folder: str,
    unit: str,
    pattern: str,
    upstream_path: str,
    license_aliases: dict[str, str] | None = None,
) -> Source:
    """Audio files in `folder` (and below) whose names match `pattern` (and are not rolls), as one
    unit. `upstream_path` ("{name}" is the file name) is looked up in debian/copyright."""
    wanted = re.compile(pattern, re.IGNORECASE)

    def gather(root: Path) -> list[Candidate]:
        base = root / folder
        files = sorted(
            p
            for p in base.rglob("*")
            if p.is_file()
            and p.suffix.lower() in AUDIO_SUFFIXES
            and wanted.search(p.stem)
            and not EXCLUDED.search(p.stem)
        )
        if not files:
            return []
        return [
            Candidate(
                package,
                unit,
                p.stem,
                _licence(root, package, upstream_path.format(name=p.name), license_aliases),
                _origin(p, root),
                p.stem,
                _mono_file_reader(p),
            )
            for p in files
        ]

    return Source(package, gather)


# --- FreePats: Gravis UltraSound patches -----------------------------------------------------


def read_gus_patch(path: Path) -> tuple[np.ndarray, int]:
    """The first wave of a GF1 patch as mono float32. Drum patches are unlooped one-shots, so the
    wave is the sound; a looped wave is refused (it would need a synth to play)."""
    data = Path(path).read_bytes()
    if not data.startswith(b"GF1PATCH"):
        raise UserError(f"{path}: not a GF1 patch")
    pos = 129 + 63 + 47  # patch header, instrument header, layer header
    head = data[pos : pos + 96]
    length, _, _, rate = struct.unpack("<IIIH", head[8:22])
    modes = head[55]
    if modes & 0x04:
        raise UserError(f"{path}: looped wave; not a one-shot")
    raw = data[pos + 96 : pos + 96 + length]
    if modes & 0x01:  # 16-bit
        x = np.frombuffer(raw[: len(raw) // 2 * 2], "<u2" if modes & 0x02 else "<i2").astype(np.float32)
        x = (x - 32768) / 32768 if modes & 0x02 else x / 32768
    else:
        x = np.frombuffer(raw, np.uint8 if modes & 0x02 else np.int8).astype(np.float32)
        x = (x - 128) / 128 if modes & 0x02 else x / 128
    return x.astype(np.float32), int(rate)


def gus_drum_patches(
    package: str, folder: str, unit: str, notes: tuple[int, ...], license: str, license_phrase: str
) -> Source:
    """Patches named '<note>_<Name>.pat' for the given GM notes (FreePats' Drum_000)."""

    def gather(root: Path) -> list[Candidate]:
        text_license = _licence(root, package, "*", fallback=(license, license_phrase))
        out = []
        for path in sorted((root / folder).glob("*.pat")):
            note, _, name = path.stem.partition("_")
            if note.isdigit() and int(note) in notes and not EXCLUDED.search(name):
                out.append(
                    Candidate(
                        package,
                        unit,
                        name.replace("_", " "),
                        text_license,
                        _origin(path, root),
                        path.stem,
                        lambda p=path: read_gus_patch(p),
                    )
                )
        return out

    return Source(package, gather)


# --- STK raw waves ---------------------------------------------------------------------------

STK_RAW_RATE = 22_050  # STK's rawwaves: headerless 16-bit big-endian mono at 22.05 kHz


def _read_stk_raw(path: Path) -> tuple[np.ndarray, int]:
    return np.frombuffer(path.read_bytes(), ">i2").astype(np.float32) / 32768, STK_RAW_RATE


def stk_raw(
    package: str, files: tuple[str, ...], unit: str, upstream_dir: str, license_aliases: dict[str, str]
) -> Source:
    def gather(root: Path) -> list[Candidate]:
        out = []
        for rel in files:
            path = root / rel
            if path.is_file():
                license = _licence(root, package, f"{upstream_dir}/{path.name}", license_aliases)
                read = functools.partial(_read_stk_raw, path)
                out.append(Candidate(package, unit, path.stem, license, _origin(path, root), path.stem, read))
        return out

    return Source(package, gather)


# --- soundfonts ------------------------------------------------------------------------------


def soundfont_drums(package: str, sf2: str, short_name: str, upstream_path: str) -> Source:
    """Every drum preset (bank 128) of one soundfont, each a unit, on the GM snare-family notes at
    VELOCITIES, rendered through FluidSynth."""

    def gather(root: Path) -> list[Candidate]:
        path = root / sf2
        check_allowed(path=path)
        bank_name, presets = read_sf2_header(path)
        check_allowed(name=bank_name)
        license = _licence(root, package, upstream_path)
        drums = [p for p in presets if p.bank == DRUM_BANK and not NOT_A_DRUM_KIT.search(p.name)]
        hits = [
            Hit(p, note, v)
            for p in drums
            for note in SNARE_NOTES
            for v in VELOCITIES
            if not any(kit.search(p.name) and note == n for kit, n, _ in NOT_SNARE_NOTES)
        ]
        rendered = render_hits(path, hits) if hits else []
        out = []
        for hit, audio in zip(hits, rendered):
            unit = f"{short_name} {hit.preset.program:03d} {hit.preset.name}"
            out.append(
                Candidate(
                    package,
                    unit,
                    f"{hit.note} {SNARE_NOTES[hit.note]}",
                    license,
                    f"{_origin(path, root)} {hit.preset.bank}:{hit.preset.program} note {hit.note}",
                    f"{hit.note}_{SNARE_NOTES[hit.note].replace(' ', '_')}_v{hit.velocity:03d}",
                    lambda a=audio: (a, RENDER_RATE),
                    velocity=hit.velocity,
                    rendered=True,
                )
            )
        return out

    return Source(package, gather, renders=True)


# The order matters: when two hits are near-duplicates, the one offered first is kept. The original
# Hydrogen corpus comes first so that it stays as it was; then recorded samples; then soundfonts.
SOURCES: tuple[Source, ...] = (
    hydrogen_kits("hydrogen-drumkits", "drumkits/{kit}.h2drumkit"),
    hydrogen_kits("hydrogen-drumkits-effects", "drumkits/{kit}.h2drumkit"),
    hydrogen_kits("hydrogen-data", "data/drumkits/{kit}/drumkit.xml"),
    named_files(
        "lmms-common",
        "usr/share/lmms/samples/drums",
        "LMMS drums",
        r"snare|clap|rim|side ?stick",
        "data/samples/drums/{name}",
    ),
    named_files(
        "chuck-data",
        "usr/share/doc/chuck-data/examples/book",
        "ChucK book samples",
        r"snare|clap",
        "examples/book/digital-artists/audio/{name}",
    ),
    named_files(
        "chuck-data",
        "usr/share/doc/chuck-data/examples/data",
        "ChucK example samples",
        r"snare|clap",
        "examples/data/{name}",
    ),
    gus_drum_patches(
        "freepats",
        "usr/share/midi/freepats/Drum_000",
        "FreePats Drum_000",
        tuple(SNARE_NOTES),
        "GPL-2+ with composition exception",
        "GNU General Public License",
    ),
    named_files("exadrums", "usr/share/exadrums", "eXaDrums", r"^snr", "Data/{name}"),
    named_files(
        "scratch",
        "usr/share/scratch/Media/Sounds/Percussion",
        "Scratch percussion",
        r"clap",
        "Media/Sounds/Percussion/{name}",
    ),
    stk_raw(
        "stk",
        ("usr/share/stk/rawwaves/snardrum.raw",),
        "STK rawwaves",
        "rawwaves",
        {"other": "STK licence (MIT-style)"},
    ),
    soundfont_drums(
        "minuet-data",
        "usr/share/minuet/soundfonts/GeneralUser-v1.47.sf2",
        "GeneralUser GS 1.47",
        "data/GeneralUser-v1.47.sf2",
    ),
    soundfont_drums("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2", "TimGM6mb", "TimGM6mb.sf2"),
    soundfont_drums("csound-soundfont", "usr/share/sounds/sf2/sf_GMbank.sf2", "sf_GMbank", "samples/sf_GMbank.sf2"),
    soundfont_drums("denemo-data", "usr/share/sounds/sf2/A320U.sf2", "A320U", "soundfonts/A320U.sf2"),
)
