"""The envelope snare: what it guarantees by construction (every hit decays, never gates, ends in
silence; same inputs give the same bytes; round robins differ; velocity moves the timbre), the
portable noise, numpy/torch parity, encode finding a rendered point again, and a short training
run that learns from velocity layers and resumes."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from instrument.errors import UserError
from instrument.model.envelope import (
    LOG_EPS,
    MAX_LATE_FALL_DB_PER_S,
    EnvelopeConfig,
    EnvelopeSnare,
    hash_uniform,
    render_grid,
    stft_power,
)
from instrument.model.file import load_model
from instrument.model.knobs import KnobMap

RATE = 32_000  # Nyquist at 16 kHz: the hiss band (8-16 kHz) exists, and the fixture stays small
N = 19_200  # 0.6 s: past the tail window (0.35-0.55 s)
SMALL = EnvelopeConfig(
    n_samples=N,
    sample_rate=RATE,
    n_bands=12,
    hidden=(24, 24),
    n_partials=2,
    n_variants=3,
    partial_decay_s=(0.004, 0.06),
)
UNIT_KNOBS = KnobMap(np.eye(2), np.array([-1.0, -1.0]), np.array([1.0, 1.0]))


def random_layers(config: EnvelopeConfig, seed: int = 0, scale: float = 0.5):
    """An untrained but snare-shaped decoder: random weights around a decaying envelope, so that
    different points give different sounds. `scale` large: an adversarial decoder whose raw
    outputs swing wildly, which the family's bounds must still turn into decaying snares."""
    rng = np.random.default_rng(seed)
    widths = config.widths
    layers = [
        (rng.normal(0, scale, (b, a)).astype(np.float32), rng.normal(0, 0.1, b).astype(np.float32))
        for a, b in zip(widths[:-1], widths[1:])
    ]
    _weight, bias = layers[-1]
    attack = np.linspace(-1.0, -2.5, 6)  # a crack falling over the attack's knots, then middling rates
    bias[: config.n_band_outputs] = np.tile(np.concatenate([attack, np.zeros(config.n_knots - 6)]), config.n_bands)
    return layers


def level_db(wave: np.ndarray, start: int, stop: int) -> float:
    return 10 * np.log10(np.mean(wave[start:stop].astype(np.float64) ** 2) + 1e-30)


def test_the_same_hit_renders_the_same_samples_in_another_process():
    here = EnvelopeSnare(SMALL, random_layers(SMALL)).decode([0.3, -0.2], velocity=90, variant=2)
    code = (
        "import sys, numpy as np; sys.path.insert(0, 'tests'); from test_envelope import SMALL, random_layers; "
        "from instrument.model.envelope import EnvelopeSnare; "
        "sys.stdout.buffer.write(EnvelopeSnare(SMALL, random_layers(SMALL)).decode([0.3, -0.2], 90, 2).tobytes())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert np.frombuffer(there, dtype=np.float32).tobytes() == here.tobytes()
    assert np.max(np.abs(here)) > 0.01  # a real sound, not two equal silences


def test_the_noise_is_a_portable_integer_hash():
    """lowbias32 of (index ^ salt) + salt2, as any language computes it with 32-bit wrapping."""

    def reference(seed, stream, i):
        m = 0xFFFFFFFF
        x = (i ^ ((seed * 0x9E3779B9 + stream * 0x85EBCA6B) & m)) & m
        x = (x + ((stream * 0xC2B2AE35) & m)) & m
        x ^= x >> 16
        x = (x * 0x7FEB352D) & m
        x ^= x >> 15
        x = (x * 0x846CA68B) & m
        x ^= x >> 16
        return (x + 0.5) / 2**32

    got = hash_uniform(3, 1007, 5000)
    assert [got[i] for i in (0, 1, 4999)] == [reference(3, 1007, i) for i in (0, 1, 4999)]
    assert 0.49 < got.mean() < 0.51 and 0 < got.min() and got.max() < 1


@pytest.mark.parametrize("seed", range(6))
def test_every_hit_decays_smoothly_and_ends_in_silence(seed):
    """Whatever the weights (here wild ones), point, velocity and round robin: after the crack no
    band falls faster than the family's bound, and the last 30 ms are far below the peak."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed, scale=3.0))
    rng = np.random.default_rng(seed)
    grid_s = render_grid(SMALL) / RATE
    late = np.flatnonzero(grid_s >= 0.05)
    for _ in range(5):
        z, velocity, variant = rng.uniform(-3, 3, 2), rng.uniform(1, 127), int(rng.integers(0, 3))
        p = net.params(z.astype(np.float32), velocity, variant)
        db = p.log_env * 20 / np.log(10)  # (bands, grid)
        fall_db_per_s = -np.diff(db[:, late], axis=1) / np.diff(grid_s[late])
        assert fall_db_per_s.max() <= MAX_LATE_FALL_DB_PER_S * 1.01  # no gate, anywhere
        assert np.all(np.diff(db[:, late], axis=1) <= 1e-6)  # and no band swells back once decaying
        wave = net.decode(z, velocity, variant)
        peak_db = 20 * np.log10(np.max(np.abs(wave)))  # wild weights: up to +25 dB
        assert level_db(wave, N - int(0.03 * RATE), N) < min(0.0, peak_db) - 60


def test_expected_power_matches_the_render():
    """The closed form the model is trained through predicts the render's STFT power (in total per
    frame, within 25 %) at every resolution, for random points and velocities."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=3))
    for z, velocity in (([0.0, 0.0], 127), ([0.8, -0.5], 50)):
        wave = net.decode(z, velocity)
        expected = net.expected_power(net.params(np.array([z], np.float32), velocity))
        for g, power in zip(net.geometry, expected):
            real = stft_power(wave, g.n_fft, g.hop)
            loud = power[0].sum(0) > power[0].sum(0).max() * 1e-3
            ratio = real.sum(0)[loud] / power[0].sum(0)[loud]
            assert 0.75 < np.median(ratio) < 1.25, (g.n_fft, np.median(ratio))


