import threading
import time

import numpy as np
import pytest

from instrument.play.dsp import db_to_gain
from instrument.play.engine import NOTE_ON, Engine
from instrument.play.worker import DecodeWorker


class FakeKnobs:
    def cc_to_latent(self, x, y):
        return np.array([x, y], dtype=np.float32)


class BrokenModel:
    """Decodes a good snare at x == 0, and `bad(good_wave)` anywhere else."""

    sample_rate = 48000
    knobs = FakeKnobs()

    def __init__(self, bad):
        self.bad = bad

    def decode(self, latent):
        wave = np.sin(np.arange(4800, dtype=np.float32) * 0.05) * np.exp(-np.arange(4800) / 1500.0)
        if latent[0] == 0:
            return wave
        if self.bad == "stall":
            time.sleep(2.0)
            return wave * 0.5
        if self.bad == "memory":
            raise MemoryError
        if self.bad == "raise":
            raise RuntimeError("decoder bug")
        return self.bad(wave)


class SlowModel:
    """Decodes a recognizable snare (its level encodes the latent); slow, to pile up requests."""

    sample_rate = 48000
    knobs = FakeKnobs()

    def __init__(self, delay_s=0.01, fail_at=None):
        self.delay_s, self.fail_at, self.calls = delay_s, fail_at, []

    def decode(self, latent):
        self.calls.append(tuple(latent))
        time.sleep(self.delay_s)
        if self.fail_at is not None and tuple(latent) == self.fail_at:
            return np.full(1000, np.nan, np.float32)
        wave = np.sin(np.arange(1000, dtype=np.float32) * (0.01 + 0.001 * latent[0]))
        return wave * np.exp(-np.arange(1000) / 300.0)


def test_a_flood_of_requests_decodes_only_the_newest():
    engine = Engine(48000, 128)
    model = SlowModel()
    worker = DecodeWorker(model, engine, 48000).start()
    started = time.perf_counter()
    for v in range(1000):
        worker.request_cc(v % 128, 0)
    assert time.perf_counter() - started < 0.5  # request() never waits for a decode
    worker.request_cc(100, 7)
    deadline = time.monotonic() + 5
    while (worker.now_playing[1] is None or tuple(worker.now_playing[1]) != (100, 7)) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert tuple(worker.now_playing[1]) == (100, 7)
    assert len(model.calls) < 20  # stale requests were overwritten, not queued


def test_a_bad_decode_keeps_the_previous_snare():
    engine = Engine(48000, 128)
    worker = DecodeWorker(SlowModel(0, fail_at=(5.0, 5.0)), engine, 48000).start()
    worker.request_cc(1, 1)
    assert worker.wait_published(2)
    good = engine.current
    worker.request_cc(5, 5)
    deadline = time.monotonic() + 2
    while worker.rejected == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert worker.rejected == 1 and engine.current is good


def test_old_samples_are_released_by_the_worker_once_unreferenced():
    engine = Engine(48000, 128)
    worker = DecodeWorker(SlowModel(0), engine, 48000).start()
    for i in range(50):
        worker.request_cc(i, 0)
        time.sleep(0.003)
    time.sleep(0.1)
    worker.request_cc(1, 2)
    time.sleep(0.1)
    worker.stop()
    assert len(worker._alive) <= 2
    assert threading.active_count() >= 1


def play(engine, blocks=40):
    for _ in range(8):
        engine.post(NOTE_ON, 38, 127)
    return np.concatenate([engine.render(128).copy() for _ in range(blocks)])


@pytest.mark.parametrize("name, bad, refused", [
    ("NaN", lambda w: np.where(np.arange(w.size) == 99, np.nan, w), True),
    ("Inf", lambda w: np.where(np.arange(w.size) == 99, np.inf, w), True),
    ("1e6", lambda w: w * 1e6, True),
    ("raise", "raise", True),
    ("out of memory", "memory", True),
    ("DC offset 0.2", lambda w: w + 0.2, False),
])
def test_whatever_the_decoder_returns_the_output_stays_finite_and_under_the_ceiling(name, bad, refused):
    engine = Engine(48000, 128, polyphony=16, ceiling_db=-1.0)
    worker = DecodeWorker(BrokenModel(bad), engine, 48000).start()
    worker.request_cc(0, 0)
    assert worker.wait_published(2)
    good = engine.current
    worker.request_cc(1, 1)
    deadline = time.monotonic() + 2
    while worker.rejected + worker.decodes < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    out = play(engine)
    assert np.all(np.isfinite(out)) and np.abs(out).max() <= db_to_gain(-1.0) + 1e-9
    if refused:  # the bad snare was dropped and counted; the last good one still plays
        assert worker.rejected == 1 and engine.current is good
    else:  # a DC offset is removed before the snare is published
        assert worker.rejected == 0 and engine.current is not good
        assert abs(float(np.mean(engine.current))) < 0.01 * float(np.abs(engine.current).max())


def test_a_decoder_stalling_for_2_s_never_stops_playback_and_the_next_move_decodes_again():
    engine = Engine(48000, 128)
    worker = DecodeWorker(BrokenModel("stall"), engine, 48000).start()
    worker.request_cc(0, 0)
    assert worker.wait_published(2)
    good = engine.current
    worker.request_cc(1, 1)  # stalls the worker for 2 s
    time.sleep(0.2)
    started = time.perf_counter()
    out = play(engine, blocks=375)  # 1 s of audio rendered while the worker is stuck
    assert time.perf_counter() - started < 1.0 and engine.current is good and np.abs(out).max() > 0.1
    worker.request_cc(0, 0)  # the knob moves on: decoded as soon as the stalled decode returns
    deadline = time.monotonic() + 5
    while worker.decodes < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert worker.decodes == 3 and tuple(worker.now_playing[1]) == (0, 0)
