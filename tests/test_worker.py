import threading
import time

import numpy as np

from instrument.engine import Engine
from instrument.worker import DecodeWorker


class FakeKnobs:
    def cc_to_latent(self, x, y):
        return np.array([x, y], dtype=np.float32)


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
    while (worker.latent is None or tuple(worker.latent) != (100, 7)) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert tuple(worker.latent) == (100, 7)
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
