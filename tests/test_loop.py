"""The loop (audition) in the engine, rendered offline: its own tempo, and MIDI clock with transport."""

import numpy as np

from instrument.core.events import LOOP_TOGGLE, START, STOP, Clock, Loop, Tempo
from instrument.rt.engine import Engine, engine_settings

RATE, BLOCK = 48000, 128
CLICK = np.full(16, 0.25, dtype=np.float32)  # a short block: each hit's onset is exact in the output


def make(**kw):
    engine = Engine(
        engine_settings(RATE, BLOCK, polyphony=64, loop_bpm=120.0, loop_steps_per_beat=4, loop_velocity=127, **kw)
    )
    engine.publish(CLICK)
    return engine


def onsets(out):
    loud = np.abs(out) > 1e-3
    return np.flatnonzero(loud & ~np.concatenate(([False], loud[:-1]))).tolist()


def render(engine, blocks, between=None):
    out = []
    for i in range(blocks):
        if between:
            between(i)
        out.append(engine.render(BLOCK).copy())
    return np.concatenate(out)


def test_own_tempo_hits_land_on_exact_sample_positions():
    engine = make()
    engine.post(Loop(True))
    out = render(engine, RATE // BLOCK)  # one second
    step = RATE * 60 // (120 * 4)  # 6000 frames between sixteenths at 120 bpm
    assert onsets(out) == list(range(0, RATE - BLOCK, step))
    assert engine.stats.loop_hits == 8


def test_toggle_and_tempo_change():
    engine = make()
    engine.post(LOOP_TOGGLE)  # on
    engine.post(Tempo(60.0, 1))  # 60 bpm quarter notes: one hit a second
    out = render(engine, 2 * RATE // BLOCK)
    assert onsets(out) == [0, RATE]
    engine.post(LOOP_TOGGLE)  # off
    assert onsets(render(engine, RATE // BLOCK)) == []


def test_clock_drives_the_loop_on_its_beat_positions_and_transport_stops_it():
    engine = make()
    engine.post(Loop(True))
    engine.post(START)
    ticks_at = {}  # block index -> tick number; a tick every 4 blocks (a fast 234 bpm clock)

    def tick(i):
        if i % 4 == 0 and len(ticks_at) < 48:
            ticks_at[i] = len(ticks_at)
            engine.post(Clock())

    out = render(engine, 48 * 4, tick)
    # Sixteenths: every 6th tick from the downbeat, each at the start of the block its tick arrived in.
    expected = [block * BLOCK for block, n in ticks_at.items() if n % 6 == 0]
    assert onsets(out) == expected and len(expected) == 8
    engine.post(STOP)
    quiet = render(engine, 24, lambda i: engine.post(Clock()))
    assert onsets(quiet) == [], "transport stopped: clock ticks must not play"


def test_without_clock_for_half_a_second_the_loop_falls_back_to_its_own_tempo():
    engine = make()
    engine.post(Loop(True))
    engine.post(Clock())  # a single tick, then the DAW stops sending clock
    out = render(engine, RATE // BLOCK)
    hits = onsets(out)
    assert hits[0] == 0, "the tick itself is a step"
    assert hits[1] >= 0.5 * RATE - BLOCK and len(hits) > 2, f"own tempo resumes after the clock timeout: {hits}"
