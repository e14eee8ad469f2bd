import threading
import time
import weakref

import numpy as np
import pytest

from instrument.core.dsp import db_to_gain
from instrument.core.events import NoteOn
from instrument.host.link import EngineLink
from instrument.host.worker import DecodeWorker
from instrument.rt.engine import Engine, engine_settings


class FakeKnobs:
    """The identity map: latent == CC, so a decoded latent shows which knob position was asked for."""

    def cc_to_latent(self, x, y):
        return np.array([x, y], dtype=np.float32)

    def latent_to_cc_int(self, latent):
        return round(float(latent[0])), round(float(latent[1]))


class BrokenModel:
    """Decodes a good snare at x == 0, and `bad(good_wave)` anywhere else."""

    sample_rate = 48000
    knobs = FakeKnobs()

    def __init__(self, bad):
        self.bad = bad
        self.stalling = threading.Event()

    def decode(self, latent):
        wave = np.sin(np.arange(4800, dtype=np.float32) * 0.05) * np.exp(-np.arange(4800) / 1500.0)
        if latent[0] == 0:
            return wave
        if self.bad == "stall":
            self.stalling.set()
            time.sleep(2.0)
            self.stalling.clear()
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
    engine = Engine(engine_settings(48000, 128))
    model = SlowModel()
    worker = DecodeWorker(model, engine, 48000).start()
    for v in range(1000):  # had a move waited for its decode, the model would see ~1000 calls (below)
        worker.move_cc(v % 128, 0)
    worker.move_cc(100, 7)
    deadline = time.monotonic() + 5
    while (worker.now_playing is None or tuple(worker.now_playing.latent) != (100, 7)) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert tuple(worker.now_playing.latent) == (100, 7)
    assert len(model.calls) < 20  # stale requests were overwritten, not queued


def test_a_bad_decode_keeps_the_previous_snare():
    engine = Engine(engine_settings(48000, 128))
    worker = DecodeWorker(SlowModel(0, fail_at=(5.0, 5.0)), engine, 48000, cc=(1, 1)).start()
    assert worker.wait_published(2)
    good = engine.current
    worker.move_cc(5, 5)
    deadline = time.monotonic() + 2
    while worker.rejected == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert worker.rejected == 1 and engine.current is good


