"""A short real training run on files the test writes, resuming, and bad-file handling."""

import logging
import signal

import numpy as np
import pytest
import soundfile as sf

from instrument.errors import UserError
from instrument.model.architecture import ModelConfig
from instrument.model.file import load_model
from instrument.training.dataset import load_dataset

from .conftest import synth_snare

torch = pytest.importorskip("torch")
from instrument.training import train as training  # noqa: E402

N = 2048


def recipe(epochs, **kw):
    return training.Recipe(
        "tiny", ModelConfig("small", "tanh", N), epochs=epochs, batch_size=4, learning_rate=3e-3, **kw
    )


def test_short_training_run_learns_and_ships_a_playable_model(snare_folder, tmp_path):
    data = load_dataset(snare_folder, 44100, N)
    assert len(data.train) + len(data.val) == 12
    assert set(data.train.kits).isdisjoint(data.val.kits)  # whole kits are held out
    untrained = training.SnareAutoencoder(recipe(1).model)
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(
            untrained(torch.from_numpy(data.train.waves))[0], torch.from_numpy(data.train.waves)
        ).item()
    path = training.train(recipe(60), data, tmp_path / "tiny", progress=False)
    model = load_model(path)
    after = float(np.mean((model.decode(model.encode(data.train.waves)) - data.train.waves) ** 2))
    assert after < before
    assert model.meta["corpus"]["sha256"] == data.corpus_hash
    for cc in [(0, 0), (127, 127), (64, 0)]:
        assert np.all(np.isfinite(model.decode_cc(*cc)))


def test_interrupted_run_resumes_to_the_same_weights(snare_folder, tmp_path, monkeypatch):
    data = load_dataset(snare_folder, 44100, N)
    straight = load_model(training.train(recipe(10, augment=True), data, tmp_path / "a" / "tiny", progress=False))

    # Press Ctrl-C (a real SIGINT) during epoch 3, then run the same command again.
    real_sv = training._val_mse
    calls = {"n": 0}

    def interrupt_once(*args):
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGINT)
        return real_sv(*args)

    monkeypatch.setattr(training, "CHECKPOINT_EVERY_EPOCHS", 3)
    monkeypatch.setattr(training, "_val_mse", interrupt_once)

    with pytest.raises(UserError, match="resume"):
        training.train(recipe(10, augment=True), data, tmp_path / "b" / "tiny", progress=False)
    assert (tmp_path / "b" / "tiny.ckpt.safetensors").exists()
    resumed = load_model(training.train(recipe(10, augment=True), data, tmp_path / "b" / "tiny", progress=False))
    for (w1, b1), (w2, b2) in zip(straight.net.decoder.layers, resumed.net.decoder.layers):
        np.testing.assert_array_equal(w1, w2)
        np.testing.assert_array_equal(b1, b2)


def test_bad_files_are_skipped_with_a_warning_naming_them(snare_folder, caplog):
    (snare_folder / "kit0" / "broken.wav").write_bytes(b"RIFF....not audio")
    (snare_folder / "kit1" / "empty.flac").write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        data = load_dataset(snare_folder, 44100, N)
    assert len(data.train) + len(data.val) == 12
    assert "broken.wav" in caplog.text and "empty.flac" in caplog.text


def test_a_folder_of_only_bad_files_stops_with_an_error(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"nope")
    with pytest.raises(UserError, match="none of the 1 files"):
        load_dataset(tmp_path, 44100, N)


def test_a_kit_library_trains_on_its_snares_follows_links_and_says_what_it_found(tmp_path):
    library, elsewhere = tmp_path / "library", tmp_path / "other-drive"
    for kit in ("Rock", "Jazz", "808"):
        folder = elsewhere / kit
        folder.mkdir(parents=True)
        for i, name in enumerate(
            ("Snare-1.wav", "Rimshot.wav", "Kick-Soft.wav", "HiHat_open.wav", "Tom2.wav", "take7.wav")
        ):
            sf.write(folder / name, synth_snare(44100, 0.3, 150 + 40 * i, 0.05, 0.5, seed=i), 44100)
    library.mkdir()
    for kit in ("Rock", "Jazz", "808"):
        (library / kit).symlink_to(elsewhere / kit, target_is_directory=True)  # kits linked in, as on a real drive
    (library / "Rock" / "loop").symlink_to(library, target_is_directory=True)  # a link back up must not loop
    data = load_dataset(library, 44100, N)
    names = data.train.names + data.val.names  # three kits: one is held out
    assert len(names) == 9 and not any(word in n for n in names for word in ("Kick", "HiHat", "Tom"))
    assert data.found.startswith(
        "18 audio files in 3 kit folders: 6 named as snares, rims or claps, 9 as other drums, 3 unnamed"
    )
    assert "--all-files" in data.found
    everything = load_dataset(library, 44100, N, all_files=True)
    assert len(everything.train) + len(everything.val) == 18 and "using all of them" in everything.found


def test_a_corpus_manifest_gives_each_clip_its_velocity_and_its_drum(tmp_path):
    """Layers of one drum (a velocity in the manifest) share a drum; a clip without velocity is a
    hard hit and a drum of its own, even where two files share an instrument name."""
    import csv

    from instrument.training.corpus import sha256_of
    from instrument.training.corpus.manifest import MANIFEST_FIELDS

    rows = [("kit/soft.wav", "Snare", "40", "train"), ("kit/hard.wav", "Snare", "127", "train")]
    rows += [("kit/one.wav", "Clap", "", "train"), ("kit/two.wav", "Clap", "", "val")]
    (tmp_path / "kit").mkdir()
    with open(tmp_path / "manifest.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        for i, (path, instrument, velocity, split) in enumerate(rows):
            sf.write(tmp_path / path, synth_snare(44100, 0.2, 200 + 30 * i, 0.05, 0.5, seed=i), 44100)
            writer.writerow(
                {"path": path, "kit": "kit", "instrument": instrument, "license": "CC0", "split": split}
                | {"sha256": sha256_of(tmp_path / path), "velocity": velocity}
            )
    data = load_dataset(tmp_path, 44100, N)
    assert data.train.velocity.tolist() == [40.0, 127.0, 127.0]
    assert data.train.drums == ["kit/Snare", "kit/Snare", "kit/one.wav"]
    assert data.val.drums == ["kit/two.wav"]
