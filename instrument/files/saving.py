"""Saved snares: 24-bit WAVs (or FLAC, Ogg) that carry where they came from, and the history that lists them.

A saved file's name says model and knob position (`0007-env-x074-y051.wav`);
its WAV comment holds JSON with the model, the exact latent point and the CC
values, so any saved sound can be recalled. `history.json` in the same folder
lists every save, numbered; a corrupted history is set aside and started
afresh, never crashed on and never silently overwritten.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from threadpoolctl import ThreadpoolController

from ..core.dsp import db_to_gain, finish_snare, velocity_to_gain
from ..errors import UserError

log = logging.getLogger(__name__)

HISTORY_NAME = "history.json"
MAX_HISTORY_BYTES = 16 << 20  # about 100 000 saves; anything bigger is not ours
SUBTYPE = "PCM_24"


@dataclass(frozen=True)
class Saved:
    number: int
    file: str  # name inside the save folder
    model: str
    latent: tuple[float, float]
    cc: tuple[int, int]
    time: str


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def render_snare(
    model, latent, velocity: int = 127, velocity_range_db: float = 30.0, ceiling_db: float = -1.0, variant: int = 0
) -> np.ndarray:
    """The snare at `latent` as the instrument plays it, at the model rate, never above the ceiling:
    `velocity` sets its timbre (where the model learned one) and its level, `variant` its round
    robin. Decoded on one BLAS thread, as the instrument decodes: BLAS splits a product
    differently over more threads, which changes the last bits of the sums, and `render`, `serve`
    and saves must give the same bytes for the same point."""
    with _blas().limit(limits=1):
        wave = finish_snare(model.decode(latent, velocity, variant), model.sample_rate, model.sample_rate)
    wave = wave * velocity_to_gain(velocity, velocity_range_db)
    ceiling, peak = db_to_gain(ceiling_db), float(np.max(np.abs(wave)))
    return wave * (ceiling / peak) if peak > ceiling else wave  # a file is never hotter than the live output


# What `render` and saves write: the suffix picks the container. Metadata is set before the audio
# because FLAC and Ogg write their comment block first (libsndfile refuses strings after samples).
WRITE_FORMATS = {".wav": ("WAV", SUBTYPE), ".flac": ("FLAC", SUBTYPE), ".ogg": ("OGG", "VORBIS")}


def write_format(path: Path) -> tuple[str, str]:
    """(format, subtype) for `path`'s suffix, or UserError naming what is allowed."""
    suffix = Path(path).suffix.lower()
    if suffix not in WRITE_FORMATS:
        what = f"{suffix} files" if suffix else "a name without an extension"
        raise UserError(f"{path}: cannot write {what}; use .wav (24-bit), .flac (24-bit) or .ogg (Vorbis)")
    return WRITE_FORMATS[suffix]


def write_snare(path: Path, wave: np.ndarray, sample_rate: int, model, latent) -> dict:
    """Write the snare as WAV, FLAC or Ogg (by suffix) with a comment holding the JSON that recalls it;
    returns that JSON as a dict. The folder must exist: a typo in a path never becomes a new folder."""
    fmt, subtype = write_format(path)
    return write_snare_to(str(path), wave, sample_rate, model, latent, fmt, subtype)


def write_snare_to(
    file, wave: np.ndarray, sample_rate: int, model, latent, fmt: str = "WAV", subtype: str = SUBTYPE
) -> dict:
    """`write_snare` into a path or a binary file object (the web app answers with these bytes)."""
    cc = list(model.knobs.latent_to_cc_int(latent))
    meta = {"model": model.name, "latent": [float(latent[0]), float(latent[1])], "cc": cc}
    with sf.SoundFile(file, "w", sample_rate, 1, subtype, format=fmt) as f:
        f.title = f"Latent Snare {model.name} x{cc[0]:03d} y{cc[1]:03d}"
        f.comment = json.dumps(meta)
        f.software = "latent-snare"
        f.write(wave)
    return meta


def read_snare_metadata(path: Path) -> dict:
    with sf.SoundFile(str(path)) as f:
        return json.loads(f.copy_metadata().get("comment", "{}"))


class History:
    """`history.json` in the save folder. Only the thread that saves writes it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / HISTORY_NAME
        self.entries: list[Saved] = self._load()

    def _load(self) -> list[Saved]:
        if not self.path.exists():
            return []
        try:
            if not self.path.is_file() or self.path.stat().st_size > MAX_HISTORY_BYTES:
                raise ValueError("not a history file")
            raw = json.loads(self.path.read_text())
            return [
                Saved(
                    int(e["number"]),
                    str(e["file"]),
                    str(e["model"]),
                    tuple(map(float, e["latent"])),
                    tuple(map(int, e["cc"])),
                    str(e["time"]),
                )
                for e in raw
            ]
        except (OSError, ValueError, KeyError, TypeError) as err:
            aside = self.path.with_name(f"history.corrupt-{time.strftime('%Y%m%d-%H%M%S')}.json")
            try:
                os.replace(self.path, aside)
                log.warning("%s was unreadable (%s); kept as %s, starting a new history", self.path, err, aside.name)
            except OSError:
                log.warning("%s was unreadable (%s); starting a new history", self.path, err)
            return []

    def next_number(self) -> int:
        return max((e.number for e in self.entries), default=0) + 1

    def add(self, entry: Saved) -> None:
        self.entries.append(entry)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(e) for e in self.entries], indent=1))
        os.replace(tmp, self.path)  # atomic: a crash mid-write leaves the previous history

    def get(self, number: int) -> Saved:
        for e in self.entries:
            if e.number == number:
                return e
        known = f"1..{self.entries[-1].number}" if self.entries else "none yet"
        raise UserError(f"{self.path}: no saved snare number {number} (saved: {known})")


def save_snare(folder: Path, model, latent, ceiling_db: float = -1.0) -> Saved:
    """Render the snare at `latent`, write it into `folder` and add it to the history there.
    Raises UserError naming the folder when it cannot be written (read-only, disk full)."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        history = History(folder)
        number = history.next_number()
        cc = model.knobs.latent_to_cc_int(latent)
        name = f"{number:04d}-{model.name}-x{cc[0]:03d}-y{cc[1]:03d}.wav"
        try:
            meta = write_snare(
                folder / name, render_snare(model, latent, ceiling_db=ceiling_db), model.sample_rate, model, latent
            )
        except BaseException:
            (folder / name).unlink(missing_ok=True)  # no half-written file left behind (disk full)
            raise
        entry = Saved(
            number, name, model.name, tuple(meta["latent"]), tuple(meta["cc"]), time.strftime("%Y-%m-%d %H:%M:%S")
        )
        history.add(entry)
    except (OSError, sf.LibsndfileError) as err:
        raise UserError(f"{folder}: cannot save there: {getattr(err, 'strerror', None) or err}") from err
    return entry
