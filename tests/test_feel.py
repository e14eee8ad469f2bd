"""The feel's measures (instrument/training/feel.py) on synthetic signals with known answers,
and the card's pictures and table columns on a small fake model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from instrument.training import feel

SR = 44_100


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * SR))


def _band_noise(seconds: float, lo_hz: float, hi_hz: float, seed: int = 0) -> np.ndarray:
    x = _noise(seconds, seed)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(x.size, 1 / SR)
    spectrum[(freqs < lo_hz) | (freqs >= hi_hz)] = 0
    return np.fft.irfft(spectrum, x.size)


def _decay(seconds: float, db_per_s: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 10 ** (-db_per_s * t / 20)


def _sine(hz: float, seconds: float) -> np.ndarray:
    return np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)


# A sine with exactly 4 periods in the 0.7-ms RMS window (31 samples): its RMS envelope is flat.
RISE_TONE_HZ = 4 * SR / 31


def _ramp_hit(rise_ms: float, lead_ms: float = 0.0) -> np.ndarray:
    """Silence, a linear rise of `rise_ms` to full level, then a 200 dB/s decay."""
    n = int(0.3 * SR)
    rise = int(rise_ms * 1e-3 * SR)
    env = np.concatenate([np.linspace(0, 1, rise, endpoint=False), _decay(0.3, 200)[: n - rise]])
    wave = env * _sine(RISE_TONE_HZ, 0.3)
    return np.concatenate([np.zeros(int(lead_ms * 1e-3 * SR)), wave])


@pytest.mark.parametrize("rise_ms", [2.0, 5.0, 10.0])
def test_onset_rise_of_a_linear_ramp_is_80_percent_of_it(rise_ms):
    # The amplitude of a linear ramp passes 10 % and 90 % of its top 0.8 of the ramp apart.
    assert feel.onset_rise_ms(_ramp_hit(rise_ms), SR) == pytest.approx(0.8 * rise_ms, abs=0.35)


def test_onset_rise_is_found_after_leading_silence_and_orders_slow_after_fast():
    assert feel.onset_rise_ms(_ramp_hit(5.0, lead_ms=100), SR) == pytest.approx(4.0, abs=0.35)
    assert feel.onset_rise_ms(_ramp_hit(1.0), SR) < feel.onset_rise_ms(_ramp_hit(4.0), SR)


def test_rms_envelope_of_a_constant_tone_is_its_rms():
    env = feel.rms_envelope(_sine(RISE_TONE_HZ, 0.05), SR)
    assert env[100:-100] == pytest.approx(np.full(env.size - 200, 1 / np.sqrt(2)), abs=1e-3)


def test_crack_rises_6_db_when_the_high_band_doubles():
    low = 0.5 * _sine(200.0, 0.1)
    high = _band_noise(0.1, 3_000, 10_000)
    high /= np.std(high)
    one, two = (feel.crack_db(low + g * high, SR) for g in (0.1, 0.2))
    assert two - one == pytest.approx(6.0, abs=1.0)
    # The high band alone against a low band alone: far above, far below.
    assert feel.crack_db(high + 1e-3 * low, SR) > 20
    assert feel.crack_db(low + 1e-3 * high, SR) < -20


def test_crack_only_sees_the_first_12_ms():
    hit = 0.5 * _sine(200.0, 0.2)
    late = _band_noise(0.2, 3_000, 10_000)
    late[: int(0.02 * SR)] = 0  # a bright burst that starts after 20 ms
    assert feel.crack_db(hit + late, SR) == pytest.approx(feel.crack_db(hit, SR), abs=0.5)


@pytest.mark.parametrize("low_amplitude, expected_db", [(1.0, -3.01), (0.1, -20.04)])
def test_boom_is_the_share_of_60_150_hz(low_amplitude, expected_db):
    wave = low_amplitude * _sine(100.0, 0.4) + _sine(1_000.0, 0.4)
    assert feel.boom_db(wave, SR) == pytest.approx(expected_db, abs=0.3)


@pytest.mark.parametrize("db_per_s", [200.0, 400.0])
def test_largest_fall_of_an_exponential_decay_is_its_slope_over_10_ms(db_per_s):
    # A steady tone (no noise to fluctuate from frame to frame) decaying at a known rate.
    wave = _decay(0.75, db_per_s) * _sine(5_000.0, 0.75)
    assert feel.largest_fall_db(wave, SR) == pytest.approx(db_per_s / 100, abs=0.2)
    # Noise adds its frame-to-frame wobble on top, but stays in the same range.
    noisy = _decay(0.75, db_per_s) * _band_noise(0.75, 1_500, 16_000)
    assert db_per_s / 100 < feel.largest_fall_db(noisy, SR) < db_per_s / 100 + 3


def test_a_gate_is_a_big_fall_and_counts_only_down_to_60_db_below_the_peak():
    wave = _decay(0.75, 100.0) * _band_noise(0.75, 1_500, 16_000)
    assert feel.largest_fall_db(wave, SR) < 3
    gated = wave.copy()
    gated[int(0.305 * SR) :] = 0  # switched off at about -30 dB
    fall = feel.largest_fall_db(gated, SR)
    assert 25 < fall <= 60


def test_largest_fall_ignores_the_first_50_ms_and_the_low_band():
    wave = _decay(0.75, 100.0) * _band_noise(0.75, 1_500, 16_000)
    early = wave.copy()
    early[int(0.02 * SR) : int(0.04 * SR)] *= 0.01  # a 40-dB dip before 50 ms
    assert feel.largest_fall_db(early, SR) < 3
    rumble = wave + 3 * _sine(100.0, 0.75) * (np.arange(wave.size) < 0.3 * SR)  # a low tone that stops
    assert feel.largest_fall_db(rumble, SR) < 3


def test_end_level_tells_a_decay_into_silence_from_a_cut_off():
    decayed = _decay(0.75, 200.0) * _noise(0.75)
    assert feel.end_db(decayed, SR) < feel.END_AUDIBLE_DB
    held = _sine(440.0, 0.75)
    assert feel.end_db(held, SR) == pytest.approx(-3.01, abs=0.1)
    summary = feel.decay_summary(np.stack([decayed, held]), SR)
    assert summary["cut_off"] == 1 and summary["count"] == 2


def test_centroid_of_a_sine_is_its_frequency_in_octaves():
    assert feel.centroid_octaves(_sine(1_000.0, 0.2), SR) == pytest.approx(np.log2(1_000.0), abs=0.02)
    brighter = feel.centroid_octaves(_sine(2_000.0, 0.2), SR) - feel.centroid_octaves(_sine(1_000.0, 0.2), SR)
    assert brighter == pytest.approx(1.0, abs=0.03)
    dull = _band_noise(0.2, 100, 2_000)
    assert feel.centroid_octaves(dull + 0.5 * _band_noise(0.2, 4_000, 12_000, seed=1), SR) > feel.centroid_octaves(
        dull, SR
    )


def test_sound_distance_is_small_between_noise_seeds_of_one_envelope_and_large_between_envelopes():
    env = _decay(0.5, 120.0)
    a, b = env * _noise(0.5, 1), env * _noise(0.5, 2)
    other = _decay(0.5, 40.0) * _noise(0.5, 1)
    assert feel.sound_distance_db(a, a, SR) == 0.0
    same_envelope = feel.sound_distance_db(a, b, SR)
    assert 0 < same_envelope < 3
    assert feel.sound_distance_db(a, other, SR) > 2 * same_envelope


def test_velocity_pairs_take_the_layers_nearest_70_and_120():
    velocity = [40, 80, 127, 127, 127, 90, 64]
    drums = ["a", "a", "a", "b", "c", "c", "d"]
    pairs = feel.velocity_pairs(velocity, drums)
    by_drum = {p.drum: p for p in pairs}
    assert set(by_drum) == {"a", "c"}  # b has one layer, d one layer
    assert (by_drum["a"].soft_velocity, by_drum["a"].hard_velocity) == (80, 127)
    assert (by_drum["a"].soft, by_drum["a"].hard) == (1, 2)
    assert (by_drum["c"].soft_velocity, by_drum["c"].hard_velocity) == (90, 127)
    assert feel.velocity_pairs(None, drums) == [] and feel.velocity_pairs(velocity, None) == []
    assert feel.velocity_pairs([127, 127], ["a", "a"]) == []


class FakeKnobs:
    def cc_to_latent(self, x, y):
        return np.array([x, y], np.float64) / 127.0

    def latent_to_cc(self, z):
        return np.asarray(z, np.float64) * 127.0


class FakeModel:
    """A noise snare: x is brightness, y decay; velocity adds highs if `plays_velocity`; each
    variant mixes `variant_noise` of another noise seed into the first (1: all of it)."""

    name = "fake"
    sample_rate = SR
    n_samples = int(0.5 * SR)

    def __init__(self, plays_velocity: bool = True, n_variants: int = 4, variant_noise: float = 0.12):
        self.plays_velocity, self.n_variants = plays_velocity, n_variants
        self.knobs = FakeKnobs()
        self.low = _band_noise(0.5, 100, 1_000, seed=10)
        first = _band_noise(0.5, 2_000, 12_000, seed=20)
        mix = [0.0] + [variant_noise] * (n_variants - 1)
        self.high = [
            np.sqrt(1 - m**2) * first + m * _band_noise(0.5, 2_000, 12_000, seed=20 + k) for k, m in enumerate(mix)
        ]

    def decode(self, latent, velocity=127, variant=0):
        latent = np.asarray(latent, np.float64)
        if latent.ndim == 2:
            return np.stack([self.decode(z, velocity, variant) for z in latent])
        bright = 0.05 + 0.3 * latent[0] + ((velocity / 127.0) ** 2 if self.plays_velocity else 0.5)
        env = _decay(0.5, 60.0 + 200.0 * (1 - latent[1]))
        wave = env * (self.low + bright * self.high[variant % self.n_variants])
        return (wave / np.abs(wave).max()).astype(np.float32)

    def decode_cc(self, x, y, velocity=127, variant=0):
        return self.decode(self.knobs.cc_to_latent(x, y), velocity, variant)

    def encode(self, wave):
        wave = np.asarray(wave)
        return np.full((len(wave), 2), 0.5) if wave.ndim == 2 else np.full(2, 0.5)


def _velocity_snares(model):
    """Two drums of the fake model at velocities 70 and 120: the real data it should match."""
    waves = np.stack([model.decode_cc(40, 60, v) for v in (70, 120)] + [model.decode_cc(90, 30, v) for v in (70, 120)])
    return SimpleNamespace(waves=waves, velocity=np.array([70, 120, 70, 120.0]), drums=["a", "a", "b", "b"])


def test_velocity_changes_follow_a_model_that_brightens_and_not_one_that_does_not():
    truth = _velocity_snares(FakeModel())
    pairs = feel.velocity_pairs(truth.velocity, truth.drums)
    playing = feel.velocity_changes(FakeModel(), truth.waves, pairs)
    assert playing["pairs"] == 2 and playing["real_octaves_median"] > 0
    assert playing["same_direction"] == 1.0 and playing["model_over_real"] > 0.5
    deaf = feel.velocity_changes(FakeModel(plays_velocity=False), truth.waves, pairs)
    assert deaf["same_direction"] == 0.0 and deaf["model_octaves_median"] == 0.0


def test_a_drum_whose_layers_are_one_sample_at_two_levels_has_no_direction():
    model = FakeModel()
    hit = model.decode_cc(40, 60)
    waves = np.stack([hit, hit, model.decode_cc(90, 30, 70), model.decode_cc(90, 30, 120)])
    pairs = feel.velocity_pairs([70, 120, 70, 120], ["same", "same", "b", "b"])
    changes = feel.velocity_changes(model, waves, pairs)
    assert (changes["pairs"], changes["flat_pairs"]) == (1, 1)
    assert feel.real_velocity_changes(waves, pairs, SR)["flat_pairs"] == 1


def test_round_robins_are_apart_but_closer_than_a_knob_step_and_zero_with_one_variant():
    rr = feel.round_robin_distance(FakeModel())
    assert rr["variants"] == 4 and 0 < rr["variant_db"] < rr["step_4cc_db"]
    assert feel.round_robin_distance(FakeModel(n_variants=1))["variant_db"] == 0.0
    # Hits of wholly independent noise sound further apart than a small knob turn: the measure says so.
    apart = feel.round_robin_distance(FakeModel(variant_noise=1.0))
    assert apart["variant_db"] > apart["step_4cc_db"]


def test_model_feel_and_the_table_have_every_column(tmp_path):
    from instrument.training.evaluate import N_COLUMNS, render_table

    model = FakeModel()
    val = _velocity_snares(model)
    val.kits = ["k1", "k1", "k2", "k2"]
    val.names = ["k1/a70.wav", "k1/a120.wav", "k2/b70.wav", "k2/b120.wav"]
    latents = model.encode(val.waves)
    grid = np.stack([model.decode_cc(x, y) for y in np.linspace(0, 127, 9) for x in np.linspace(0, 127, 9)])
    metrics = feel.model_feel(model, val, latents, model.decode(latents), grid, train=val)
    assert metrics["grid"]["count"] == 81 and metrics["grid16"]["count"] == 256
    assert metrics["velocity"]["held_out"]["pairs"] == 2 and "training" in metrics["velocity"]
    refs = {
        "pca2": 1.0,
        "mean_snare": 1.0,
        "nearest_train": 0.5,
        "feel": feel.reference_feel(val, val, SR, val.waves, val.waves.mean(0), val.waves),
    }
    row = {
        "sound": {
            "val_log_stft": 0.5,
            "tail_db_median": -90,
            "tail_db_worst": -70,
            "cells_hit": 9,
            "diversity": 1.0,
            "step_max_over_median": 2.0,
            "round_trip_cc": 1.0,
        },
        "grid": {"all_finite": True, "silent": 0},
        "feel": metrics,
        "parameters": 1000,
        "file_mb": 0.1,
        "decode_ms_numpy": 1.0,
    }
    table = render_table({"fake": row}, {"fake": {}}, refs, "fake")
    lines = table.splitlines()
    assert "onset rise ms" in lines[0] and "round robins" in lines[0]
    assert all(line.count("|") == N_COLUMNS + 1 for line in lines)

    from instrument.training.card import draw_card_pictures

    paths = draw_card_pictures(model, SimpleNamespace(val=val), tmp_path)
    assert [p.name for p in paths] == ["attack.png", "velocity.png", "round-robins.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_rows_of_models_not_evaluated_now_are_kept_marked_with_the_new_columns_empty(tmp_path):
    from instrument.training.evaluate import EARLIER_MARK, N_COLUMNS, earlier_rows

    card = tmp_path / "README.md"
    card.write_text(
        "| `small-relu` | 3.482 | 1.31 | -63 / -63 | 1 | 0.00 | 1.6 | 127.0 | yes | 0.63 M | 2.5 | 0.06 | 700 ep |\n"
        "| `env` | 0.613 | 0.23 | -100 / -60 | 11 | 1.04 | 3.2 | 0.0 | yes | 2.21 M | 4.4 | 1.31 | 300 ep |\n"
    )
    (row,) = earlier_rows(card, ["small-relu"])  # env is evaluated now: its old row goes
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert len(cells) == N_COLUMNS and cells[0] == "`small-relu`" + EARLIER_MARK
    assert cells[8] == "–" and cells[-1] == "700 ep" and cells[1] == "3.482"
