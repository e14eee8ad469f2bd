"""The running instrument, driven through real JACK MIDI and recorded through real JACK audio."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from instrument.core.dsp import db_to_gain, velocity_to_gain
from instrument.model.file import load_model
from instrument.rt.clib import available

from ..jackrig import service_state
from .listen import (
    ATTACK_SAMPLES,
    CC_X,
    CC_Y,
    CONFIG,
    assert_matches,
    centroid_octaves,
    expected_snare,
    hit,
    matches,
    recorded_hit,
    rendered,
    set_knobs,
    similarity,
)

pytestmark = pytest.mark.e2e


# Every test here runs against both audio backends.
@pytest.fixture(scope="module", params=["jack", "portaudio"])
def service(request, jack_server, tmp_path_factory, user_folders):
    from .conftest import start_service

    svc = start_service(tmp_path_factory, user_folders, request.param)
    yield svc
    assert svc.stop() == 0, f"service did not stop cleanly: {svc.log_path.read_text()[-1000:]}"


def test_note_is_heard_within_one_period_on_jack_and_two_on_portaudio(rig, service):
    # JACK: the note is read in the cycle it arrives in and starts at its frame; PortAudio: it
    # crosses rtmidi's thread and lands in the next block.
    bound = rig.period if service.backend == "jack" else 2 * rig.period
    latencies = [hit(rig)[0] for _ in range(5)]
    assert np.median(latencies) <= bound, f"note-on -> sound latencies {latencies} frames ({service.backend})"


SYSEX_BYTES = 64 * 1024  # twice what one JACK MIDI event can hold (32720 bytes)
SYSEX_CHUNK_BYTES = 256  # one JACK MIDI event each: how an ALSA-to-JACK bridge splits a long SysEx
CHUNKS_PER_PERIOD = 4  # 1 KB per period, 375 KB/s: over 100x what a DIN cable carries
# Clock bytes per 128-frame period: 3000/s on JACK, 25x the clock of a 300 BPM song (120/s).
# PortAudio holds 750/s: above that, rtmidi's call into Python for every byte, made inside JACK's
# cycle, makes its audio drop out (docs/limitations.md).
CLOCKS_PER_PERIOD = {"jack": 8, "portaudio": 2}


def sysex_dump_in_a_clock_flood(dump_done: threading.Event, clocks_per_period: int, terminated: bool = True):
    """Per-period event lists: one 64 KB SysEx (F0 7D ... F7; 7D is the non-commercial ID) in
    chunks, with clock bytes between them (real-time bytes may interrupt SysEx); then clock bytes
    alone, for good. terminated=False leaves off the final F7, as a device unplugged mid-dump does."""
    body = bytes(range(128)) * (SYSEX_BYTES // 128)
    sysex = b"\xf0\x7d" + body[: SYSEX_BYTES - 3] + (b"\xf7" if terminated else b"")
    chunks = [sysex[i : i + SYSEX_CHUNK_BYTES] for i in range(0, len(sysex), SYSEX_CHUNK_BYTES)]
    clocks = [b"\xf8"] * clocks_per_period
    for at in range(0, len(chunks), CHUNKS_PER_PERIOD):
        yield [
            event
            for pair in itertools.zip_longest(chunks[at : at + CHUNKS_PER_PERIOD], clocks)
            for event in pair
            if event
        ]
    dump_done.set()
    while True:
        yield clocks


def hits_after_sysex_dumps(rig, backend: str, n_dumps: int, terminated: bool = True) -> list:
    """Each dump is followed, in the next periods, by a hit inside the clock flood: (latency in
    frames, the recording from its first sample up to any xrun), or None where nothing was heard."""
    hits = []
    try:
        for _ in range(n_dumps):
            dump_done = threading.Event()
            rig.flood(sysex_dump_in_a_clock_flood(dump_done, CLOCKS_PER_PERIOD[backend], terminated))
            assert dump_done.wait(5), "the rig did not get the SysEx dump out"
            hits.append(recorded_hit(rig, rig.note(38, 127)))
    finally:
        rig.flood(None)
    return hits


def test_a_64_kb_sysex_and_a_clock_flood_neither_delay_nor_change_notes(rig, service):
    # A note cannot arrive inside a SysEx (any status byte but real-time ends it), so each note
    # follows the dump's F7 while the clock flood goes on around it.
    bound = rig.period if service.backend == "jack" else 2 * rig.period
    set_knobs(rig, 0, 0)
    right, wrong = expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127)
    flooded_before, xruns_before = rig.flooded_bytes, rig.xruns
    flooded = hits_after_sysex_dumps(rig, service.backend, 4)
    xruns = rig.xruns - xruns_before
    assert rig.flooded_bytes - flooded_before >= 4 * SYSEX_BYTES, "the rig did not send the four dumps"
    heard = [h for h in flooded if h is not None]
    # A note or a period lost in a dummy-driver xrun is lost for every client, the rig's recorder
    # included (docs/limitations.md): one bad hit of the four is excused, and only if the server reported an xrun.
    bad = len(flooded) - sum(matches(audio, right, wrong) for _, audio in heard)
    similarities = [(round(similarity(audio, right), 2), round(similarity(audio, wrong), 2)) for _, audio in heard]
    assert bad == 0 or (bad == 1 and xruns > 0), (
        f"{len(flooded) - len(heard)} hits unheard; similarity to the "
        f"right and wrong snares {similarities}; {xruns} xruns meanwhile"
    )
    latencies = [latency for latency, _ in heard]
    assert np.median(latencies) <= bound, (
        f"note-on -> sound latencies {latencies} frames after the dumps ({service.backend})"
    )


def test_a_sysex_cut_short_does_not_deafen_the_input(rig, service):
    if service.backend == "portaudio":
        # rtmidi's JACK input takes every event after an unterminated F0 as SysEx data until an
        # F7: deaf in most runs here, not all (docs/limitations.md).
        pytest.skip("rtmidi on JACK waits for the F7 of a cut-short SysEx")
    # Two chances: a note can be lost in a dummy-driver xrun (docs/limitations.md).
    assert any(hits_after_sysex_dumps(rig, service.backend, 2, terminated=False)), "deaf after a cut-short SysEx"


def test_velocity_scales_level(rig):
    loud, soft = hit(rig, 127)[1], hit(rig, 40)[1]
    n = min(loud.size, soft.size)  # both cut at any xrun: peaks over the same stretch of the same snare
    loud, soft = np.max(np.abs(loud[:n])), np.max(np.abs(soft[:n]))
    expected_db = 20 * np.log10(velocity_to_gain(40, CONFIG.voices.velocity_range_db))
    measured_db = 20 * np.log10(soft / loud)
    assert abs(measured_db - expected_db) < 1.0, f"velocity 40 is {measured_db:.1f} dB, expected {expected_db:.1f} dB"


FULL_KIT = (3, CONFIG.voices.round_robins)  # the shipped models play velocity layers and round robins


def whole_hit(rig, velocity, seconds=0.1, attempts=3):
    """A hit whose first `seconds` were recorded whole: a recording is cut at the rig's first xrun
    (the dummy driver's, on this noisy machine), so a cut one is played again."""
    for _ in range(attempts):
        recorded = hit(rig, velocity)[1]
        if recorded.size >= int(seconds * rig.rate):
            return recorded
    raise AssertionError(f"{attempts} hits in a row were cut by xruns within {seconds * 1e3:.0f} ms")


def test_a_harder_hit_is_brighter_not_only_louder(rig, service):
    """Velocity 40 and 120 at one knob position: the hard hit's first 100 ms is brighter, by what
    the model renders offline for those layers (and it is not the same snare at two levels)."""
    set_knobs(rig, 64, 64, kit=FULL_KIT)
    soft, hard = whole_hit(rig, 40), whole_hit(rig, 120)
    latent = load_model(None, CONFIG.model).knobs.cc_to_latent(64, 64)
    model = load_model(None, CONFIG.model)
    offline = centroid_octaves(rendered(rig.rate, model, latent, 120), rig.rate) - centroid_octaves(
        rendered(rig.rate, model, latent, 40), rig.rate
    )
    heard = centroid_octaves(hard, rig.rate) - centroid_octaves(soft, rig.rate)
    assert offline > 0.1, f"the shipped model brightens by only {offline:.2f} octave from velocity 40 to 120"
    assert heard > 0.5 * offline, f"heard {heard:.2f} octave brighter from velocity 40 to 120, offline {offline:.2f}"


def test_consecutive_hits_at_one_point_are_never_the_same_samples(rig):
    set_knobs(rig, 30, 90, kit=FULL_KIT)
    first, second = hit(rig)[1], hit(rig)[1]
    n = min(first.size, second.size, ATTACK_SAMPLES)
    assert not np.array_equal(first[:n], second[:n]), "two hits at one point played the same samples"
    assert similarity(first, second) > 0.8, "two round robins of one snare sound like different snares"


def test_distant_knob_positions_sound_different_and_match_offline_render(rig):
    set_knobs(rig, 0, 0)
    low = hit(rig)[1]
    set_knobs(rig, 127, 127)
    high = hit(rig)[1]
    ref_low, ref_high = expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127)
    assert similarity(ref_low, ref_high) < 0.8, "opposite corners of the knob plane decode to the same snare"
    # Each recording is its own knob position's snare, and clearly not the other's.
    assert_matches(low, ref_low, ref_high)
    assert_matches(high, ref_high, ref_low)


