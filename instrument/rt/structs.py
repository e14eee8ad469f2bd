"""The records C and Python share, declared once, here, as ctypes structures.

`rt/header.py` writes them into `rt/layout.h`, which `mixer.c` includes, together with the
constants below and the event kinds (core/events.py); `tests/test_c_layout.py` fails when
the committed header is stale, and `rt/clib.py` refuses a built library whose field names or
offsets differ from these. Field names are the C names.
"""

from __future__ import annotations

import ctypes

SNARE_SLOTS = 16  # a note pins its slot while it sounds: 16 is 8 notes/s of 2 s snares with knob sweeps between
RECORD_WIDTH = 4  # doubles per ring record: (kind, a, b, spare) for events, (size, byte 0, 1, 2) for MIDI
CYCLE_HIST_BINS = 11  # tenths of the period, then "past its end"
# A cycle that began this many tenths into its period or later started late: if it then finishes
# past the period's end, the machine made it late (its timer, another thread), not our mixing.
LATE_START_TENTHS = 5
FADE_HEADROOM_VOICES = 4  # voices beyond the polyphony cap, for voices fading out after a steal
CLOCK_PPQN = 24  # MIDI clock ticks per quarter note
NO_SLOT = -1

# Note routes (one byte per note number): flags, 0 hands the note to the main process.
ROUTE_MAIN, ROUTE_PLAY, ROUTE_LOOP, ROUTE_IGNORE = 0, 1, 2, 4
ROUTE_OMNI = 16  # in the channel byte: every channel

# The constants the header carries, by their C name.
CONSTANTS = {
    "SNARE_SLOTS": SNARE_SLOTS,
    "RECORD_WIDTH": RECORD_WIDTH,
    "CYCLE_HIST_BINS": CYCLE_HIST_BINS,
    "LATE_START_TENTHS": LATE_START_TENTHS,
    "FADE_HEADROOM_VOICES": FADE_HEADROOM_VOICES,
    "CLOCK_PPQN": CLOCK_PPQN,
    "ROUTE_MAIN": ROUTE_MAIN,
    "ROUTE_PLAY": ROUTE_PLAY,
    "ROUTE_LOOP": ROUTE_LOOP,
    "ROUTE_IGNORE": ROUTE_IGNORE,
    "ROUTE_OMNI": ROUTE_OMNI,
}

_i64, _f64 = ctypes.c_int64, ctypes.c_double


# Fields C reads and writes with acquire/release (`_Atomic int64_t` in the header); Python goes
# through the C library for them (rt/layout.py).
ATOMIC_FIELDS = {("SnareTable", "published"), ("SnareTable", "frames"), ("RingIndex", "head"), ("RingIndex", "tail")}


class SharedStats(ctypes.Structure):
    """The engine's counters: written by whichever cycle runs (C or Python), read by anyone."""

    _fields_ = [
        ("blocks", _i64),
        ("notes", _i64),
        ("stolen", _i64),
        ("loop_hits", _i64),
        ("loop_on", ctypes.c_bool),
        ("transport_running", ctypes.c_bool),  # MIDI transport: stop pauses the clock-following loop
        ("nonfinite_blocks", _i64),
        ("limited_blocks", _i64),
        ("clipped_samples", _i64),
        ("voices", _i64),
        ("last_velocity", _i64),
        ("peak", _f64),
        # Cycles our own work made late: on JACK, finished past the period's end though it began
        # in time (before LATE_START_TENTHS); on PortAudio, an underflow.
        ("own_xruns", _i64),
        ("late_starts", _i64),  # the machine's: JACK cycles that finished late because they began late
        ("skipped_cycles", _i64),  # the machine's: JACK cycles that never reached us (the server's clock jumped)
        ("callback_errors", _i64),
        ("ready_pid", _i64),  # set by an audio process once it plays; 0 before
        ("memory_locked", _i64),  # 1: its pages are locked in memory (no page faults on the cycle)
        ("realtime", _i64),  # 1: the server runs real-time, 0: it does not, -1: not known
        ("mixer", _i64),  # 1: the C cycle (mixer.c) runs, 0: engine.py does
        # Where in its period each JACK cycle began and finished (C cycle): tenths, then past its end.
        ("cycle_start_hist", _i64 * CYCLE_HIST_BINS),
        ("cycle_end_hist", _i64 * CYCLE_HIST_BINS),
    ]


class EngineSettings(ctypes.Structure):
    """The engine's computed constants, in samples and linear gains (rt/engine.py `engine_settings`
    computes them from the config's units). Engine, the C cycle and the audio process take this one value."""

    _fields_ = [
        ("sample_rate", _i64),
        ("max_block", _i64),
        ("polyphony", _i64),
        ("choke", _i64),  # 1: a new hit or a note-off fades every voice; 0: one-shot
        ("steal_fade", _i64),  # frames
        ("panic_fade", _i64),  # frames
        ("loop_velocity", _i64),
        ("clock_timeout", _i64),  # frames without a clock tick before the loop runs on its own tempo
        ("ceiling", _f64),
        ("master_gain", _f64),
        ("release_coef", _f64),  # the limiter's release, per frame
        ("frames_per_step", _f64),  # the loop's own tempo
        ("ticks_per_step", _i64),
        ("velocity_gain", _f64 * 128),
        ("layer_of_velocity", _i64 * 128),  # the velocity layer a note plays, in a kit that has them (core/kit.py)
    ]


class SnareTable(ctypes.Structure):
    _fields_ = [
        ("published", _i64),  # the slot the next hit plays; written last, with release
        ("playing", _i64),
        ("frames", _i64),  # the cycle's frame count; written after `last_started`, with release
        # Each slot holds a kit (core/kit.py): layers x variants hits, each `length` frames, one
        # every `stride` frames from the slot's start.
        ("length", _i64 * SNARE_SLOTS),
        ("layers", _i64 * SNARE_SLOTS),
        ("variants", _i64 * SNARE_SLOTS),
        ("stride", _i64 * SNARE_SLOTS),
        ("last_started", _i64 * SNARE_SLOTS),
    ]


class NoteRoutes(ctypes.Structure):
    _fields_ = [("note", ctypes.c_uint8 * 128), ("channel", ctypes.c_uint8)]


class RingIndex(ctypes.Structure):
    _fields_ = [("head", _i64), ("tail", _i64), ("dropped", _i64)]


class Layout(ctypes.Structure):
    """Where each part of the shared memory is mapped in this process (the C cycle's view of it)."""

    _fields_ = [
        ("stats", ctypes.POINTER(SharedStats)),
        ("snares", ctypes.POINTER(SnareTable)),
        ("routes", ctypes.POINTER(NoteRoutes)),
        ("events_index", ctypes.POINTER(RingIndex)),
        ("events", ctypes.POINTER(_f64)),
        ("midi_index", ctypes.POINTER(RingIndex)),
        ("midi", ctypes.POINTER(_f64)),
        ("ring_records", _i64),
        ("slots", ctypes.POINTER(ctypes.c_float)),
        ("slot_frames", _i64),
    ]


SHARED_STRUCTS = (SharedStats, EngineSettings, SnareTable, NoteRoutes, RingIndex, Layout)


def c_name(struct: type) -> str:
    """SharedStats -> shared_stats: the C typedef of a structure."""
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in struct.__name__).lstrip("_")


def fields(struct: type) -> list[tuple[str, int]]:
    """(name, byte offset) of each field."""
    return [(name, getattr(struct, name).offset) for name, *_ in struct._fields_]
