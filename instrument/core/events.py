"""Engine events: small typed values that other threads `post()` to the engine, as python-rtmixer
hands typed actions to its real-time thread.

Each kind is a frozen, slotted dataclass with named fields; the engine dispatches on its type.
Events without fields are module-level singletons (`ALL_SOUND_OFF`, `START`, ...), so posting
one allocates nothing; the others are objects of one or two slots.

`offset` is the frame in the coming block where the event takes effect; only the audio thread
itself, posting just before it renders (the JACK backend's MIDI), knows a meaningful one.
"""

from __future__ import annotations

from dataclasses import dataclass

_event = dataclass(frozen=True, slots=True)


@_event
class NoteOn:
    velocity: int  # 1..127
    offset: int = 0


@_event
class NoteOff:
    """Fades every voice in choke mode; a one-shot hit rings out."""

    offset: int = 0


@_event
class AllSoundOff:
    """Panic: every voice fades out within ALL_SOUND_OFF_FADE_MS."""


@_event
class AllNotesOff:
    """Every voice fades out as if stolen."""


@_event
class Loop:
    on: bool | None  # None toggles


@_event
class Tempo:
    """The loop's own tempo (used while no MIDI clock arrives)."""

    bpm: float
    steps_per_beat: int


@_event
class Clock:
    """One MIDI clock tick (24 per quarter note)."""

    offset: int = 0


@_event
class Start:
    """MIDI transport start: the next tick is the downbeat."""


@_event
class Continue:
    """MIDI transport continue: the loop resumes on the clock."""


@_event
class Stop:
    """MIDI transport stop: the clock-following loop pauses."""


ALL_SOUND_OFF, ALL_NOTES_OFF = AllSoundOff(), AllNotesOff()
START, CONTINUE, STOP = Start(), Continue(), Stop()
LOOP_TOGGLE = Loop(None)


# --- across processes: an event as one ring record (kind, a, b; rt/layout.py) ----------------------

# The kind number is the index here; the C cycle gets the same numbers from rt/layout.h, which
# rt/header.py generates from this tuple.
KINDS = (NoteOn, NoteOff, AllSoundOff, AllNotesOff, Loop, Tempo, Clock, Start, Continue, Stop)
_KIND_OF = {kind: number for number, kind in enumerate(KINDS)}
_SINGLETONS = {AllSoundOff: ALL_SOUND_OFF, AllNotesOff: ALL_NOTES_OFF, Start: START, Continue: CONTINUE, Stop: STOP}
_LOOP_CODE = {None: -1.0, False: 0.0, True: 1.0}


def to_record(event) -> tuple[float, float, float]:
    """(kind, a, b) for a ring record; the kind is the event class's index in KINDS."""
    kind = type(event)
    if kind is NoteOn:
        return 0.0, float(event.velocity), float(event.offset)
    if kind is Loop:
        return float(_KIND_OF[Loop]), _LOOP_CODE[event.on], 0.0
    if kind is Tempo:
        return float(_KIND_OF[Tempo]), float(event.bpm), float(event.steps_per_beat)
    return float(_KIND_OF[kind]), float(getattr(event, "offset", 0)), 0.0


def from_record(kind: float, a: float, b: float):
    """The event a record holds; a kind out of range raises (the audio callback counts it)."""
    cls = KINDS[int(kind)]
    if cls is NoteOn:
        return NoteOn(int(a), int(b))
    if cls is Loop:
        return LOOP_TOGGLE if a < 0 else Loop(a > 0)
    if cls is Tempo:
        return Tempo(a, int(b))
    if cls is NoteOff or cls is Clock:
        return cls(int(a))
    return _SINGLETONS[cls]