def test_round_robins_differ_but_each_is_always_the_same():
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=4))
    hits = [net.decode([0.1, 0.4], 100, v) for v in range(3)]
    assert hits[0].tobytes() == net.decode([0.1, 0.4], 100, 0).tobytes()
    for a in range(3):
        for b in range(a + 1, 3):
            difference_db = level_db(hits[a] - hits[b], 0, N) - level_db(hits[a], 0, N)
            assert -40 < difference_db < -3  # other samples, the same drum
    with pytest.raises(ValueError, match="variant must be in 0..2"):
        net.decode([0.1, 0.4], 100, 3)


def test_velocity_moves_the_timbre_where_the_soft_head_says_so():
    """Velocity 127 plays the hard head alone; a softer hit adds (1 - v/127) x the soft head."""
    layers = random_layers(SMALL, seed=5)
    weight, bias = layers[-1]
    soft = slice(SMALL.n_outputs, 2 * SMALL.n_outputs)
    quiet = [(w.copy(), b.copy()) for w, b in layers]
    quiet[-1][0][soft], quiet[-1][1][soft] = 0.0, 0.0
    a, b = EnvelopeSnare(SMALL, layers), EnvelopeSnare(SMALL, quiet)
    assert a.decode([0.2, 0.2], 127).tobytes() == b.decode([0.2, 0.2], 127).tobytes()
    assert b.decode([0.2, 0.2], 30).tobytes() == b.decode([0.2, 0.2], 127).tobytes()
    assert a.decode([0.2, 0.2], 30).tobytes() != a.decode([0.2, 0.2], 127).tobytes()


# Knob positions on and between the search's grid lines (7.9 CC apart), at the edges and corners.
REVISITED_CC = [(20.0, 100.0), (110.0, 30.0), (0.0, 0.0), (127.0, 64.0), (47.625, 79.375), (93.0, 5.0)]


