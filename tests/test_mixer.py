"""The C cycle (rt/mixer.c) and the Python fallback cycle (rt/cycle.py) against engine.py, the
readable reference: the same cycles, the same events and MIDI, the same shared layout; the output
must agree sample for sample."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instrument.core.events import (
    ALL_NOTES_OFF,
    ALL_SOUND_OFF,
    CONTINUE,
    LOOP_TOGGLE,
    START,
    STOP,
    Clock,
    Loop,
    NoteOff,
    NoteOn,
    Tempo,
)
from instrument.host.link import EngineLink
from instrument.rt import cmixer
from instrument.rt.clib import available
from instrument.rt.cycle import SharedCycle, render_period
from instrument.rt.engine import Engine, engine_settings
from instrument.rt.routing import route_in_cycle
from instrument.rt.structs import ROUTE_LOOP, ROUTE_OMNI, ROUTE_PLAY

RATE = 48000
TRIGGER, LOOP_NOTE = 38, 40

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def snare(seed: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wave = rng.standard_normal(frames) * np.exp(-np.arange(frames) / (frames / 6))
    return (wave / np.abs(wave).max() * 0.5).astype(np.float32)


def kit(seed: int, layers: int, variants: int, frames: int) -> np.ndarray:
    """(layers, variants, frames): a distinct snare for every hit."""
    hits = [snare(100 * seed + k, frames) for k in range(layers * variants)]
    return np.stack(hits).reshape(layers, variants, frames)


class Pair:
    """engine.py (the reference), the C cycle, and the Python cycle that runs where C was not
    built (rt/cycle.py's SharedCycle on engine.py), fed the same: events through each one's
    shared ring (as the main process posts them) and raw MIDI read in the cycle (as JACK hands
    it over). `clock_timeout` (frames) overrides the settings' so short runs reach it."""

    def __init__(self, channels=2, clock_timeout=None, **units):
        units.setdefault("max_block", 64)
        settings = engine_settings(RATE, **units)
        if clock_timeout is not None:
            settings.clock_timeout = clock_timeout
        self.reference = Engine(settings)
        self.link = EngineLink(settings)  # the C cycle's
        self.fallback_link = EngineLink(settings)  # the Python cycle's
        for link in (self.link, self.fallback_link):
            os.close(link.shared.fd)  # the mapping stays; no audio process will inherit the descriptor
            routes = link.shared.routes
            routes.note[TRIGGER], routes.note[LOOP_NOTE], routes.channel = ROUTE_PLAY, ROUTE_LOOP, ROUTE_OMNI
        self.mixer = cmixer.CMixer(settings, self.link.shared)
        self.fallback = SharedCycle(self.fallback_link.shared, None)
        self.channels = channels
        self.pending_midi: list[tuple[bytes, int]] = []

    def publish(self, sample):
        self.reference.publish(sample)
        self.link.publish(sample)
        self.fallback_link.publish(sample)

    def post(self, event):
        self.reference.post(event)
        self.link.post(event)
        self.fallback_link.post(event)

    def midi(self, data: bytes, offset: int):
        self.pending_midi.append((data, offset))

    def cycle(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(the reference's, C's) output; the Python cycle's is kept in `self.fallback_out`."""
        for data, offset in self.pending_midi:
            route_in_cycle(data, offset, self.link.shared.routes, self.reference.post)
        ours = np.zeros((frames, self.channels), dtype=np.float32)
        self.mixer.cycle(ours, self.pending_midi)
        fallback = np.zeros((frames, self.channels), dtype=np.float32)
        self.fallback.begin()
        self.fallback.take_midi((offset, data) for data, offset in self.pending_midi)
        self.fallback.mix(fallback.T, frames)
        self.fallback.end(frames)
        self.fallback_out = fallback
        self.pending_midi = []
        expected = np.zeros((self.channels, frames), dtype=np.float32)
        render_period(self.reference, expected, frames)
        return expected.T, ours

    def close(self):
        self.mixer.close()
        self.fallback.close()


def drain(ring) -> list[tuple[float, ...]]:
    records = []
    while (record := ring.pop()) is not None:
        records.append(tuple(record))
    return records


@pytest.fixture
def pairs():
    """Makes Pairs for one test and frees their C state after it."""
    made = []

    def make(**settings) -> Pair:
        made.append(Pair(**settings))
        return made[-1]

    yield make
    for pair in made:
        pair.close()


EVENTS = st.one_of(
    st.builds(NoteOn, st.integers(0, 130), st.integers(0, 300)),
    st.builds(NoteOff, st.integers(0, 64)),
    st.sampled_from([ALL_SOUND_OFF, ALL_NOTES_OFF, START, CONTINUE, STOP, LOOP_TOGGLE, Loop(True), Loop(False)]),
    st.builds(Tempo, st.floats(40, 300), st.integers(1, 8)),
    st.builds(Clock, st.integers(0, 64)),
)
MIDI = st.tuples(
    st.one_of(
        st.builds(
            lambda s, n, v: bytes([s, n, v]),
            st.sampled_from([0x80, 0x90, 0x99, 0xB0]),
            st.sampled_from([TRIGGER, LOOP_NOTE, 60]),
            st.integers(0, 127),
        ),
        st.sampled_from([b"\xf8", b"\xfa", b"\xfb", b"\xfc", b"\xfe", b"\xf0\x7e\x7f\xf7", b"\xc0\x05"]),
    ),
    st.integers(0, 255),
)
CYCLES = st.lists(
    st.tuples(
        st.sampled_from([16, 64, 100, 128, 256]),
        st.lists(EVENTS, max_size=4),
        st.lists(MIDI, max_size=3),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(
    cycles=CYCLES,
    polyphony=st.integers(1, 4),
    mode=st.sampled_from(["oneshot", "choke"]),
    gain_db=st.sampled_from([0.0, 12.0]),
)
def test_the_c_mixer_and_the_python_fallback_play_what_the_python_engine_plays_sample_for_sample(
    cycles, polyphony, mode, gain_db
):
    pair = Pair(polyphony=polyphony, mode=mode, gain_db=gain_db, loop_bpm=480.0, clock_timeout=1000)
    # One snare, then kits of velocity layers and round robins (core/kit.py) of several shapes.
    shapes = ((1, 1, 900), (3, 2, 2000), (1, 4, 300), (3, 4, 1500))
    snares = [kit(seed, *shape) for seed, shape in enumerate(shapes)]
    try:
        pair.publish(snares[0])
        for frames, events, midi, snare_index in cycles:
            if snare_index:
                pair.publish(snares[snare_index])
            for event in events:
                pair.post(event)
            for data, offset in midi:
                pair.midi(data, offset % frames)
            expected, ours = pair.cycle(frames)
            np.testing.assert_array_equal(ours, expected)
            np.testing.assert_array_equal(pair.fallback_out, ours)
        for name in (
            "notes",
            "stolen",
            "loop_hits",
            "loop_on",
            "transport_running",
            "limited_blocks",
            "clipped_samples",
            "voices",
            "last_velocity",
            "peak",
        ):
            assert getattr(pair.link.stats, name) == getattr(pair.reference.stats, name), name
            assert getattr(pair.fallback_link.stats, name) == getattr(pair.link.stats, name), name
        assert drain(pair.fallback_link.shared.midi) == drain(pair.link.shared.midi)  # the MIDI handed back
    finally:
        pair.close()


def test_the_comparison_can_fail(pairs):
    """A mixer fed one note more than the reference: the comparison above would catch it."""
    pair = pairs()
    pair.publish(snare(0, 2000))
    pair.link.post(NoteOn(100))
    expected, ours = pair.cycle(128)
    assert not np.array_equal(ours, expected)


def test_a_non_finite_snare_becomes_silence_and_is_counted(pairs):
    pair = pairs()
    bad = snare(0, 2000)
    bad[10] = np.nan
    pair.publish(bad)
    pair.post(NoteOn(127))
    expected, ours = pair.cycle(64)
    assert not np.any(ours) and not np.any(expected)
    assert pair.link.stats.nonfinite_blocks == pair.reference.stats.nonfinite_blocks == 1


def test_a_record_of_no_known_kind_silences_its_cycle_counts_once_and_nothing_after_it_is_lost(pairs):
    pair = pairs(channels=1)
    pair.publish(np.full(4000, 0.25, dtype=np.float32))
    pair.link.post(NoteOn(127))
    _, before = pair.cycle(64)
    pair.link.shared.events.push(99.0)
    pair.link.post(NoteOn(127))  # after the bad record in the ring: waits for the next cycle
    pair.midi(bytes([0x90, TRIGGER, 127]), 10)  # read in the silent cycle: plays in the next
    _, failed = pair.cycle(64)
    _, after = pair.cycle(64)
    assert np.all(before[1:] > 0) and not np.any(failed)
    assert pair.link.stats.callback_errors == 1 and pair.link.stats.notes == 3
    assert np.all(after[10:] > after[:10].max()) and np.all(after[:10] > before[-1])  # 3 voices from frame 10, 2 before


def test_midi_the_cycle_does_not_play_goes_to_the_main_process_whole_and_sysex_goes_nowhere(pairs):
    pair = pairs()
    pair.midi(b"\xb0\x10\x40", 5)
    pair.midi(b"\xc0\x03", 6)
    pair.midi(b"\xf0\x7e\x7f\x06\x01\xf7", 7)
    pair.midi(b"\x90\x3c\x64", 8)  # a note with no route
    pair.cycle(64)
    ring = pair.link.shared.midi
    records = [tuple(int(x) for x in ring.pop()) for _ in range(3)]
    assert records == [(3, 0xB0, 0x10, 0x40), (2, 0xC0, 0x03, 0), (3, 0x90, 0x3C, 0x64)]
    assert ring.pop() is None


def test_a_note_read_in_the_cycle_starts_at_its_frame(pairs):
    pair = pairs(channels=1)
    pair.publish(np.full(4000, 0.25, dtype=np.float32))
    pair.midi(bytes([0x90, TRIGGER, 127]), 37)
    _, ours = pair.cycle(128)
    assert np.flatnonzero(ours[:, 0])[0] == 37


def test_a_published_length_past_its_slot_plays_only_the_slot(pairs):
    """The main process writes each slot's length; a wrong one must not make the cycle read past the slot."""
    pair = pairs(channels=1, max_block=4096)
    frames = pair.link.shared.slot_frames
    pair.publish(np.full(frames, 0.25, dtype=np.float32))
    table = pair.link.shared.snares
    table.length[table.published] = 10**9
    pair.post(NoteOn(127))
    for _ in range(frames // 4096 + 2):
        expected, ours = pair.cycle(4096)
        np.testing.assert_array_equal(ours, expected)
    assert pair.link.stats.voices == pair.reference.stats.voices == 0


def test_the_loop_runs_on_its_own_tempo_once_the_clock_stops_in_every_cycle(pairs):
    """The clock-timeout branch: clock ticks drive the loop, then none come for longer than the
    timeout, and each cycle goes back to the loop's own tempo at the same frame."""
    pair = pairs(channels=1, clock_timeout=2000, loop_bpm=240.0)
    pair.publish(snare(1, 600))
    pair.post(Loop(True))
    for _ in range(12):  # clock ticks, one per cycle: the loop follows them
        pair.midi(b"\xf8", 3)
        expected, ours = pair.cycle(128)
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(pair.fallback_out, ours)
    following = pair.reference.stats.loop_hits
    own_tempo_from = None
    for k in range(60):  # no tick for 60 x 128 frames > 2000: past the timeout
        expected, ours = pair.cycle(128)
        np.testing.assert_array_equal(ours, expected)
        np.testing.assert_array_equal(pair.fallback_out, ours)
        if own_tempo_from is None and pair.reference.stats.loop_hits > following:
            own_tempo_from = k
    # The last tick's cycle counts too: the timeout runs out in the cycle that passes 2000 frames since it.
    assert own_tempo_from is not None and 2000 <= (own_tempo_from + 2) * 128 < 2000 + 128, own_tempo_from
    assert pair.link.stats.loop_hits == pair.fallback_link.stats.loop_hits == pair.reference.stats.loop_hits
