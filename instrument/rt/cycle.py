"""The audio cycles, one per host, on the shared layout: the C cycle where the library was built,
engine.py's where it was not (the fallback; tests/test_cycle.py compares the two sample by sample).

Each keeps the callback contract (rt/__init__.py). On JACK with C, JACK's real-time thread calls
mixer.c directly and never enters the interpreter; on PortAudio, sounddevice's callback makes
one call into it.
"""

from __future__ import annotations

import os

import numpy as np

from ..core.events import from_record
from .cmixer import CMixer
from .engine import Engine
from .layout import SharedAudio, load_acquire, store_release
from .routing import route_in_cycle
from .structs import LATE_START_TENTHS

WAKE_SERVER_GONE, WAKE_STOP = b"x", b"s"  # why a cycle's owner woke (its self-pipe)


def render_period(engine: Engine, channels, frames: int) -> None:
    """Fill `frames` samples of each array in `channels` (one per output channel) from the engine.
    A host period may be longer than the engine's largest block: render it in pieces."""
    done = 0
    while done < frames:
        n = min(frames - done, engine.max_block)
        block = engine.render(n)
        for out in channels:
            out[done : done + n] = block
        done += n


class SharedCycle:
    """What every host's cycle does with the shared memory: the snare swap, the event ring, mixing
    into the host's buffers, and the frame count that pins a playing slot. `mixer` (a CMixer) runs
    it in C; None runs `engine` (engine.py, built from the same shared settings)."""

    def __init__(self, shared: SharedAudio, mixer: CMixer | None):
        self.shared = shared
        self.engine = Engine(shared.settings, stats=shared.stats)
        self.stats, self.table = shared.stats, shared.snares
        self.use_mixer(mixer)
        self.playing = -1
        self.frames = int(self.table.frames)  # a restarted process continues the frame count its slots refer to
        self.wake_r, self.wake_w = os.pipe()

    def use_mixer(self, mixer: CMixer | None) -> None:
        """The C cycle runs (a CMixer), or engine.py does (None); status --json says which."""
        self.mixer = mixer
        self.stats.mixer = int(mixer is not None)

    def begin(self) -> None:
        """At the cycle's start: the reference swap to a newly published snare, then the events."""
        table = self.table
        published = load_acquire(table, "published")
        if published != self.playing and published >= 0:
            self.engine.publish(self.shared.kit(published))
            self.playing = table.playing = published
        events, engine = self.shared.events, self.engine
        while (record := events.pop()) is not None:
            engine.post(from_record(record[0], record[1], record[2]))

    def take_midi(self, midi) -> None:
        """The MIDI read in this cycle, (frame offset, bytes) pairs: played at its frame where the
        routes say so, else handed back to the main process's router through the MIDI ring."""
        for offset, data in midi:
            if 0 < len(data) <= 3:  # SysEx is never copied on this thread
                data = bytes(data)
                if not route_in_cycle(data, offset, self.shared.routes, self.engine.post):
                    n = len(data)
                    self.shared.midi.push(n, data[0], data[1] if n > 1 else 0, data[2] if n > 2 else 0)

    def mix(self, channels, frames: int) -> None:
        started = self.stats.notes
        render_period(self.engine, channels, frames)
        if self.stats.notes != started:  # a note took this slot's snare: it stays pinned while that note sounds
            self.table.last_started[self.playing] = self.frames

    def end(self, frames: int) -> None:
        self.frames += frames
        store_release(self.table, "frames", self.frames)  # after last_started: the link reads them in that order

    def close(self) -> None:
        os.close(self.wake_r)
        os.close(self.wake_w)
        if self.mixer is not None:
            self.mixer.close()


class JackCycle(SharedCycle):
    """JACK's process callback: MIDI read in the cycle it arrives in, every output port filled.
    `client` is a JACK-Client client with `midi_in` and `outs` registered; with a mixer, JACK's
    thread calls the C cycle directly (attached by the caller) and `process` never runs."""

    def __init__(self, client, midi_in, outs, shared: SharedAudio, mixer: CMixer | None):
        super().__init__(shared, mixer)
        self.client, self.midi_in, self.outs = client, midi_in, outs
        self.next_frame_time = -1  # where the next cycle starts on the server's clock, if none is missed

    def process(self, frames: int) -> None:
        stats = self.stats
        started = self.client.frames_since_cycle_start
        try:
            self.begin()
            self.take_midi(self.midi_in.incoming_midi_events())
            self.mix([port.get_array() for port in self.outs], frames)
        except Exception:
            for port in self.outs:
                port.get_array().fill(0)
            stats.callback_errors += 1
        self.end(frames)
        # Late past the period's end: ours when the cycle began in time, the machine's when it began
        # late. A cycle that never ran here (the server skipped us, or changed its period: its
        # clock jumped) is the machine's too. mixer.c splits them the same way.
        now = self.client.last_frame_time
        if self.client.frames_since_cycle_start > frames:
            if started * 10 < frames * LATE_START_TENTHS:
                stats.own_xruns += 1
            else:
                stats.late_starts += 1
        if self.next_frame_time >= 0 and now != self.next_frame_time:
            stats.skipped_cycles += 1
        self.next_frame_time = now + frames


class PortAudioCycle(SharedCycle):
    """sounddevice's stream callback: a note posted from rtmidi's thread sounds one block later."""

    def callback(self, outdata: np.ndarray, frames: int, _time_info, status) -> None:
        try:
            if status.output_underflow:
                self.stats.own_xruns += 1
            if self.mixer is not None:
                self.mixer.cycle(outdata)  # the snare swap, the events, mixing, and the frame count
            else:
                self.begin()
                self.mix(outdata.T, frames)  # outdata.T: one view per channel, written in place
        except Exception:
            outdata.fill(0)
            self.stats.callback_errors += 1
        if self.mixer is None:
            self.end(frames)