@pytest.mark.parametrize("seed", [1, 2])
def test_encode_finds_a_rendered_point_again(seed):
    """A hard hit the model rendered is found again where it was rendered, within 3 CC and most
    often within the search's finest step (half a CC): the screen only chooses where real renders
    look, and the last steps are on renders, where the rendered point is at distance 0."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=seed))
    errors_cc = []
    for cc in REVISITED_CC:
        wave = net.decode(UNIT_KNOBS.cc_to_latent(*cc))
        found = UNIT_KNOBS.latent_to_cc(net.encode(wave, UNIT_KNOBS))
        errors_cc.append(np.max(np.abs(np.array(found) - cc)))
        assert errors_cc[-1] <= 3.0, (cc, found)
    assert np.median(errors_cc) <= 0.5, errors_cc
    assert errors_cc[REVISITED_CC.index((0.0, 0.0))] == 0.0  # a grid point, on every walk's lattice


def test_encode_renders_only_a_few_finalists(monkeypatch):
    """The grid is scored without rendering: a search that rendered it (289 snares) would fail."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=1))
    wave = net.decode(UNIT_KNOBS.cc_to_latent(40.0, 70.0))
    renders = []
    real = net.render_distance
    monkeypatch.setattr(net, "render_distance", lambda z, target: renders.append(z) or real(z, target))
    net.encode(wave, UNIT_KNOBS)
    assert 0 < len(renders) <= 60


