"""The engine as the main process sees it: the cycle runs elsewhere (rt/), behind shared memory.

`EngineLink` has the engine's interface for other threads (`post`, `publish`, `stats`,
`sample_rate`, `max_block`), so the decode worker, the MIDI router and the service talk to
it as to an `Engine`. Underneath, events go into the shared event ring, finished snares into
a free shared slot, and `stats` is the cycle's counters in shared memory (rt/layout.py). It
outlives any one audio process: a restarted one finds the same settings, snare, loop state
and note routes.
"""

from __future__ import annotations

import os
import threading
import time

from ..core.events import Tempo, to_record
from ..core.kit import as_kit
from ..rt.engine import engine_settings
from ..rt.layout import SharedAudio, load_acquire, store_release
from ..rt.structs import SNARE_SLOTS, EngineSettings

PLAYING_WAIT_S = 0.1  # how long a publish waits for the audio process to take the previous snare
SLOT_WAIT_S = 2.0  # how long a publish waits for a slot whose voices are still sounding


def settings_for(config, sample_rate: int, block_size: int) -> EngineSettings:
    """The engine's settings for `config` (its audio, voices and loop sections) at the output's rate."""
    a, v, lp = config.audio, config.voices, config.loop
    return engine_settings(
        sample_rate,
        max_block=max(block_size, 4096),
        polyphony=v.polyphony,
        mode=v.mode,
        steal_fade_ms=v.steal_fade_ms,
        velocity_range_db=v.velocity_range_db,
        gain_db=a.gain_db,
        ceiling_db=a.ceiling_db,
        limiter_release_ms=a.limiter_release_ms,
        loop_bpm=lp.bpm,
        loop_steps_per_beat=lp.steps_per_beat,
        loop_velocity=lp.velocity,
    )


class EngineLink:
    def __init__(self, settings: EngineSettings):
        """`settings` travel in the shared memory: the cycle builds its engine from them."""
        self.sample_rate, self.max_block = settings.sample_rate, settings.max_block
        self.shared = SharedAudio.create(settings)
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
            self.shared.events.push(*to_record(event))

    def publish(self, kit) -> None:
        """Make `kit` (layers, variants, n: core/kit.py) what the next hit plays (the decode
        worker's thread), or one snare (n,). Waits for the audio process to take the previous one
        (at most a period), so the slot written here is one it cannot be swapping to."""
        kit = as_kit(kit)
        table = self.shared.snares
        deadline = time.monotonic() + PLAYING_WAIT_S
        while table.playing != table.published and time.monotonic() < deadline:
            time.sleep(0.0005)
        slot = self._free_snare_slot()
        layers, variants, n = kit.shape
        n = min(n, self.shared.slot_frames // (layers * variants))
        self.shared.slots[slot, : layers * variants * n].reshape(layers, variants, n)[:] = kit[:, :, :n]
        table.length[slot] = table.stride[slot] = n
        table.layers[slot], table.variants[slot] = layers, variants
        store_release(table, "published", slot)  # last: the cycle swaps to it at its next start

    def _free_snare_slot(self) -> int:
        """The slot whose last note started longest ago; waits (bounded) until that note has ended."""
        table = self.shared.snares
        busy = (table.published, table.playing)
        slot = min((k for k in range(SNARE_SLOTS) if k not in busy), key=lambda k: table.last_started[k])
        deadline = time.monotonic() + SLOT_WAIT_S
        while (
            load_acquire(table, "frames") - table.last_started[slot] <= table.length[slot] + self.max_block
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

    def close(self) -> None:
        """Unmap the shared memory; only once no cycle can run on it any more."""
        self.stats = None
        self.shared.release()
        os.close(self.shared.fd)
