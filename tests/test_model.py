"""The nine seed architectures, numpy-vs-torch parity, and the model file format."""

import json
import pickle

import numpy as np
import pytest

from instrument.errors import UserError
from instrument.model.architecture import HIDDEN, ModelConfig
from instrument.model.file import available_models, load_model, save_model
from instrument.model.knobs import fit_knob_map

torch = pytest.importorskip("torch")
from instrument.training.autoencoder import SnareAutoencoder  # noqa: E402

N = 1024
ALL_CONFIGS = [ModelConfig(size, act, N) for size in HIDDEN for act in ("relu", "tanh", "sig")] + [
    ModelConfig("med", "tanh", N, variational=True)
]


def export(model: SnareAutoencoder, path):
    rng = np.random.default_rng(0)
    knobs = fit_knob_map(rng.normal(size=(10, 2)), rng.normal(size=10), rng.normal(size=10))
    meta = {"name": path.stem, "architecture": model.config.to_dict(), "sample_rate": 44100, "knobs": knobs.to_dict()}
    save_model(path, {k: v.detach().numpy() for k, v in model.state_dict().items()}, meta)
    return path.with_suffix(".safetensors")


@pytest.mark.parametrize(
    "config", ALL_CONFIGS, ids=lambda c: f"{c.size}-{c.activation}{'-vae' if c.variational else ''}"
)
def test_shapes_follow_the_seed_design(config):
    model = SnareAutoencoder(config)
    hidden = list(HIDDEN[config.size])
    assert [layer.out_features for layer in model.encoder] == hidden + [4 if config.variational else 2]
    assert [layer.out_features for layer in model.decoder] == hidden[::-1] + [N]
    recon, mean, _ = model.eval()(torch.zeros(3, N))
    assert recon.shape == (3, N) and mean.shape == (3, 2)
    assert sum(p.numel() for p in model.parameters()) == config.n_parameters


def test_decoder_output_is_signed_and_the_seed_latent_is_activated():
    torch.manual_seed(0)
    model = SnareAutoencoder(ModelConfig("small", "sig", N)).eval()
    recon, latent, _ = model(torch.randn(8, N))
    assert torch.all((latent > 0) & (latent < 1))  # sigmoid on the latent, as in the seed
    assert recon.min() < 0 < recon.max()  # the last decoder layer is linear


@pytest.mark.parametrize(
    "config", ALL_CONFIGS, ids=lambda c: f"{c.size}-{c.activation}{'-vae' if c.variational else ''}"
)
def test_numpy_decoder_equals_torch_forward(tmp_path, config):
    torch.manual_seed(1)
    model = SnareAutoencoder(config).eval()
    np_model = load_model(export(model, tmp_path / "m"))
    waves = torch.randn(4, N) * 0.3
    latents = torch.randn(5, 2)
    with torch.no_grad():
        mean, _ = model.encode(waves)
        decoded = model.decode(latents)
    np.testing.assert_allclose(np_model.encode(waves.numpy()), mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(np_model.decode(latents.numpy()), decoded.numpy(), atol=1e-5)
    np.testing.assert_allclose(np_model.decode(latents.numpy()[0]), decoded.numpy()[0], atol=1e-5)


@pytest.fixture
def model_file(tmp_path):
    return export(SnareAutoencoder(ModelConfig("small", "tanh", N)), tmp_path / "tiny")


def test_pickle_posing_as_a_model_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for name in ("evil.pt", "evil.safetensors"):
        path = tmp_path / name
        path.write_bytes(pickle.dumps(Payload()))
        path.with_suffix(".json").write_text("{}")
        with pytest.raises(UserError, match="pickle|refused"):
            load_model(path)
    assert not marker.exists()


def test_truncated_weights_name_the_file(model_file):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=str(model_file)):
        load_model(model_file)


def test_architecture_mismatch_is_reported(model_file):
    meta_path = model_file.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["architecture"]["size"] = "med"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="missing tensor|shape"):
        load_model(model_file)


def test_missing_model_lists_the_shipped_ones(tmp_path):
    shipped = available_models()
    assert shipped, "models/ ships at least one model"
    with pytest.raises(UserError, match="no such model") as refused:
        load_model(tmp_path / "nothing.safetensors")
    assert f"a name from models/: {', '.join(shipped)})" in str(refused.value)
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes(b"")
    with pytest.raises(UserError, match="lonely.json: missing"):
        load_model(lonely)


def test_wrong_format_version_is_refused(model_file):
    meta_path = model_file.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UserError, match="format_version"):
        load_model(model_file)


def test_a_model_whose_knobs_do_nothing_is_never_chosen_as_default():
    from instrument.training.evaluate import choose_default

    def metrics(log_stft, corner, mb=4.0, attack=0.0):
        return {
            "val": {"log_stft": log_stft},
            "file_mb": mb,
            "grid": {"all_finite": True, "silent": 0, "corner_log_stft": corner, "corner_attack_correlation": attack},
        }

    results = {
        "collapsed": metrics(2.0, 0.0001),
        "too-big": metrics(2.5, 1.0, mb=100),
        "playable": metrics(4.0, 1.0),
        "same-attack-everywhere": metrics(3.0, 1.0, attack=0.99),
    }
    assert choose_default(results) == "playable"


def test_a_hissing_model_is_never_chosen_over_one_that_decays_to_silence():
    from instrument.training.evaluate import choose_default

    def metrics(log_stft, tail_db):
        return {
            "val": {"log_stft": log_stft},
            "file_mb": 4.0,
            "sound": {"tail_db_worst": tail_db},
            "grid": {"all_finite": True, "silent": 0, "corner_log_stft": 1.0, "corner_attack_correlation": 0.0},
        }

    assert choose_default({"hiss": metrics(1.0, -41.0), "quiet": metrics(1.5, -70.0)}) == "quiet"
    assert choose_default({"hiss": metrics(1.0, -41.0), "more-hiss": metrics(1.5, -30.0)}) == "hiss"


def test_a_model_whose_harder_hits_are_darker_is_not_chosen_over_one_that_brightens():
    from instrument.training.evaluate import choose_default

    def metrics(log_stft, same_direction):
        return {
            "val": {"log_stft": log_stft},
            "file_mb": 1.0,
            "sound": {"tail_db_worst": -70.0, "val_log_stft": log_stft},
            "grid": {"all_finite": True, "silent": 0, "corner_log_stft": 1.0, "corner_attack_correlation": 0.0},
            "feel": {"velocity": {"held_out": {"pairs": 7, "same_direction": same_direction}}},
        }

    assert choose_default({"backwards": metrics(0.28, 0.29), "brightens": metrics(0.32, 0.86)}) == "brightens"
    # Where no model brightens the held-out drums, the closest one still ships.
    assert choose_default({"a": metrics(0.28, 0.29), "b": metrics(0.32, 0.4)}) == "a"
