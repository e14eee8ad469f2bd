"""The envelope snare: numpy/torch parity, determinism across processes, silence where the
envelope is silent, encode finding a rendered point again, and a short training run that resumes."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import pytest

from instrument.errors import UserError
from instrument.model.envelope import EnvelopeConfig, EnvelopeSnare, Params, stft_power
from instrument.model.file import load_model
from instrument.model.knobs import KnobMap

RATE = 32_000  # Nyquist at 16 kHz: the hiss band (8-16 kHz) exists, and the fixture stays small
N = 19_200  # 0.6 s: past the tail window (0.35-0.55 s)
SMALL = EnvelopeConfig(n_samples=N, sample_rate=RATE, n_bands=12, hidden=(24, 24), n_partials=2)
UNIT_KNOBS = KnobMap(np.eye(2), np.array([-1.0, -1.0]), np.array([1.0, 1.0]))


def random_layers(config: EnvelopeConfig, seed: int = 0):
    """An untrained but snare-shaped decoder: random weights around a decaying envelope, so that
    different points give different sounds and envelopes stay smooth in time, as trained ones are."""
    rng = np.random.default_rng(seed)
    widths = config.widths
    layers = [
        (rng.normal(0, 0.5, (b, a)).astype(np.float32), rng.normal(0, 0.1, b).astype(np.float32))
        for a, b in zip(widths[:-1], widths[1:])
    ]
    frame_s = np.arange(config.n_frames) * config.hop / config.sample_rate
    weight, bias = layers[-1]
    head = config.n_bands * config.n_frames
    # Per band, a random mix of smooth shapes over time (not a new random value every frame).
    weight[:head] = (
        rng.normal(0, 0.3, (config.n_bands, 1, weight.shape[1])) * np.cos(np.pi * frame_s / frame_s[-1])[None, :, None]
    ).reshape(head, -1)
    bias[:head] = np.tile(-2.0 - frame_s / 0.08, config.n_bands)
    return layers


def test_the_same_point_renders_the_same_samples_in_another_process():
    here = EnvelopeSnare(SMALL, random_layers(SMALL)).decode([0.3, -0.2])
    code = (
        "import sys, numpy as np; sys.path.insert(0, 'tests'); from test_envelope import SMALL, random_layers; "
        "from instrument.model.envelope import EnvelopeSnare; "
        "sys.stdout.buffer.write(EnvelopeSnare(SMALL, random_layers(SMALL)).decode([0.3, -0.2]).tobytes())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert np.frombuffer(there, dtype=np.float32).tobytes() == here.tobytes()
    assert np.max(np.abs(here)) > 0.01  # a real sound, not two equal silences


def test_silent_envelopes_render_silence_not_hiss():
    """Whatever the point, the render is the envelopes times fixed noise: a band whose envelope is
    at -200 dB contributes nothing, so the tail of a decaying snare is as quiet as its envelope."""
    net = EnvelopeSnare(SMALL, [])
    frames = np.arange(SMALL.n_frames) * SMALL.hop / RATE
    log_env = np.broadcast_to(-frames / 0.02, (SMALL.n_bands, SMALL.n_frames)).copy()  # -434 dB/s
    wave = net.render(Params(log_env, np.array([200.0, 300.0]), np.array([1e-12, 1e-12]), np.array([0.01, 0.01])))
    assert np.max(np.abs(wave[: RATE // 100])) > 0.1
    assert np.max(np.abs(wave[int(0.35 * RATE) :])) < 1e-6


def test_expected_power_matches_the_render():
    """The closed form the model is trained through predicts the render's STFT power (in total per
    frame, within 25 %) at every resolution, for random points."""
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=3))
    for z in ([0.0, 0.0], [0.8, -0.5]):
        wave = net.decode(z)
        expected = net.expected_power(net.params(np.array([z], np.float32)))
        for g, power in zip(net.geometry, expected):
            real = stft_power(wave, g.n_fft, g.hop)
            loud = power[0].sum(0) > power[0].sum(0).max() * 1e-3
            ratio = real.sum(0)[loud] / power[0].sum(0)[loud]
            assert 0.75 < np.median(ratio) < 1.25, (g.n_fft, np.median(ratio))


def test_encode_finds_a_rendered_point_again():
    net = EnvelopeSnare(SMALL, random_layers(SMALL, seed=1))
    for cc in [(20.0, 100.0), (110.0, 30.0)]:
        wave = net.decode(UNIT_KNOBS.cc_to_latent(*cc))
        found = UNIT_KNOBS.latent_to_cc(net.encode(wave, UNIT_KNOBS))
        assert np.max(np.abs(np.array(found) - cc)) <= 3.0, (cc, found)


torch = pytest.importorskip("torch")
from instrument.training import train_envelope as training  # noqa: E402
from instrument.training.envelope import EnvelopeDecoder  # noqa: E402
from instrument.training.envelope import stft_power as torch_stft_power  # noqa: E402


def test_numpy_and_torch_agree():
    """Within float32: a partial's frequency rounds differently on each side (by ~3e-5 Hz at 500 Hz),
    which moves its phase by ~1e-4 rad after 0.6 s; hence a tolerance of 1e-4 of full scale."""
    torch.manual_seed(0)
    decoder = EnvelopeDecoder(SMALL)
    layers = [(layer.weight.detach().numpy(), layer.bias.detach().numpy()) for layer in decoder.layers]
    net = EnvelopeSnare(SMALL, layers)
    z = np.array([[0.2, -0.7], [-1.0, 1.0]], np.float32)
    with torch.no_grad():
        params = decoder(torch.from_numpy(z))
        audio = decoder.render(params).numpy()
        expected = [p.numpy() for p in decoder.expected_power(params)]
        spectra = [torch_stft_power(torch.from_numpy(audio), g.n_fft, g.hop).numpy() for g in net.geometry]
    np.testing.assert_allclose(audio, net.decode(z), rtol=1e-3, atol=1e-4)
    for ours, theirs in zip(expected, net.expected_power(net.params(z))):
        np.testing.assert_allclose(ours, theirs, rtol=2e-3, atol=1e-9)
    for theirs, g in zip(spectra, net.geometry):
        np.testing.assert_allclose(stft_power(audio, g.n_fft, g.hop), theirs, rtol=2e-3, atol=1e-6)


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
    before = float(np.median(training.grid_encode_distance(untrained, targets, steps=5)))
    model = load_model(training.train_envelope(recipe(24), data, tmp_path / "tiny-env", progress=False))
    assert model.family == "envelope" and model.meta["training"]["best_val_distance"] < before
    assert model.knobs.warp is not None  # the export evens out the knobs' travel
    from instrument.training.sound import tail_db

    for cc in [(0, 0), (127, 127), (0, 127), (127, 0), (64, 64)]:
        wave = model.decode(model.knobs.cc_to_latent(*cc))
        assert np.all(np.isfinite(wave)) and np.max(np.abs(wave)) > 0.05
        # The fixture's snares are silent after 0.5 s: so is every knob position (no hiss floor).
        assert tail_db(wave[None], RATE)[0] < -60.0, cc


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
