"""The command-line contract, run as a user would, with torch made unimportable."""

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from instrument.config import load_config

from .conftest import synth_snare

NO_TORCH = "import sys; sys.modules['torch'] = None; from instrument.app.cli import main; sys.exit(main(sys.argv[1:]))"


def cli(*args):
    return subprocess.run([sys.executable, "-c", NO_TORCH, *map(str, args)], capture_output=True, text=True, timeout=60)


def test_render_writes_a_snare_without_torch(tmp_path):
    out = tmp_path / "a.wav"
    result = cli("render", "--cc", 0, 127, "--velocity", 100, out)
    assert result.returncode == 0, result.stderr
    wave, rate = sf.read(out)
    assert rate == 44100 and wave.ndim == 1 and 0.05 < np.abs(wave).max() <= 10 ** (load_config().audio.ceiling_db / 20)


def test_encode_json_gives_latent_and_cc_that_render_back(tmp_path):
    snare = tmp_path / "in.wav"
    sf.write(snare, synth_snare(48000, 0.5, 180, 0.08, 0.5, seed=4), 48000)
    result = cli("encode", "--json", snare)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["latent"]) == 2 and all(0 <= c <= 127 for c in data["cc"])
    assert cli("render", "--latent", *data["latent"], tmp_path / "back.wav").returncode == 0


def test_encode_of_a_broken_file_is_one_line_and_non_zero(tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("shopping list")
    result = cli("encode", bad)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and str(bad) in result.stderr and "Traceback" not in result.stderr


def test_a_pickle_model_is_refused_with_one_line(tmp_path):
    evil = tmp_path / "model.pt"
    evil.write_bytes(b"\x80\x04N.")
    result = cli("render", "--model", evil, "--cc", 1, 1, tmp_path / "x.wav")
    assert result.returncode == 2 and "refused" in result.stderr and "Traceback" not in result.stderr


def test_out_of_range_cc_is_rejected_by_the_parser(tmp_path):
    result = cli("render", "--cc", 0, 300, tmp_path / "x.wav")
    assert result.returncode == 2 and "0..127" in result.stderr


def test_every_command_has_help():
    for command in ("run", "devices", "render", "encode", "corpus", "train", "zoo", "evaluate"):
        result = cli(command, "--help")
        assert result.returncode == 0 and "usage: latent-snare" in result.stdout