def perturbed_snares(net: EnvelopeSnare) -> list[np.ndarray]:
    """Sounds near, not on, what the model makes: softer hits and other round robins, a hit
    darkened by a one-pole low-pass, one with a rattle (noise at 20 % of it, under it), and one
    that starts 3 ms late."""
    rng = np.random.default_rng(7)
    hard = net.decode(UNIT_KNOBS.cc_to_latent(70.0, 40.0))
    dark = hard.copy()
    for i in range(1, dark.size):
        dark[i] = 0.6 * dark[i] + 0.4 * dark[i - 1]
    return [
        net.decode(UNIT_KNOBS.cc_to_latent(30.0, 90.0), velocity=60),
        net.decode(UNIT_KNOBS.cc_to_latent(100.0, 110.0), velocity=100, variant=2),
        dark,
        hard * (1.0 + 0.2 * rng.standard_normal(hard.size).astype(np.float32)),
        np.concatenate([np.zeros(int(0.003 * RATE), np.float32), hard])[:N],
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_search_lands_where_the_render_search_does(seed):
    """On snares the model does not render exactly, the screened search lands within 3 CC of the
    search that renders every grid point, at a distance to the sound no larger (by 0.001), or
    farther away only where it found a snare closer to the sound."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=seed))
    for i, wave in enumerate(perturbed_snares(net)):
        fast = np.array(UNIT_KNOBS.latent_to_cc(net.encode(wave, UNIT_KNOBS)))
        full = np.array(UNIT_KNOBS.latent_to_cc(net.encode_by_renders(wave, UNIT_KNOBS)))
        target = net._log_power(wave)
        fast_d, full_d = (net.render_distance(UNIT_KNOBS.cc_to_latent(*cc), target) for cc in (fast, full))
        assert fast_d <= full_d + 1e-3, (i, fast, full, fast_d, full_d)
        assert np.max(np.abs(fast - full)) <= 3.0 or fast_d < full_d, (i, fast, full, fast_d, full_d)


def test_encode_takes_a_batch_one_by_one():
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=1))
    waves = np.stack([net.decode(UNIT_KNOBS.cc_to_latent(*cc)) for cc in REVISITED_CC[:2]])
    latents = net.encode(waves, UNIT_KNOBS)
    assert latents.shape == (2, 2) and latents.dtype == np.float32
    np.testing.assert_array_equal(latents[1], net.encode(waves[1], UNIT_KNOBS))


def test_the_screen_is_the_expected_power_summed_over_its_groups():
    """What the screen ranks the grid by is `expected_power` (the closed form checked against
    renders above), summed over each group of cells, at the render's own peak: within 2 % in
    every group less than 60 dB below the loudest, and within 0.01 on average in log power."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=3))
    latents = np.stack([UNIT_KNOBS.cc_to_latent(*cc) for cc in REVISITED_CC[:3]])
    peaks = np.array([np.max(np.abs(net.decode(z))) for z in latents])
    expected = net.expected_power(net.params(latents))
    for s, screened, full in zip(net.screens, net.screen_power(latents), expected):
        summed = s.bin_groups @ full @ s.frame_groups.T / s.cells / peaks[:, None, None] ** 2
        loud = summed > summed.max(axis=(1, 2), keepdims=True) * 1e-6
        np.testing.assert_allclose(screened[loud], summed[loud], rtol=0.02)
        log_error = np.abs(np.log(screened + LOG_EPS) - np.log(summed + LOG_EPS))
        assert np.max((log_error * s.cells).sum(axis=(1, 2)) / s.cells.sum()) < 0.01


def test_an_older_envelope_model_is_refused_by_name():
    with pytest.raises(ValueError, match="retrain older envelope models"):
        EnvelopeConfig(n_samples=N, version=1)


torch = pytest.importorskip("torch")
from instrument.training import train_envelope as training  # noqa: E402
from instrument.training.envelope import EnvelopeDecoder  # noqa: E402


def test_numpy_and_torch_agree():
    """Parameters and expected spectrograms within float32; the render goes through numpy's."""
    torch.manual_seed(0)
    decoder = EnvelopeDecoder(SMALL)
    layers = [(layer.weight.detach().numpy(), layer.bias.detach().numpy()) for layer in decoder.layers]
    net = EnvelopeSnare(SMALL, layers)
    z = np.array([[0.2, -0.7], [-1.0, 1.0]], np.float32)
    velocity = np.array([127.0, 45.0], np.float32)
    with torch.no_grad():
        params = decoder(torch.from_numpy(z), torch.from_numpy(velocity))
        expected = [p.numpy() for p in decoder.expected_power(params)]
    for i in range(2):
        ours = net.params(z[i], float(velocity[i]))
        np.testing.assert_allclose(params[0][i].numpy(), ours.log_env, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(params[1][i].numpy(), ours.freq_hz, rtol=1e-5)
        theirs = net.expected_power(net.params(z[i : i + 1], float(velocity[i])))
        for e, t in zip(expected, theirs):
            np.testing.assert_allclose(e[i], t[0], rtol=2e-3, atol=1e-9)
    np.testing.assert_allclose(decoder.render(params)[1], net.decode(z[1], 45.0), atol=2e-3)


def recipe(epochs):
    return training.EnvelopeRecipe(
        "tiny-env", SMALL, epochs=epochs, batch_size=8, eval_every_epochs=4, patience_evals=100, augment_per_clip=1
    )


@pytest.fixture
def data(snare_folder):
    from instrument.training.dataset import load_dataset

    return load_dataset(snare_folder, RATE, N)


def test_short_training_learns_decaying_snares_without_hiss(data, tmp_path):
    untrained = EnvelopeDecoder(SMALL)
    targets = training.log_power(data.val.waves)
    before = float(np.median(training.grid_encode_distance(untrained, targets, data.val.velocity, steps=5)))
    model = load_model(training.train_envelope(recipe(24), data, tmp_path / "tiny-env", progress=False))
    assert model.family == "envelope" and model.meta["training"]["best_val_distance"] < before
    assert model.knobs.warp is not None  # the export evens out the knobs' travel
    assert model.n_variants == 3 and model.plays_velocity
    from instrument.training.sound import tail_db

    for cc in [(0, 0), (127, 127), (0, 127), (127, 0), (64, 64)]:
        wave = model.decode(model.knobs.cc_to_latent(*cc))
        assert np.all(np.isfinite(wave)) and np.max(np.abs(wave)) > 0.05
        # The fixture's snares are silent after 0.5 s: so is every knob position (no hiss floor).
        assert tail_db(wave[None], RATE)[0] < -60.0, cc


def test_layers_of_one_drum_share_a_point(data):
    velocity = np.array([127.0, 40.0, 127.0, 80.0])
    index, hardest = training.drum_index(["a", "a", "b", "a"], velocity)
    assert index.tolist() == [0, 0, 1, 0] and hardest.tolist() == [0, 2]


def test_interrupted_training_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    straight = load_model(training.train_envelope(recipe(8), data, tmp_path / "a" / "tiny-env", progress=False))
    real = training.grid_encode_distance
    calls = {"n": 0}

    def interrupt_once(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during the first validation (epoch 4)
        return real(*args, **kw)

    monkeypatch.setattr(training, "grid_encode_distance", interrupt_once)
    with pytest.raises(UserError, match="resume"):
        training.train_envelope(recipe(8), data, tmp_path / "b" / "tiny-env", progress=False)
    assert (tmp_path / "b" / "tiny-env.ckpt.safetensors").exists()
    resumed = load_model(training.train_envelope(recipe(8), data, tmp_path / "b" / "tiny-env", progress=False))
    for (w1, b1), (w2, b2) in zip(straight.net.layers, resumed.net.layers):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)
