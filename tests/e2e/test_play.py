"""The running instrument, driven through real JACK MIDI and recorded through real JACK audio."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.dsp import db_to_gain, velocity_to_gain

from .listen import CC_X, CC_Y, CONFIG, assert_matches, expected_snare, hit, set_knobs, similarity

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


def test_velocity_scales_level(rig):
    loud = np.max(np.abs(hit(rig, 127)[1]))
    soft = np.max(np.abs(hit(rig, 40)[1]))
    expected_db = 20 * np.log10(velocity_to_gain(40, CONFIG.voices.velocity_range_db))
    measured_db = 20 * np.log10(soft / loud)
    assert abs(measured_db - expected_db) < 1.0, f"velocity 40 is {measured_db:.1f} dB, expected {expected_db:.1f} dB"


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
    for chunk in range(20):  # 1000 CCs in 20 periods, then the final position
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