def test_flood_of_ccs_ends_at_the_final_value(rig):
    rng = np.random.default_rng(0)
    for _ in range(20):  # 1000 CCs in 20 periods, then the final position
        rig.send(*[[0xB0, int(rng.choice([CC_X, CC_Y])), int(v)] for v in rng.integers(0, 128, 50)])
    set_knobs(rig, 0, 0)  # the corners are proven distinct by the test above
    recorded = hit(rig)[1]
    assert_matches(recorded, expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127))


def test_all_sound_off_silences_within_a_few_ms(rig):
    sent = rig.note(38, 127)
    rig.wait_frames(int(0.05 * rig.rate))
    off = rig.cc(120, 0)
    after = rig.audio(off, int(0.2 * rig.rate))
    settle = 2 * rig.period + int(0.003 * rig.rate)  # 2 periods to arrive, 3 ms fade
    assert np.max(np.abs(rig.audio(sent, int(0.05 * rig.rate)))) > 0.01, "the note did not sound"
    assert np.max(np.abs(after[settle:])) < 1e-4, "still sounding after CC 120"
    steps = np.abs(np.diff(after[: settle + 1]))
    assert steps.max() < 0.1, "CC 120 cut the sound with a click instead of a fade"


def test_output_never_exceeds_the_ceiling(rig):
    # 41 hits in one period start in one block and add up coherently: the worst case for the ceiling.
    start = rig.send(*[[0x90, 38, 127]] * 41)
    audio = rig.audio(start, int(1.0 * rig.rate))
    ceiling = db_to_gain(CONFIG.audio.ceiling_db)
    assert np.max(np.abs(audio)) > 0.5 * ceiling, "the stack of hits did not reach the limiter"
    assert np.max(np.abs(audio)) <= ceiling + 1e-6


