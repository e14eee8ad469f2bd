"""The memory the main process and the audio process share: one mapped file, laid out once.

The audio process (play/audioproc.py) runs the audio cycle with an interpreter of its own, so
no thread of the main process can hold the GIL it needs. What crosses between them lives here,
and nothing here has a lock:

- `stats`: the engine's counters (EngineStats' fields, same names), written by the audio
  process, read by anyone; they outlive an audio process that crashes (the loop stays on);
- `snares`: `SNARE_SLOTS` finished snares. The main process writes a free slot, then
  `published` last; the audio process swaps its engine's reference at the start of a cycle
  and answers with `playing`. A slot is free when it is neither, and no voice started from
  it can still sound (`last_started` + its length, in frames);
- `routes`: what the audio process does with each note it reads in the cycle (midi.py
  writes it whenever the assignments change);
- two single-producer, single-consumer rings of fixed records: engine events from the main
  process, and the MIDI messages the audio process does not play itself, back to the main
  process's router.

Each index is one aligned 64-bit store; a record is written before the index that makes it
visible. That ordering holds on x86-64 (stores are not reordered with stores) and is what the
rings rely on.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import tempfile
from pathlib import Path

import numpy as np

SNARE_SLOTS = 16  # a note pins its slot while it sounds: 16 is 8 notes/s of 2 s snares with knob sweeps between
MAX_SNARE_S = 4.0  # longer snares are cut here (any real snare's tail is far below -60 dB by then)
RING_RECORDS = 65536  # per ring: a 1000/s flood for a minute without a reader before anything is dropped
RECORD_WIDTH = 4
NO_SLOT = -1
CYCLE_HIST_BINS = 11

# Note routes (one byte per note number): flags, 0 hands the note to the main process.
ROUTE_MAIN, ROUTE_PLAY, ROUTE_LOOP = 0, 1, 2
ROUTE_OMNI = 16  # in the channel byte: every channel


class SharedStats(ctypes.Structure):
    """EngineStats' fields (engine.py), plus what the audio process's JACK client counts."""

    _fields_ = [
        ("blocks", ctypes.c_int64),
        ("notes", ctypes.c_int64),
        ("stolen", ctypes.c_int64),
        ("loop_hits", ctypes.c_int64),
        ("loop_on", ctypes.c_bool),
        ("transport_running", ctypes.c_bool),
        ("nonfinite_blocks", ctypes.c_int64),
        ("limited_blocks", ctypes.c_int64),
        ("clipped_samples", ctypes.c_int64),
        ("voices", ctypes.c_int64),
        ("last_velocity", ctypes.c_int64),
        ("peak", ctypes.c_double),
        # the audio process's own:
        ("own_xruns", ctypes.c_int64),  # our xruns as the cycle sees them (audioproc.py: late or skipped)
        ("callback_errors", ctypes.c_int64),
        ("ready_pid", ctypes.c_int64),  # set by an audio process once it plays; 0 before
        ("memory_locked", ctypes.c_int64),  # 1: its pages are locked in memory (no page faults on the cycle)
        ("realtime", ctypes.c_int64),  # 1: the server runs real-time, 0: it does not, -1: not known yet
        ("mixer", ctypes.c_int64),  # 1: the C mixer (mixer.c) runs the cycle, 0: engine.py does
        # Where in its period each JACK cycle began and finished (C mixer): tenths, then past its end.
        ("cycle_start_hist", ctypes.c_int64 * CYCLE_HIST_BINS),
        ("cycle_end_hist", ctypes.c_int64 * CYCLE_HIST_BINS),
    ]


class SnareTable(ctypes.Structure):
    _fields_ = [
        ("published", ctypes.c_int64),
        ("playing", ctypes.c_int64),
        ("frames", ctypes.c_int64),
        ("length", ctypes.c_int64 * SNARE_SLOTS),
        ("last_started", ctypes.c_int64 * SNARE_SLOTS),
    ]


class Routes(ctypes.Structure):
    _fields_ = [("note", ctypes.c_uint8 * 128), ("channel", ctypes.c_uint8)]


class RingIndex(ctypes.Structure):
    _fields_ = [("head", ctypes.c_int64), ("tail", ctypes.c_int64), ("dropped", ctypes.c_int64)]


class Ring:
    """Fixed records of RECORD_WIDTH floats; one producer writes `head`, one consumer `tail`."""

    def __init__(self, index: RingIndex, records: np.ndarray):
        self.index, self.records = index, records
        self.capacity = records.shape[0]

    def push(self, a: float, b: float = 0.0, c: float = 0.0, d: float = 0.0) -> bool:
        head = self.index.head
        if head - self.index.tail >= self.capacity:
            self.index.dropped += 1
            return False
        row = self.records[head % self.capacity]
        row[0], row[1], row[2], row[3] = a, b, c, d
        self.index.head = head + 1  # last: the record is complete before the consumer can see it
        return True

    def pop(self) -> np.ndarray | None:
        """The oldest record (a view, valid until the next push wraps onto it), or None."""
        tail = self.index.tail
        if tail == self.index.head:
            return None
        row = self.records[tail % self.capacity]
        self.index.tail = tail + 1
        return row

    def clear(self) -> None:
        """Consumer side, or the producer while no consumer runs (an audio process that died)."""
        self.index.tail = self.index.head


class SharedAudio:
    """The mapped layout. `create()` in the main process; `attach(fd)` in the audio process."""

    def __init__(self, buffer: mmap.mmap, fd: int, sample_rate: int):
        self.buffer, self.fd, self.sample_rate = buffer, fd, sample_rate
        offset = 0

        def take(ctype):
            nonlocal offset
            value = ctype.from_buffer(buffer, offset)
            offset += (ctypes.sizeof(ctype) + 63) // 64 * 64
            return value

        def take_array(dtype, shape):
            nonlocal offset
            array = np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
            offset += (array.nbytes + 63) // 64 * 64
            return array

        self.stats = take(SharedStats)
        self.snares = take(SnareTable)
        self.routes = take(Routes)
        self.events = Ring(take(RingIndex), take_array(np.float64, (RING_RECORDS, RECORD_WIDTH)))
        self.midi = Ring(take(RingIndex), take_array(np.float64, (RING_RECORDS, RECORD_WIDTH)))
        self.slot_frames = int(MAX_SNARE_S * sample_rate)
        self.slots = take_array(np.float32, (SNARE_SLOTS, self.slot_frames))
        self.size = offset

    @classmethod
    def layout_size(cls, sample_rate: int) -> int:
        probe = SharedAudio(mmap.mmap(-1, 1 << 30), -1, sample_rate)  # anonymous, never touched: sizes only
        size = probe.size
        probe.release()
        return size

    @classmethod
    def create(cls, sample_rate: int) -> SharedAudio:
        """A fresh layout in an unlinked file (so nothing is left behind if this process dies); its
        descriptor is inherited by each audio process."""
        folder = "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir()
        fd, path = tempfile.mkstemp(prefix="latent-snare-", dir=folder)
        os.unlink(path)
        size = cls.layout_size(sample_rate)
        os.ftruncate(fd, size)
        shared = cls(mmap.mmap(fd, size), fd, sample_rate)
        shared.snares.published = shared.snares.playing = NO_SLOT
        for k in range(SNARE_SLOTS):
            shared.snares.last_started[k] = -(1 << 62)
        shared.stats.transport_running = True
        shared.stats.realtime = -1
        return shared

    @classmethod
    def attach(cls, fd: int, sample_rate: int) -> SharedAudio:
        return cls(mmap.mmap(fd, cls.layout_size(sample_rate)), fd, sample_rate)

    def release(self) -> None:
        """Drop every view, then the mapping (an exported buffer cannot be unmapped)."""
        self.stats = self.snares = self.routes = self.events = self.midi = self.slots = None
        self.buffer.close()
