"""The memory the main process and the audio process share: one mapped file, laid out once.

The audio process (rt/child.py) runs the audio cycle with an interpreter of its own, so no
thread of the main process can hold the GIL it needs. What crosses between them lives here
(the records themselves are declared in rt/structs.py), and nothing here has a lock:

- `settings`: the engine's computed constants, written by the main process before an audio
  process starts (the audio process builds its cycle from them);
- `stats`: the engine's counters, written by the cycle, read by anyone; they outlive an audio
  process that crashes (the loop stays on);
- `snares`: `SNARE_SLOTS` finished snares. The main process writes a free slot, then
  `published` last (a release store); the cycle swaps its engine's reference at the start of a
  cycle and answers with `playing`. A slot is free when it is neither, and no voice started
  from it can still sound (`last_started` + its length, in frames);
- `routes`: what the cycle does with each note it reads (host/midi.py writes them whenever
  the assignments change);
- two single-producer, single-consumer rings of fixed records: engine events from the main
  process, and the MIDI messages the cycle does not play itself, back to the main process's
  router. Push and pop go through the C library (release/acquire, so the order holds on arm64
  too); where it was not built, plain stores keep x86-64's order only.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import tempfile
from pathlib import Path

import numpy as np

from .clib import load
from .structs import NO_SLOT, RECORD_WIDTH, SNARE_SLOTS, EngineSettings, NoteRoutes, RingIndex, SharedStats, SnareTable

# A slot holds a whole kit (core/kit.py): 3 velocity layers x 4 round robins of snares up to
# 1.5 s (the envelope family renders 1.49 s), 18 s of audio; a longer kit is cut to fit.
MAX_KIT_S = 18.0
RING_RECORDS = 65536  # per ring: a 1000/s flood for a minute without a reader before anything is dropped
_f64_ptr = ctypes.POINTER(ctypes.c_double)


def _c_library():
    lib = load()
    return None if isinstance(lib, str) else lib


def store_release(field_owner, name: str, value: int) -> None:
    """`field_owner.name = value` as a release store: what was written before is seen first."""
    lib = _c_library()
    if lib is None:
        setattr(field_owner, name, value)
    else:
        lib.lsn_store_release(ctypes.addressof(field_owner) + getattr(type(field_owner), name).offset, value)


def load_acquire(field_owner, name: str) -> int:
    lib = _c_library()
    if lib is None:
        return getattr(field_owner, name)
    return lib.lsn_load_acquire(ctypes.addressof(field_owner) + getattr(type(field_owner), name).offset)


class Ring:
    """Fixed records of RECORD_WIDTH floats; one producer writes `head`, one consumer `tail`."""

    def __init__(self, index: RingIndex, records: np.ndarray):
        self.index, self.records = index, records
        self.capacity = records.shape[0]
        self._lib = _c_library()
        self._records = records.ctypes.data_as(_f64_ptr)
        self._out = np.zeros(RECORD_WIDTH)  # the popped record, for the consumer
        self._out_ptr = self._out.ctypes.data_as(_f64_ptr)

    def push(self, a: float, b: float = 0.0, c: float = 0.0, d: float = 0.0) -> bool:
        if self._lib is not None:
            return self._lib.lsn_ring_push(self.index, self._records, self.capacity, a, b, c, d)
        head = self.index.head
        if head - self.index.tail >= self.capacity:
            self.index.dropped += 1
            return False
        row = self.records[head % self.capacity]
        row[0], row[1], row[2], row[3] = a, b, c, d
        self.index.head = head + 1  # last: the record is complete before the consumer can see it
        return True

    def pop(self) -> np.ndarray | None:
        """A copy of the oldest record (valid until the next pop), or None."""
        if self._lib is not None:
            return (
                self._out if self._lib.lsn_ring_pop(self.index, self._records, self.capacity, self._out_ptr) else None
            )
        tail = self.index.tail
        if tail == self.index.head:
            return None
        self._out[:] = self.records[tail % self.capacity]
        self.index.tail = tail + 1
        return self._out

    def clear(self) -> None:
        """Consumer side, or the producer while no consumer runs (an audio process that died)."""
        store_release(self.index, "tail", self.index.head)


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

        self.settings = take(EngineSettings)  # first: attach reads the sample rate from it
        self.stats = take(SharedStats)
        self.snares = take(SnareTable)
        self.routes = take(NoteRoutes)
        self.events = Ring(take(RingIndex), take_array(np.float64, (RING_RECORDS, RECORD_WIDTH)))
        self.midi = Ring(take(RingIndex), take_array(np.float64, (RING_RECORDS, RECORD_WIDTH)))
        self.slot_frames = int(MAX_KIT_S * sample_rate)
        self.slots = take_array(np.float32, (SNARE_SLOTS, self.slot_frames))
        self.size = offset

    @classmethod
    def layout_size(cls, sample_rate: int) -> int:
        probe = SharedAudio(mmap.mmap(-1, 1 << 30), -1, sample_rate)  # anonymous, never touched: sizes only
        size = probe.size
        probe.release()
        return size

    @classmethod
    def create(cls, settings: EngineSettings) -> SharedAudio:
        """A fresh layout for an engine with `settings`, in an unlinked file (so nothing is left
        behind if this process dies); its descriptor is inherited by each audio process."""
        folder = "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir()
        fd, path = tempfile.mkstemp(prefix="latent-snare-", dir=folder)
        os.unlink(path)
        size = cls.layout_size(settings.sample_rate)
        os.ftruncate(fd, size)
        shared = cls(mmap.mmap(fd, size), fd, settings.sample_rate)
        ctypes.pointer(shared.settings)[0] = settings
        shared.snares.published = shared.snares.playing = NO_SLOT
        for k in range(SNARE_SLOTS):
            shared.snares.last_started[k] = -(1 << 62)
        shared.stats.transport_running = True
        shared.stats.realtime = -1
        return shared

    @classmethod
    def attach(cls, fd: int) -> SharedAudio:
        """The layout a main process created, mapped again (in the audio process)."""
        with mmap.mmap(fd, ctypes.sizeof(EngineSettings)) as head:
            sample_rate = EngineSettings.from_buffer_copy(head).sample_rate
        return cls(mmap.mmap(fd, cls.layout_size(sample_rate)), fd, sample_rate)

    def kit(self, slot: int) -> np.ndarray:
        """(layers, variants, length) view of the kit in `slot`, its shape clamped to the slot
        whatever the producer wrote (the cycle's swap: a view, no copy)."""
        table = self.snares
        layers = min(max(1, int(table.layers[slot])), self.slot_frames)
        variants = min(max(1, int(table.variants[slot])), self.slot_frames // layers)
        stride = min(max(1, int(table.stride[slot])), self.slot_frames // (layers * variants))
        length = min(max(0, int(table.length[slot])), stride)
        flat = self.slots[slot, : layers * variants * stride]
        return flat.reshape(layers, variants, stride)[:, :, :length]

    def release(self) -> None:
        """Drop every view, then the mapping (an exported buffer cannot be unmapped)."""
        self.settings = self.stats = self.snares = self.routes = self.events = self.midi = self.slots = None
        self.buffer.close()
