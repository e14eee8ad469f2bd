"""The audio engine: voices, mixer and safety stage. Owned by the audio thread.

Ownership (one owner per piece of state):
- Other threads talk to the engine only through `post()` of a typed event
  (events.py; a deque append, atomic in CPython) and by publishing a finished snare with
  `publish(sample)` (a reference swap).
- `render()` runs on the audio thread. It drains the event queue, owns the
  voices, and mixes into preallocated buffers. It never allocates a buffer,
  does I/O, logs, locks or calls torch.
- A voice keeps the sample it started with; knob moves affect the next hit.

The safety stage runs on every block: a NaN/Inf guard (the block becomes
silence and a counter goes up), then a peak limiter that ramps its gain down
to the block's peak (the block is computed before it is played, so this is
lookahead for free) and releases slowly, then a hard clip at the ceiling as
the guarantee. Nothing louder than the ceiling ever leaves.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..core.dsp import db_to_gain, velocity_to_gain
from ..core.events import AllNotesOff, AllSoundOff, Clock, Continue, Loop, NoteOff, NoteOn, Start, Stop, Tempo
from ..core.kit import as_kit, layer_of_velocity
from .structs import CLOCK_PPQN, FADE_HEADROOM_VOICES, EngineSettings, SharedStats

ALL_SOUND_OFF_FADE_MS = 3.0
CLOCK_TIMEOUT_S = 0.5  # no tick for this long: the DAW stopped sending clock, the loop runs on its own tempo


def engine_settings(
    sample_rate: int,
    max_block: int,
    polyphony: int = 16,
    mode: str = "oneshot",
    steal_fade_ms: float = 5.0,
    velocity_range_db: float = 30.0,
    gain_db: float = 0.0,
    ceiling_db: float = -1.0,
    limiter_release_ms: float = 80.0,
    loop_bpm: float = 120.0,
    loop_steps_per_beat: int = 4,
    loop_velocity: int = 100,
) -> EngineSettings:
    """The engine's constants in frames and linear gains, computed once from the config's units."""
    settings = EngineSettings(
        sample_rate=sample_rate,
        max_block=max_block,
        polyphony=polyphony,
        choke=int(mode == "choke"),
        steal_fade=max(1, int(steal_fade_ms * 1e-3 * sample_rate)),
        panic_fade=max(1, int(ALL_SOUND_OFF_FADE_MS * 1e-3 * sample_rate)),
        loop_velocity=loop_velocity,
        clock_timeout=int(CLOCK_TIMEOUT_S * sample_rate),
        ceiling=db_to_gain(ceiling_db),
        master_gain=db_to_gain(gain_db),
        release_coef=float(np.exp(-1.0 / max(1.0, limiter_release_ms * 1e-3 * sample_rate))),
    )
    set_tempo(settings, loop_bpm, loop_steps_per_beat)
    settings.velocity_gain[:] = [0.0] + [velocity_to_gain(v, velocity_range_db) for v in range(1, 128)]
    settings.layer_of_velocity[:] = layer_of_velocity()
    return settings


def set_tempo(settings: EngineSettings, bpm: float, steps_per_beat: int) -> None:
    """The loop's own tempo, in `settings` (what a Tempo event changes)."""
    settings.frames_per_step = settings.sample_rate * 60.0 / (bpm * steps_per_beat)
    settings.ticks_per_step = max(1, CLOCK_PPQN // steps_per_beat)


class Engine:
    def __init__(self, settings: EngineSettings, stats: SharedStats | None = None):
        """`settings`: engine_settings(), copied (a Tempo event changes the copy). `stats`: where
        the counters live; the audio process passes the shared memory's."""
        self.settings = EngineSettings.from_buffer_copy(settings)
        self.sample_rate = settings.sample_rate
        self.max_block = settings.max_block
        self.polyphony = settings.polyphony
        self.choke = bool(settings.choke)
        self.steal_fade = settings.steal_fade
        self.panic_fade = settings.panic_fade
        self.ceiling = settings.ceiling
        self.master_gain = settings.master_gain
        self.release_coef = settings.release_coef
        max_block = self.max_block
        # Velocity -> gain and velocity layer, precomputed so the audio thread only indexes.
        self.velocity_gain = np.array(settings.velocity_gain[:])
        self.layer_of_velocity = list(settings.layer_of_velocity[:])

        self.events: deque = deque()
        self.current: np.ndarray | None = None  # the playable kit (layers, variants, n); replaced whole by publish()
        self._hits: list = []  # its hits, layer by layer, so a note picks one by index
        self._round_robin = 0  # notes played: the next one takes the next variant
        self.stats = SharedStats(transport_running=True) if stats is None else stats

        # Voice state, preallocated: parallel lists indexed by voice. Voices beyond the polyphony
        # cap hold voices fading out after a steal or choke, so a steal never cuts a voice.
        self._voices = self.polyphony + FADE_HEADROOM_VOICES
        self._sample: list = [None] * self._voices
        self._pos = [0] * self._voices
        self._gain = [0.0] * self._voices
        self._fade_left = [0] * self._voices  # samples of fade still to play; 0: not fading
        self._fade_len = [1] * self._voices
        self._age = [0] * self._voices  # note counter at start, for stealing the oldest
        self._active = [False] * self._voices
        # Mixing buffers.
        self._mix = np.zeros(max_block)
        self._tmp = np.zeros(max_block)
        self._ramp = np.zeros(max_block)
        self._index = np.arange(max_block, dtype=np.float64)
        self._limiter_gain = 1.0
        # Loop (audition) state: its own tempo, or MIDI clock ticks when a DAW sends them.
        self.loop_velocity = settings.loop_velocity  # on/off is stats.loop_on, written only here
        self._frames_to_step = 0.0  # own tempo: frames until the next hit
        self._clock_tick = 0  # ticks since the DAW's start, when following clock
        self._frames_since_clock = None  # None: no clock heard yet
        # Event type -> handler, bound once here so dispatching on the audio thread creates nothing.
        self._handlers = {
            NoteOn: self._on_note_on,
            NoteOff: self._on_note_off,
            Clock: self._on_clock,
            Start: self._on_start,
            Continue: self._on_continue,
            Stop: self._on_stop,
            Loop: self._on_loop,
            Tempo: self._on_tempo,
            AllSoundOff: self._on_all_sound_off,
            AllNotesOff: self._on_all_notes_off,
        }

    # --- called from other threads --------------------------------------------------------

    def post(self, event) -> None:
        """Queue a typed event (events.py) for the next block."""
        self.events.append(event)

    def publish(self, kit: np.ndarray) -> None:
        """Make `kit` (layers, variants, n) float32, finite, at the engine rate (core/kit.py), or
        one snare (n,), what the next hit plays. Its hits are listed here, off the note path."""
        kit = as_kit(kit)
        self._hits = [kit[layer, variant] for layer in range(kit.shape[0]) for variant in range(kit.shape[1])]
        self.current = kit

    # --- audio thread -----------------------------------------------------------------------

    def render(self, frames: int) -> np.ndarray:
        """Mix the next `frames` samples; returns a view into a preallocated buffer (valid until the next call)."""
        mix = self._mix[:frames]
        mix[:] = 0.0
        while self.events:
            self._handle(self.events.popleft())
        self._run_loop(frames)
        voices = 0
        for v in range(self._voices):
            if self._active[v]:
                self._mix_voice(v, mix, frames)
                voices += 1
        self.stats.voices = voices
        self.stats.blocks += 1
        return self._safety(mix, frames)

    def _handle(self, event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:  # anything else is not an event: ignored, never raised on this thread
            handler(event)

    def _on_note_on(self, event: NoteOn) -> None:
        self._note_on(event.velocity, event.offset)

    def _on_note_off(self, _event: NoteOff) -> None:
        if self.choke:  # in one-shot mode the hit rings out
            self._fade_all(self.steal_fade)

    def _on_clock(self, event: Clock) -> None:
        self._frames_since_clock = 0
        if self.stats.loop_on and self.stats.transport_running and self._clock_tick % self.settings.ticks_per_step == 0:
            self._loop_hit(event.offset)
        self._clock_tick += 1

    def _on_start(self, _event: Start) -> None:
        self._clock_tick = 0  # the next tick is the downbeat
        self.stats.transport_running = True

    def _on_continue(self, _event: Continue) -> None:
        self.stats.transport_running = True

    def _on_stop(self, _event: Stop) -> None:
        self.stats.transport_running = False

    def _on_loop(self, event: Loop) -> None:
        on = (not self.stats.loop_on) if event.on is None else event.on
        if on and not self.stats.loop_on:
            self._frames_to_step = 0.0  # own tempo: the first hit comes at once
        self.stats.loop_on = on

    def _on_tempo(self, event: Tempo) -> None:
        set_tempo(self.settings, event.bpm, event.steps_per_beat)

    def _on_all_sound_off(self, _event: AllSoundOff) -> None:
        self._fade_all(self.panic_fade)

    def _on_all_notes_off(self, _event: AllNotesOff) -> None:
        self._fade_all(self.steal_fade)

    def _run_loop(self, frames: int) -> None:
        if self._frames_since_clock is not None:
            self._frames_since_clock += frames
            if self._frames_since_clock < self.settings.clock_timeout:
                return  # following the DAW's clock: hits come from CLOCK events
            self._frames_since_clock = None
        if not self.stats.loop_on:
            return
        while self._frames_to_step < frames:
            self._loop_hit(int(self._frames_to_step))
            self._frames_to_step += self.settings.frames_per_step
        self._frames_to_step -= frames

    def _loop_hit(self, offset: int) -> None:
        self._note_on(self.loop_velocity, offset)
        self.stats.loop_hits += 1

    def _note_on(self, velocity: int, offset: int = 0) -> None:
        kit = self.current
        if kit is None or velocity <= 0:
            return
        layers, variants = kit.shape[0], kit.shape[1]
        layer = min(self.layer_of_velocity[min(velocity, 127)], layers - 1) if layers > 1 else 0
        sample = self._hits[layer * variants + self._round_robin % variants]
        self._round_robin += 1
        if self.choke:
            self._fade_all(self.steal_fade)
        elif self._sounding() >= self.polyphony:
            self._start_fade(self._oldest_sounding(), self.steal_fade)  # steal with a fade, never a cut
            self.stats.stolen += 1
        v = self._free_voice()
        self.stats.notes += 1
        self.stats.last_velocity = velocity
        self._sample[v] = sample
        self._pos[v] = -offset  # negative: starts `offset` frames into the coming block
        self._gain[v] = self.velocity_gain[min(velocity, 127)]
        self._fade_left[v] = 0
        self._age[v] = self.stats.notes
        self._active[v] = True

    def _sounding(self) -> int:
        """Active voices that are not fading out: what the polyphony cap counts."""
        return sum(1 for v in range(self._voices) if self._active[v] and not self._fade_left[v])

    def _oldest_sounding(self) -> int:
        best, best_age = 0, None
        for v in range(self._voices):
            if self._active[v] and not self._fade_left[v] and (best_age is None or self._age[v] < best_age):
                best, best_age = v, self._age[v]
        return best

    def _free_voice(self) -> int:
        for v in range(self._voices):
            if not self._active[v]:
                return v
        # Every voice is busy (a burst of hits within one block): reuse the fading voice nearest its end.
        fading = [v for v in range(self._voices) if self._fade_left[v]]
        return min(fading, key=lambda v: self._fade_left[v]) if fading else self._oldest_sounding()

    def _start_fade(self, v: int, fade: int) -> None:
        if self._active[v] and (self._fade_left[v] == 0 or self._fade_left[v] > fade):
            self._fade_left[v] = fade
            self._fade_len[v] = fade

    def _fade_all(self, fade: int) -> None:
        for v in range(self._voices):
            self._start_fade(v, fade)

    def _mix_voice(self, v: int, mix: np.ndarray, frames: int) -> None:
        sample = self._sample[v]
        pos = int(self._pos[v])
        if pos < 0:  # a loop hit that starts `-pos` frames into this block
            if -pos >= frames:
                self._pos[v] = pos + frames
                return
            self._pos[v] = 0
            self._mix_voice(v, mix[-pos:], frames + pos)
            return
        n = min(frames, sample.shape[0] - pos)
        tmp = self._tmp[:n]
        np.multiply(sample[pos : pos + n], self._gain[v], out=tmp)
        fade_left = int(self._fade_left[v])
        if fade_left:
            # Linear ramp from the current fade level towards zero over the rest of the fade.
            n = min(n, fade_left)
            tmp = tmp[:n]
            ramp = self._ramp[:n]
            np.multiply(self._index[:n], -1.0 / self._fade_len[v], out=ramp)
            ramp += fade_left / self._fade_len[v]
            np.maximum(ramp, 0.0, out=ramp)
            tmp *= ramp
            self._fade_left[v] = fade_left - n
            if fade_left - n <= 0:
                self._release(v)
        mix[:n] += tmp
        self._pos[v] = pos + n
        if pos + n >= sample.shape[0]:
            self._release(v)

    def _release(self, v: int) -> None:
        # The sample reference stays until the voice is reused: in the cycle it is a view of a shared
        # slot (rt/layout.py), and dropping a reference must never free a large buffer on this thread.
        self._active[v] = False
        self._fade_left[v] = 0

    def _safety(self, mix: np.ndarray, frames: int) -> np.ndarray:
        if frames == 0:
            return mix
        mix *= self.master_gain
        magnitude = self._tmp[:frames]
        np.abs(mix, out=magnitude)
        peak_at = int(np.argmax(magnitude))
        peak = float(magnitude[peak_at])
        if not np.isfinite(peak):  # NaN/Inf anywhere (argmax finds NaN first): silence the block
            mix[:] = 0.0
            self.stats.nonfinite_blocks += 1
            peak = 0.0
        g0 = self._limiter_gain
        needed = self.ceiling / peak if peak > self.ceiling else 1.0
        if needed < g0:
            g1, ramp_end = needed, max(1, peak_at)  # reach `needed` exactly at the peak sample
            self.stats.limited_blocks += 1
        else:
            g1, ramp_end = min(needed, 1.0 - (1.0 - g0) * self.release_coef**frames), frames  # release
        if g0 != 1.0 or g1 != 1.0:
            ramp = self._ramp[:frames]
            np.multiply(self._index[:frames], 1.0 / ramp_end, out=ramp)
            np.minimum(ramp, 1.0, out=ramp)
            ramp *= g1 - g0
            ramp += g0
            mix *= ramp
        self._limiter_gain = g1
        np.abs(mix, out=magnitude)
        out_peak = float(magnitude.max())
        if out_peak > self.ceiling:  # the guarantee: what the ramp could not catch is clipped at the ceiling
            self.stats.clipped_samples += int(np.count_nonzero(magnitude > self.ceiling))
            np.clip(mix, -self.ceiling, self.ceiling, out=mix)
            out_peak = self.ceiling
        if out_peak > self.stats.peak:
            self.stats.peak = out_peak
        return mix