def wait_playing(worker, cc, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while (worker.now_playing is None or worker.now_playing.cc != cc) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert worker.now_playing.cc == cc, f"playing {worker.now_playing.cc}, not {cc}"


def test_the_worker_keeps_no_published_sample_the_link_copies_it_into_shared_memory():
    """What the cycle plays lives in the shared slots: no array of the worker's thread is left for
    the audio thread to hold, or to free."""
    link = EngineLink(engine_settings(48000, 128))
    published = []  # weak references: they die when the last strong reference goes
    publish = link.publish
    link.publish = lambda sample: (published.append(weakref.ref(sample)), publish(sample))
    worker = DecodeWorker(SlowModel(0), link, 48000, cc=(1, 0)).start()
    try:
        assert worker.wait_published(2)
        worker.move_cc(1, 2)
        wait_playing(worker, (1.0, 2.0))
    finally:
        worker.stop()
        link.close()
    assert len(published) == 2 and all(ref() is None for ref in published), "a published sample is still referenced"


def test_x_then_y_in_quick_succession_keeps_both_while_a_decode_runs():
    worker = DecodeWorker(SlowModel(0.05), Engine(engine_settings(48000, 128)), 48000, cc=(0, 0)).start()
    worker.turn(0, 90)  # the worker is busy decoding (0, 0) while these arrive
    worker.turn(1, 30)
    assert worker.target.cc == (90.0, 30.0)
    wait_playing(worker, (90.0, 30.0))
    worker.stop()
    assert tuple(worker.now_playing.latent) == (90, 30)


def test_turns_from_two_threads_never_lose_an_axis():
    worker = DecodeWorker(SlowModel(0), Engine(engine_settings(48000, 128)), 48000, cc=(0, 0)).start()
    threads = [
        threading.Thread(target=lambda axis=axis: [worker.turn(axis, v) for v in range(1, 128)]) for axis in (0, 1)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_playing(worker, (127.0, 127.0))
    worker.stop()


def test_a_move_to_an_exact_point_plays_it_and_the_knobs_continue_from_its_ccs():
    model = SlowModel(0)
    worker = DecodeWorker(model, Engine(engine_settings(48000, 128)), 48000, cc=(0, 0)).start()
    assert worker.move_to(model, np.array([40.4, 99.6], dtype=np.float32)) == (40, 100)
    wait_playing(worker, (40.0, 100.0))
    assert np.allclose(worker.now_playing.latent, (40.4, 99.6)), "a recall plays the exact latent, not its rounded CCs"
    assert not worker.now_playing.latent.flags.writeable, "the published position cannot change under a reader"
    worker.turn(1, 5)
    wait_playing(worker, (40.0, 5.0))
    worker.stop()


def test_a_model_switch_keeps_the_knobs_and_plays_the_new_model():
    first, second = SlowModel(0), SlowModel(0)
    worker = DecodeWorker(first, Engine(engine_settings(48000, 128)), 48000, cc=(3, 4)).start()
    assert worker.wait_published(2)
    worker.switch_model(second)
    deadline = time.monotonic() + 5
    while worker.now_playing.model is not second and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.stop()
    assert worker.now_playing.model is second and worker.now_playing.cc == (3.0, 4.0) and second.calls == [(3.0, 4.0)]


def play(engine, blocks=40):
    for _ in range(8):
        engine.post(NoteOn(127))
    return np.concatenate([engine.render(128).copy() for _ in range(blocks)])


@pytest.mark.parametrize(
    "name, bad, refused",
    [
        ("NaN", lambda w: np.where(np.arange(w.size) == 99, np.nan, w), True),
        ("Inf", lambda w: np.where(np.arange(w.size) == 99, np.inf, w), True),
        ("1e6", lambda w: w * 1e6, True),
        ("raise", "raise", True),
        ("out of memory", "memory", True),
        ("DC offset 0.2", lambda w: w + 0.2, False),
    ],
)
def test_whatever_the_decoder_returns_the_output_stays_finite_and_under_the_ceiling(name, bad, refused):
    engine = Engine(engine_settings(48000, 128, polyphony=16, ceiling_db=-1.0))
    worker = DecodeWorker(BrokenModel(bad), engine, 48000, cc=(0, 0)).start()
    assert worker.wait_published(2)
    good = engine.current
    worker.move_cc(1, 1)
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
    engine = Engine(engine_settings(48000, 128))
    model = BrokenModel("stall")
    worker = DecodeWorker(model, engine, 48000, cc=(0, 0)).start()
    assert worker.wait_published(2)
    good = engine.current
    worker.move_cc(1, 1)  # stalls the worker for 2 s
    assert model.stalling.wait(5.0)  # a guard only: the worker starts the decode at once
    out = play(engine, blocks=375)  # 1 s of audio rendered while the worker is stuck
    # Rendered before the stall ended: playback never waited for the decoder.
    assert model.stalling.is_set() and engine.current is good and np.abs(out).max() > 0.1
    worker.move_cc(0, 0)  # the knob moves on: decoded as soon as the stalled decode returns
    deadline = time.monotonic() + 5
    while worker.decodes < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert worker.decodes == 3 and tuple(worker.now_playing.latent) == (0, 0)


class KitModel(SlowModel):
    """A model with velocity timbres and round robins: each hit's pitch says its velocity and variant."""

    plays_velocity = True
    n_variants = 4

    def decode(self, latent, velocity=127, variant=0):
        self.calls.append((tuple(latent), velocity, variant))
        time.sleep(self.delay_s)
        t = np.arange(1000, dtype=np.float32)
        return np.sin(t * (0.01 + 0.0001 * velocity + 0.001 * variant)) * np.exp(-t / 300.0)


def test_the_hard_hit_is_published_first_then_the_whole_kit():
    published = []
    engine = Engine(engine_settings(48000, 128))
    publish = engine.publish
    engine.publish = lambda kit: (published.append(kit.shape), publish(kit))
    worker = DecodeWorker(KitModel(0), engine, 48000, cc=(5, 5), round_robins=2).start()
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    assert [shape[:2] for shape in published] == [(1, 1), (3, 2)]
    kit = engine.current
    assert not np.array_equal(kit[0, 0], kit[2, 0]) and not np.array_equal(kit[2, 0], kit[2, 1])
    assert worker.last_kit_ms >= worker.last_decode_ms > 0


def test_a_newer_knob_abandons_the_rest_of_a_kit():
    model = KitModel(0.02)
    worker = DecodeWorker(model, Engine(engine_settings(48000, 128)), 48000, cc=(0, 0), round_robins=4).start()
    assert worker.wait_published(2)
    worker.turn(0, 50)  # while the kit of (0, 0) is being decoded
    wait_playing(worker, (50.0, 0.0))
    deadline = time.monotonic() + 5
    while len([c for c in model.calls if c[0] == (50, 0)]) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    old = [c for c in model.calls if c[0] == (0, 0)]
    assert 1 <= len(old) < 12, "the old kit was decoded in full after the knob moved"


def test_a_knob_resending_its_value_keeps_the_whole_kit_playing():
    """Controllers re-send values and DAWs chase CCs on play: a value the knob already has must not
    decode again, which would publish the hard hit alone and make the next soft hit play it."""
    published = []
    engine = Engine(engine_settings(48000, 128))
    publish = engine.publish
    engine.publish = lambda kit: (published.append(kit.shape[:2]), publish(kit))
    worker = DecodeWorker(KitModel(0), engine, 48000, cc=(5, 9), round_robins=2).start()
    deadline = time.monotonic() + 5
    while len(published) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    for _ in range(3):
        worker.turn(0, 5)
        worker.turn(1, 9)
        worker.move_cc(5, 9)
        time.sleep(0.05)  # time for a decode, were one started
    worker.turn(1, 10)  # a real move still decodes
    deadline = time.monotonic() + 5
    while worker.now_playing.kit != (3, 2) or worker.now_playing.cc != (5.0, 10.0):
        assert time.monotonic() < deadline, "the real move's kit was never published"
        time.sleep(0.01)
    worker.stop()
    assert published == [(1, 1), (3, 2), (1, 1), (3, 2)], f"published {published}"


def test_one_round_robin_and_a_model_without_velocity_publish_single_snares():
    published = []
    engine = Engine(engine_settings(48000, 128))
    engine.publish = lambda kit: published.append(kit.shape)
    worker = DecodeWorker(SlowModel(0), engine, 48000, cc=(1, 1), round_robins=4).start()
    assert worker.wait_published(2)
    time.sleep(0.1)
    worker.stop()
    assert published == [(1, 1, published[0][2])]
