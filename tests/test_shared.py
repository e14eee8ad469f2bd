"""What crosses between the main process and the audio process: engine events as ring records
(core/events.py) and the single-producer, single-consumer rings of shared memory (rt/layout.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from instrument.core.events import (
    ALL_NOTES_OFF,
    ALL_SOUND_OFF,
    CONTINUE,
    KINDS,
    LOOP_TOGGLE,
    START,
    STOP,
    Clock,
    Loop,
    NoteOff,
    NoteOn,
    Tempo,
    from_record,
    to_record,
)
from instrument.rt.engine import engine_settings
from instrument.rt.layout import Ring, SharedAudio
from instrument.rt.structs import RECORD_WIDTH, RingIndex

ONE_OF_EACH = [
    NoteOn(127, 63),
    NoteOn(1),
    NoteOff(17),
    ALL_SOUND_OFF,
    ALL_NOTES_OFF,
    Loop(True),
    Loop(False),
    LOOP_TOGGLE,
    Tempo(137.5, 3),
    Clock(5),
    START,
    CONTINUE,
    STOP,
]


def small_ring(capacity: int) -> Ring:
    return Ring(RingIndex(), np.zeros((capacity, RECORD_WIDTH)))


def test_every_kind_of_event_is_in_the_round_trip_list():
    """A kind added to events.py without a case here would cross the ring untested."""
    assert {type(event) for event in ONE_OF_EACH} == set(KINDS)


@pytest.mark.parametrize("event", ONE_OF_EACH, ids=repr)
def test_an_event_comes_back_equal_through_a_shared_ring(event):
    shared = SharedAudio.create(engine_settings(48_000, 256))
    try:
        assert shared.events.push(*to_record(event))
        record = shared.events.pop()
        assert from_record(record[0], record[1], record[2]) == event
        assert shared.events.pop() is None
    finally:
        shared.release()


def test_events_without_fields_decode_to_the_singletons_so_the_audio_side_allocates_nothing():
    for event in (ALL_SOUND_OFF, ALL_NOTES_OFF, START, CONTINUE, STOP, LOOP_TOGGLE):
        assert from_record(*to_record(event)) is event


def test_a_record_of_no_known_kind_raises_for_the_callback_to_count():
    with pytest.raises((IndexError, KeyError)):
        from_record(float(len(KINDS)), 0.0, 0.0)


def test_a_ring_keeps_order_across_many_wrap_arounds():
    ring = small_ring(4)
    popped = []
    for n in range(1, 31):  # 30 records through 4 slots: the indices wrap 7 times
        assert ring.push(float(n), n + 0.5)
        if n % 3 == 0:  # the consumer falls behind, then catches up
            while (record := ring.pop()) is not None:
                popped.append((record[0], record[1]))
    while (record := ring.pop()) is not None:
        popped.append((record[0], record[1]))
    assert popped == [(float(n), n + 0.5) for n in range(1, 31)]
    assert ring.index.dropped == 0


def test_a_full_ring_drops_the_newest_and_counts_it_never_overwriting_an_unread_record():
    ring = small_ring(4)
    assert all(ring.push(float(n)) for n in range(4))
    assert not ring.push(99.0)
    assert not ring.push(98.0)
    assert ring.index.dropped == 2
    assert [ring.pop()[0] for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert ring.pop() is None
    assert ring.push(4.0)  # room again
    assert ring.pop()[0] == 4.0


def test_clear_forgets_what_a_dead_consumer_left_unread():
    ring = small_ring(4)
    ring.push(1.0)
    ring.push(2.0)
    ring.clear()
    assert ring.pop() is None
    assert ring.push(3.0) and ring.pop()[0] == 3.0


def test_the_audio_process_sees_the_same_memory_through_its_own_mapping():
    """Attach maps the same file: a record and a counter written on one side are read on the other."""
    main = SharedAudio.create(engine_settings(44_100, 256))
    audio = SharedAudio.attach(main.fd)
    try:
        main.events.push(*to_record(NoteOn(99, 12)))
        record = audio.events.pop()
        assert from_record(record[0], record[1], record[2]) == NoteOn(99, 12)
        assert main.events.pop() is None  # the consumer's tail moved for both
        audio.stats.own_xruns += 3
        assert main.stats.own_xruns == 3
    finally:
        audio.release()
        main.release()


PRODUCER = """
import sys
from instrument.rt.layout import SharedAudio
shared = SharedAudio.attach(int(sys.argv[1]))
k, n = 0, int(sys.argv[2])
while k < n:
    if shared.events.push(float(k), 2.0 * k, -3.0 * k, k + 0.5):
        k += 1
"""


def test_records_cross_between_two_processes_whole_and_in_order_under_load():
    """A producer process pushes numbered records through several wrap-arounds of the shared ring
    while a busy process competes for the cores; each record this process pops is whole (every
    field written before the index that published it) and next in order."""
    shared = SharedAudio.create(engine_settings(48_000, 256))
    count = 3 * shared.events.capacity + 123
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(shared.fd), str(count)], pass_fds=(shared.fd,))
    try:
        k = 0
        while k < count:
            record = shared.events.pop()
            if record is None:
                assert producer.poll() in (None, 0), f"the producer failed (exit code {producer.returncode})"
                assert producer.returncode is None or shared.events.index.head > k, f"{k} of {count} records arrived"
                continue
            assert tuple(record) == (float(k), 2.0 * k, -3.0 * k, k + 0.5)
            k += 1
        assert producer.wait(30) == 0 and shared.events.pop() is None  # a full ring refused, the producer retried
    finally:
        busy.kill()
        producer.kill()
        busy.wait()
        producer.wait()
        shared.release()