def test_the_audio_process_locks_its_memory_where_the_limit_allows(service):
    """Page faults on the audio cycle are xruns: the audio process locks what it has mapped
    (root, or a memlock limit raised as JACK's real-time set-up does for the audio group)."""
    import os
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if os.geteuid() != 0 and soft != resource.RLIM_INFINITY:
        pytest.skip(f"memlock limit {soft} bytes: locking may be refused here (the instrument plays on unlocked)")
    assert service_state()["memory_locked"] is True


def test_the_audio_cycle_runs_in_c_and_counts_where_each_cycle_began_and_ended(service, rig):
    """The JACK thread calls the C mixer (rt/mixer.c), not the interpreter, and files every cycle
    by where in its period it began and where it finished (bench/soak.py prints them)."""
    assert available() is None, available()
    rig.wait_frames(rig.rate // 2)
    state = service_state()
    assert state["mixer"] == "c"
    if service.backend == "portaudio":
        return  # PortAudio's callback makes one call into C; only JACK's cycle knows where its period began
    starts, ends = np.array(state["cycle_start_hist"]), np.array(state["cycle_end_hist"])
    assert starts.sum() > 100 and abs(int(starts.sum() - ends.sum())) <= 2  # read while cycles run
    # A cycle finishes no earlier than it began: fewer cycles have ended by each tenth than had begun.
    assert np.all(np.cumsum(ends)[:-1] <= np.cumsum(starts)[:-1] + 2), (starts, ends)
