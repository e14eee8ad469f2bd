"""The engine as the main process sees it when the engine runs in the audio process.

`EngineLink` has the engine's interface for other threads (`post`, `publish`, `stats`,
`sample_rate`, `max_block`), so the decode worker, the MIDI router and the service talk to
it as to an `Engine`. Underneath, events go into the shared event ring, finished snares into
a free shared slot, and `stats` is the audio process's counters in shared memory
(play/shared.py). It outlives any one audio process: a restarted one finds the same snare,
loop state and note routes.
"""

from __future__ import annotations

import threading
import time

from .events import Tempo, encode
from .shared import SNARE_SLOTS, SharedAudio

PLAYING_WAIT_S = 0.1  # how long a publish waits for the audio process to take the previous snare
SLOT_WAIT_S = 2.0  # how long a publish waits for a slot whose voices are still sounding


class EngineLink:
    def __init__(self, sample_rate: int, max_block: int, **settings):
        """`settings`: Engine's keyword arguments, which the audio process builds its engine with."""
        self.sample_rate, self.max_block = sample_rate, max_block
        self.settings = dict(settings, max_block=max_block)
        self.shared = SharedAudio.create(sample_rate)
        self.stats = self.shared.stats
        # The event ring has one producer: this process's threads take turns to write a record.
        # Held for one record only, and never seen by the audio process.
        self._post_lock = threading.Lock()
        self._tempo: Tempo | None = None  # the loop's own tempo, posted again to a restarted audio process
        self.audio_starts = 0

    def post(self, event) -> None:
        """Queue a typed event (events.py) for the audio process's next cycle."""
        if type(event) is Tempo:
            self._tempo = event
        with self._post_lock:
            self.shared.events.push(*encode(event))

    def publish(self, sample) -> None:
        """Make `sample` the snare the next hit plays (the decode worker's thread). Waits for the
        audio process to take the previous one (at most a period), so the slot written here is
        one it cannot be swapping to."""
        table = self.shared.snares
        deadline = time.monotonic() + PLAYING_WAIT_S
        while table.playing != table.published and time.monotonic() < deadline:
            time.sleep(0.0005)
        slot = self._free_slot()
        n = min(sample.shape[0], self.shared.slot_frames)
        self.shared.slots[slot, :n] = sample[:n]
        table.length[slot] = n
        table.published = slot  # last: the audio process swaps to it at its next cycle

    def _free_slot(self) -> int:
        """The slot whose last note started longest ago; waits (bounded) until that note has ended."""
        table = self.shared.snares
        busy = (table.published, table.playing)
        slot = min((k for k in range(SNARE_SLOTS) if k not in busy), key=lambda k: table.last_started[k])
        deadline = time.monotonic() + SLOT_WAIT_S
        while (
            table.frames - table.last_started[slot] <= table.length[slot] + self.max_block
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)
        return slot

    def audio_starting(self) -> None:
        """Called before each audio process starts. A restarted one begins clean: events queued
        for the one that died are dropped (a hit from then would come late), the tempo is re-sent."""
        if self.audio_starts:
            with self._post_lock:
                self.shared.events.clear()
            if self._tempo is not None:
                self.post(self._tempo)
        self.audio_starts += 1
