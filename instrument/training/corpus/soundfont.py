"""Soundfont drum presets rendered through a real synthesizer: the FluidSynth command-line program.

Why a synth and not the raw samples: a soundfont hit is a sample *plus* its
zone's envelope, filter, tuning and velocity response; cutting the samples out
would lose all of that (and loop points mean a raw sample is not the sound).

One FluidSynth run renders every (preset, note, velocity) hit of a soundfont:
a MIDI file written with mido plays them one per slot on the drum channel,
each held for HIT_SECONDS, then silenced (all-sound-off) before the next
slot. Reverb and chorus are off, and the output is 32-bit float so that
nothing clips. Reproducible on any Debian machine with
`apt-get install --no-install-recommends fluidsynth` (its recommended
fluid-soundfont-gm is never read here).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from ...errors import UserError
from .debian import check_allowed

RENDER_RATE = 44_100
DRUM_BANK = 128
DRUM_CHANNEL = 9  # MIDI channel 10
HIT_SECONDS = 2.0  # each hit is held and kept this long: the full decay of any snare (the loader cuts)
LEAD_SECONDS = 0.05  # silence before each hit inside its slot
SLOT_SECONDS = 2.5  # hit + lead + a gap in which the all-sound-off lands
SYNTH_GAIN = 0.5

# General MIDI percussion notes of the snare family (25, "snare roll" in GS kits, is not a one-shot).
SNARE_NOTES = {37: "Side Stick", 38: "Acoustic Snare", 39: "Hand Clap", 40: "Electric Snare"}


@dataclass(frozen=True)
class Preset:
    bank: int
    program: int
    name: str


@dataclass(frozen=True)
class Hit:
    preset: Preset
    note: int
    velocity: int


def read_sf2_header(path: Path) -> tuple[str, list[Preset]]:
    """(bank name from INFO/INAM, presets from pdta/phdr) of an SF2 file, without loading its samples."""
    data = Path(path).read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"sfbk":
        raise UserError(f"{path}: not an SF2 soundfont")
    name, presets = "", []
    for list_type, body in _chunks(data, 12, len(data), want_list=True):
        if list_type == b"INFO":
            for cid, sub in _chunks(body, 0, len(body)):
                if cid == b"INAM":
                    name = sub.split(b"\0")[0].decode("latin-1").strip()
        elif list_type == b"pdta":
            for cid, sub in _chunks(body, 0, len(body)):
                if cid == b"phdr":
                    for i in range(len(sub) // 38 - 1):  # the last record is the terminal "EOP"
                        rec = sub[38 * i : 38 * (i + 1)]
                        program, bank = struct.unpack("<HH", rec[20:24])
                        presets.append(Preset(bank, program, rec[:20].split(b"\0")[0].decode("latin-1").strip()))
    return name, sorted(presets, key=lambda p: (p.bank, p.program))


def _chunks(data: bytes, start: int, end: int, want_list: bool = False):
    pos = start
    while pos + 8 <= end:
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if want_list:
            if cid == b"LIST":
                yield data[pos + 8 : pos + 12], data[pos + 12 : pos + 8 + size]
        else:
            yield cid, data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)


def require_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise UserError(
            "rendering the soundfont drum kits needs FluidSynth: apt-get install --no-install-recommends fluidsynth"
        )
    return exe


def hits_midi(hits: list[Hit]) -> mido.MidiFile:
    """One hit per slot on the drum channel: program change, note on, note off + all-sound-off.
    FluidSynth's drum channel plays bank 128, so only drum-bank presets are rendered."""
    if any(hit.preset.bank != DRUM_BANK for hit in hits):
        raise ValueError(f"only bank {DRUM_BANK} presets play on the drum channel")
    ticks_per_second = 960  # 480 ticks per beat at the default 120 bpm
    midi = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    midi.tracks.append(track)
    events = []  # (absolute tick, order, message)
    for i, hit in enumerate(hits):
        start = i * SLOT_SECONDS + LEAD_SECONDS
        on, off = round(start * ticks_per_second), round((start + HIT_SECONDS) * ticks_per_second)
        events += [
            (on, 1, mido.Message("program_change", channel=DRUM_CHANNEL, program=hit.preset.program)),
            (on, 2, mido.Message("note_on", channel=DRUM_CHANNEL, note=hit.note, velocity=hit.velocity)),
            (off, 0, mido.Message("note_off", channel=DRUM_CHANNEL, note=hit.note, velocity=0)),
            (off, 1, mido.Message("control_change", channel=DRUM_CHANNEL, control=120, value=0)),
        ]
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=round(len(hits) * SLOT_SECONDS * ticks_per_second) - now))
    return midi


def render_hits(sf2: Path, hits: list[Hit], sample_rate: int = RENDER_RATE) -> list[np.ndarray]:
    """Mono float32 audio of every hit (LEAD_SECONDS of silence, then HIT_SECONDS), in order."""
    check_allowed(path=sf2)
    exe = require_fluidsynth()
    with tempfile.TemporaryDirectory() as tmp:
        midi_path, wav_path = Path(tmp) / "hits.mid", Path(tmp) / "hits.wav"
        hits_midi(hits).save(midi_path)
        command = [
            exe,
            "-n",
            "-i",
            "-q",
            "-g",
            str(SYNTH_GAIN),
            "-r",
            str(sample_rate),
            "-o",
            "synth.reverb.active=0",
            "-o",
            "synth.chorus.active=0",
            "-o",
            "audio.file.type=wav",
            "-o",
            "audio.file.format=float",
            "-F",
            str(wav_path),
            str(sf2),
            str(midi_path),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 or not wav_path.is_file():
            raise UserError(f"fluidsynth failed on {sf2.name}: {(result.stderr.strip() or 'no output')[-300:]}")
        audio, rate = sf.read(wav_path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    slot, keep = round(SLOT_SECONDS * rate), round((LEAD_SECONDS + HIT_SECONDS) * rate)
    mono = np.pad(mono, (0, max(0, len(hits) * slot - mono.size)))
    return [mono[i * slot : i * slot + keep].copy() for i in range(len(hits))]
