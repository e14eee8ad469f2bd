"""The mixer rendered offline from scripted events: no devices."""

import numpy as np
import pytest

from instrument.core.dsp import db_to_gain, velocity_to_gain
from instrument.core.events import ALL_NOTES_OFF, ALL_SOUND_OFF, NoteOff, NoteOn
from instrument.rt.engine import Engine, engine_settings

RATE, BLOCK = 48000, 128


def snare(seed=0, seconds=0.5, peak=0.5):
    rng = np.random.default_rng(seed)
    t = np.arange(int(RATE * seconds)) / RATE
    wave = rng.standard_normal(t.size) * np.exp(-t / 0.08)
    wave[-200:] *= np.linspace(1, 0, 200)
    return (wave / np.abs(wave).max() * peak).astype(np.float32)


def run(engine, blocks):
    return np.concatenate([engine.render(BLOCK).copy() for _ in range(blocks)])


def make(**kw):
    engine = Engine(engine_settings(RATE, BLOCK, **kw))
    engine.publish(snare())
    return engine


def test_note_on_plays_the_current_snare_in_the_next_block():
    engine = make()
    engine.post(NoteOn(127))
    out = run(engine, 4)
    np.testing.assert_allclose(out[: 4 * BLOCK], snare()[: 4 * BLOCK], atol=1e-6)


def test_velocity_follows_the_gain_curve():
    loud, soft = make(), make()
    loud.post(NoteOn(127))
    soft.post(NoteOn(64))
    ratio = np.abs(run(soft, 5)).max() / np.abs(run(loud, 5)).max()
    assert ratio == pytest.approx(velocity_to_gain(64, 30.0), rel=1e-4)


def test_sounding_voices_keep_their_sample_when_a_new_one_is_published():
    engine = make()
    engine.post(NoteOn(127))
    first = run(engine, 2)
    engine.publish(snare(seed=1))
    rest = run(engine, 2)
    np.testing.assert_allclose(np.concatenate([first, rest]), snare()[: 4 * BLOCK], atol=1e-6)


def test_polyphony_cap_steals_the_oldest_with_a_fade_not_a_click():
    # A flat sample makes any cut visible as a jump; the only jumps allowed are the hits' own onsets.
    engine = Engine(engine_settings(RATE, BLOCK, polyphony=2))
    engine.publish(np.full(RATE, 0.2, dtype=np.float32))
    out = []
    for _ in range(3):
        engine.post(NoteOn(127))
        out.append(run(engine, 10))
    out = np.concatenate(out)
    assert engine.stats.stolen == 1
    steps = np.sort(np.abs(np.diff(np.concatenate([[0.0], out]))))[::-1]
    assert steps[:3] == pytest.approx([0.2, 0.2, 0.2], abs=1e-6)  # three onsets
    assert steps[3] < 0.01  # the stolen voice faded out smoothly
    assert out[-1] == pytest.approx(0.4)  # two voices sound after the steal


def test_all_sound_off_fades_to_silence_within_a_few_ms():
    engine = make()
    for _ in range(4):
        engine.post(NoteOn(127))
    run(engine, 3)
    engine.post(ALL_SOUND_OFF)
    out = run(engine, 4)
    assert np.all(out[int(0.003 * RATE) + 1 :] == 0)
    assert engine.stats.voices == 0


def test_all_notes_off_releases_every_voice():
    engine = make()
    engine.post(NoteOn(127))
    run(engine, 1)
    engine.post(ALL_NOTES_OFF)
    run(engine, 3)
    assert engine.stats.voices == 0


def test_one_shot_ignores_note_off_and_choke_mode_honours_it():
    oneshot, choke = make(), make(mode="choke")
    for engine in (oneshot, choke):
        engine.post(NoteOn(127))
        run(engine, 1)
        engine.post(NoteOff())
        run(engine, 3)
    assert oneshot.stats.voices == 1
    assert choke.stats.voices == 0


def test_velocity_zero_never_sounds():
    engine = make()
    engine.post(NoteOn(0))
    assert np.all(run(engine, 3) == 0)


