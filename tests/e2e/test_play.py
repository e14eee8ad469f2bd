"""The running instrument, driven through real JACK MIDI and recorded through real JACK audio."""

from __future__ import annotations

import numpy as np
import pytest

from instrument.config import load_config
from instrument.dsp import db_to_gain, finish_snare, velocity_to_gain
from instrument.modelfile import load_model

from .rig import first_sound

pytestmark = pytest.mark.e2e

CONFIG = load_config()
CC_X, CC_Y = CONFIG.midi.cc_x, CONFIG.midi.cc_y
RING_OUT_S = 0.9  # longer than any snare (0.75 s), so hits never overlap between checks
DECODE_SETTLE_S = 0.15
ATTACK_SAMPLES = 4096  # 85 ms: the part of a snare that tells snares apart, and most of its energy


def hit(rig, velocity=127, seconds=RING_OUT_S):
    """Play one note, return (latency in frames, the recorded hit aligned to its first sample)."""
    sent = rig.note(38, velocity)
    audio = rig.audio(sent, int(seconds * rig.rate))
    start = first_sound(audio)
    assert start is not None, "no sound after note-on"
    return start, audio[start:]


def expected_snare(rate, cc_x, cc_y, velocity=127):
    model = load_model(None, CONFIG.model)
    wave = finish_snare(model.decode_cc(cc_x, cc_y), model.sample_rate, rate)
    return wave * velocity_to_gain(velocity, CONFIG.voices.velocity_range_db)


def similarity(recorded, reference):
    n = min(recorded.size, reference.size, ATTACK_SAMPLES)
    a, b = recorded[:n], reference[:n]
    # Best normalized correlation over a few samples of onset misalignment (the threshold cuts the first sample).
    return max(float(np.dot(np.roll(a, k), b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)) for k in range(-4, 5))


def set_knobs(rig, x, y):
    rig.send([0xB0, CC_X, x], [0xB0, CC_Y, y])
    rig.wait_frames(int(DECODE_SETTLE_S * rig.rate))


def test_note_is_heard_within_two_periods(rig):
    latencies = [hit(rig)[0] for _ in range(5)]
    assert np.median(latencies) <= 2 * rig.period, f"note-on -> sound latencies {latencies} frames"


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


def assert_matches(recorded, right, wrong):
    """Closer to the right snare than to the wrong one by a clear margin (an underflow dropout on
    a loaded machine lowers both similarities alike, so this stays meaningful under load)."""
    s_right, s_wrong = similarity(recorded, right), similarity(recorded, wrong)
    assert s_right > 0.5 and s_right > s_wrong + 0.3, f"similarity to the right snare {s_right:.2f}, to the wrong one {s_wrong:.2f}"


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