@pytest.mark.parametrize("voices", [32, 128])
def test_a_stack_of_velocity_127_hits_stays_under_the_ceiling(voices):
    engine = make(polyphony=128, ceiling_db=-1.0)
    for _ in range(voices):
        engine.post(NoteOn(127))
    out = run(engine, 40)
    assert np.abs(out).max() <= db_to_gain(-1.0) + 1e-9
    assert engine.stats.limited_blocks > 0


def test_non_finite_samples_become_silence_and_are_counted():
    engine = make()
    bad = snare()
    bad[10] = np.nan
    engine.publish(bad)
    engine.post(NoteOn(127))
    out = run(engine, 2)
    assert np.all(np.isfinite(out))
    assert engine.stats.nonfinite_blocks == 1


def test_limiter_releases_back_to_unity():
    engine = make(polyphony=64)
    for _ in range(20):
        engine.post(NoteOn(127))
    run(engine, int(RATE * 1.0 / BLOCK))
    engine.post(NoteOn(127))
    out = run(engine, 4)
    np.testing.assert_allclose(out, snare()[: 4 * BLOCK], atol=1e-3)


def max_click(out: np.ndarray, onsets: int) -> float:
    """The largest sample-to-sample jump once the `onsets` largest (the hits' own starts) are set aside."""
    return float(np.sort(np.abs(np.diff(np.concatenate([[0.0], out]))))[::-1][onsets])


def test_all_sound_off_fades_without_a_click():
    engine = Engine(engine_settings(RATE, BLOCK))
    engine.publish(np.full(RATE, 0.2, dtype=np.float32))  # flat: any cut would be a 0.2 jump
    engine.post(NoteOn(127))
    out = run(engine, 3)
    engine.post(ALL_SOUND_OFF)
    out = np.concatenate([out, run(engine, 4)])
    assert out[-1] == 0 and max_click(out, onsets=1) < 0.1 * 0.2


def test_switching_the_snare_under_a_sounding_voice_never_clicks():
    engine = Engine(engine_settings(RATE, BLOCK))
    engine.publish(np.full(RATE, 0.2, dtype=np.float32))
    engine.post(NoteOn(127))
    out = run(engine, 3)
    engine.publish(np.full(RATE, -0.4, dtype=np.float32))  # a model switch or knob move mid-hit
    out = np.concatenate([out, run(engine, 3)])
    assert np.all(out[1:] == pytest.approx(0.2)) and max_click(out, onsets=1) == 0


def marked_kit(layers=3, variants=4, frames=4 * BLOCK):
    """Every hit a flat level that names it: 0.1 x (layer + 1) + 0.01 x variant."""
    levels = 0.1 * (np.arange(layers)[:, None] + 1) + 0.01 * np.arange(variants)[None, :]
    return np.repeat(levels[:, :, None], frames, axis=2).astype(np.float32)


def played_hit(engine, velocity):
    """The level the note plays, un-done of its velocity gain."""
    engine.post(NoteOn(velocity))
    out = run(engine, 5)  # the hit has ended (4 blocks)
    return round(float(out[BLOCK]) / velocity_to_gain(velocity, 30.0), 4)


def test_a_note_plays_the_velocity_layer_nearest_its_velocity():
    engine = Engine(engine_settings(RATE, BLOCK))
    engine.publish(marked_kit(variants=1))
    assert [played_hit(engine, v) for v in (1, 40, 60, 61, 80, 103, 104, 127)] == [
        0.1,
        0.1,
        0.1,
        0.2,
        0.2,
        0.2,
        0.3,
        0.3,
    ]


def test_consecutive_notes_take_the_round_robins_in_turn_and_one_variant_repeats():
    engine = Engine(engine_settings(RATE, BLOCK))
    engine.publish(marked_kit())
    assert [played_hit(engine, 127) for _ in range(6)] == [0.3, 0.31, 0.32, 0.33, 0.3, 0.31]
    engine.publish(marked_kit(variants=1))
    assert [played_hit(engine, 127) for _ in range(3)] == [0.3, 0.3, 0.3]


def test_a_kit_of_one_layer_plays_it_at_every_velocity():
    engine = Engine(engine_settings(RATE, BLOCK))
    engine.publish(marked_kit(layers=1, variants=2))
    assert [played_hit(engine, v) for v in (20, 127)] == [0.1, 0.11]
