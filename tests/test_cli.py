"""The command-line contract, run as a user would, with torch made unimportable."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrument.app.cli import build_parser
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


def assert_one_line_error(result, *names):
    """Exit 2, one line on stderr, no traceback, and the line names each of `names`."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert str(name) in result.stderr, (name, result.stderr)


def test_render_writes_flac_and_ogg_with_the_metadata_that_recalls_them(tmp_path):
    for name, subtype in (("a.flac", "PCM_24"), ("a.ogg", "VORBIS"), ("a.WAV", "PCM_24")):
        out = tmp_path / name
        result = cli("render", "--cc", 30, 90, out)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        with sf.SoundFile(out) as f:
            assert f.subtype == subtype and f.frames > 1000
            assert json.loads(f.copy_metadata()["comment"])["cc"] == [30, 90]


def test_render_refuses_other_names_in_one_line_and_creates_no_folder(tmp_path):
    for name in ("a.mp3", "a.txt", "noext"):
        assert_one_line_error(cli("render", "--cc", 1, 1, tmp_path / name), tmp_path / name, ".wav")
    missing = tmp_path / "no-such-dir" / "x.wav"
    assert_one_line_error(cli("render", "--cc", 1, 1, missing), "no such folder")
    assert not missing.parent.exists()
    assert_one_line_error(cli("render", "--cc", 1, 1, tmp_path), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_training_without_torch_names_the_install_command(tmp_path):
    for command in (["train", "--data", tmp_path, "--epochs", 1], ["evaluate", "--zoo", tmp_path]):
        assert_one_line_error(
            cli(*command), "needs the training extra", "make setup-train", "download.pytorch.org/whl/cpu"
        )


def test_a_model_that_is_not_one_is_named_as_typed(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert_one_line_error(
        cli("render", "--model", notes, "--cc", 1, 1, tmp_path / "x.wav"), f"{notes}: not a model", "env-small"
    )
    result = cli("render", "--model", "no-such", "--cc", 1, 1, tmp_path / "x.wav")
    assert_one_line_error(result, "no-such: no such model", "env-small")
    assert ".safetensors:" not in result.stderr


def test_invalid_yaml_names_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("midi:\n  cc_x: 20\n  cc_y: [21\n")
    assert_one_line_error(cli("render", "--config", bad, "--cc", 1, 1, tmp_path / "x.wav"), bad, "line 4")


def test_a_midi_api_this_platform_lacks_is_refused(tmp_path):
    for command in (["run", "--midi-api", "coremidi", "--no-status"], ["devices", "--midi-api", "coremidi"]):
        result = cli(*command)
        assert_one_line_error(result, "midi.api coremidi is not available on Linux", "alsa, jack")
        assert "Audio outputs" not in result.stdout


def test_devices_lists_without_c_library_noise():
    result = cli("devices")
    assert result.returncode == 0 and "Audio outputs" in result.stdout and "MIDI inputs" in result.stdout
    assert result.stderr == "", result.stderr


def test_render_variants_differ_repeat_exactly_and_a_missing_one_is_one_line(tmp_path):
    hits = []
    for name, variant in (("a", 0), ("b", 1), ("c", 1)):
        assert cli("render", "--cc", 40, 90, "--variant", variant, tmp_path / f"{name}.wav").returncode == 0
        hits.append(sf.read(tmp_path / f"{name}.wav")[0])
    assert not np.array_equal(hits[0], hits[1]) and np.array_equal(hits[1], hits[2])
    result = cli("render", "--cc", 40, 90, "--variant", 9, tmp_path / "d.wav")
    assert result.returncode != 0 and "has round robins 0..3" in result.stderr and "Traceback" not in result.stderr


def test_render_refuses_a_latent_point_the_knobs_do_not_reach_or_nan_in_one_line(tmp_path):
    for point in (("5", "5"), ("nan", "0"), ("inf", "1")):
        result = cli("render", "--latent", *point, tmp_path / "x.wav")
        assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
        last = result.stderr.strip().splitlines()[-1]  # argparse's usage above it, for a bad number
        assert "finite number" in last or "outside what" in last, result.stderr
    assert "outside what" in cli("render", "--latent", 5, 5, tmp_path / "x.wav").stderr
    assert not (tmp_path / "x.wav").exists()


SCRIPT = Path(sys.executable).with_name("latent-snare")  # the installed console script, as a musician types it


def typed(*args):
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_a_bad_number_says_what_is_allowed_not_an_internal_name(tmp_path):
    for args, allowed in (
        (["render", "--cc", "abc", 3], "a knob position is a number 0..127, got 'abc'"),
        (["render", "--cc", 3, 3, "--velocity", "loud"], "velocity is a whole number 1..127, got 'loud'"),
        (["render", "--latent", "abc", 0], "a latent coordinate is a number, got 'abc'"),
    ):
        result = typed(*args, tmp_path / "x.wav")
        assert result.returncode == 2 and allowed in result.stderr, result.stderr
        assert "invalid _" not in result.stderr and "Traceback" not in result.stderr
    result = typed("loop", "maybe")
    assert result.returncode == 2 and "argument state" not in result.stderr, result.stderr
    assert "on|off|toggle: invalid choice: 'maybe'" in result.stderr


def test_an_unknown_flag_shows_its_own_commands_usage():
    result = typed("run", "--foo")
    assert result.returncode == 2, result.stderr
    assert (
        result.stderr.startswith("usage: latent-snare run ")
        and "latent-snare run: error: unrecognized arguments: --foo" in result.stderr
    )


def test_version_names_the_program_and_its_file_reader():
    result = typed("--version")
    assert result.returncode == 0 and re.match(r"latent-snare \d+\.\d+\.\d+ \(libsndfile \S+ ", result.stdout), (
        result.stdout
    )


def test_every_command_says_what_it_does_and_explains_every_argument():
    parser = build_parser()
    commands = parser.get_default("command_parsers")
    for name, command in commands.items():
        lines = typed(name, "-h").stdout.split("\n\n")
        assert lines[0].startswith(f"usage: latent-snare {name}") and lines[1].strip().endswith("."), (name, lines[:2])
        for action in command._actions:
            assert action.help, f"{name} {action.dest}: no help"
    assert "with nothing, toggle" in typed("loop", "-h").stdout
    assert "2 to 32" in typed("pack", "-h").stdout
    assert "the MIDI system" in typed("run", "-h").stdout and "the MIDI system" in typed("devices", "-h").stdout
    overview = typed("-h").stdout
    assert "latent plane" in overview and "map" in overview  # the jargon, with a plain word beside it


def test_devices_opens_with_the_devices():
    result = typed("devices")
    assert result.returncode == 0 and result.stdout.startswith("Audio outputs"), result.stdout


def test_an_unreadable_file_is_named_once(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list")
    result = typed("encode", notes)
    assert_one_line_error(result, notes, "Format not recognised")
    assert result.stderr.count(str(notes)) == 1 and "Error opening" not in result.stderr, result.stderr


def run_without_a_jack_server(runtime_dir: Path, control_socket: Path):
    """`run --audio-backend jack` where no JACK server answers (a server name nobody runs), with
    `runtime_dir` as the user's runtime folder, where a desktop's PipeWire keeps its socket."""
    env = {**os.environ, "JACK_DEFAULT_SERVER": "latent-snare-nobody", "XDG_RUNTIME_DIR": str(runtime_dir)}
    env.pop("PIPEWIRE_REMOTE", None)
    env.pop("PIPEWIRE_RUNTIME_DIR", None)
    command = [sys.executable, "-c", NO_TORCH, "run", "--audio-backend", "jack", "--no-status", "--web-port", "0"]
    command += ["--socket", str(control_socket)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_no_jack_server_beside_pipewire_points_to_pw_jack_without_libjacks_own_lines(tmp_path):
    pytest.importorskip("jack", reason="JACK-Client and libjack (pip install -e .[test], apt-get install jackd2)")
    with socket.socket(socket.AF_UNIX) as pipewire:  # a PipeWire server's socket, as a desktop session has it
        pipewire.bind(str(tmp_path / "pipewire-0"))
        result = run_without_a_jack_server(tmp_path, tmp_path / "control.sock")
    assert_one_line_error(result, "no JACK server answers", "pw-jack latent-snare run")
    assert "pipewire-alsa" in result.stderr and "Cannot connect" not in result.stderr

    (tmp_path / "no-pipewire-here").mkdir()
    without = run_without_a_jack_server(tmp_path / "no-pipewire-here", tmp_path / "control.sock")
    assert_one_line_error(without, "no JACK server answers: start jackd")
    assert "pw-jack" not in without.stderr


def test_site_writes_a_static_site_replaces_its_own_and_never_a_folder_of_the_users(tmp_path):
    out = tmp_path / "www"
    first = cli("site", "--model", "env-small", out)
    assert first.returncode == 0, first.stderr
    listed = json.loads((out / "site.json").read_text())["files"]
    assert {"index.html", "static/snare-model.js", "models/env-small.safetensors", "map/env-small.png"} <= set(listed)
    assert '<meta name="latent-snare-site"' in (out / "index.html").read_text()
    (out / "notes.txt").write_text("mine")  # a file of the user's, beside the site
    again = cli("site", "--model", "env-small", out)
    assert again.returncode == 0, again.stderr
    assert (out / "notes.txt").read_text() == "mine", "replacing a site removed a file it did not write"
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "song.wav").write_bytes(b"RIFF")
    refused = cli("site", theirs)
    assert refused.returncode != 0 and refused.stderr.count("\n") == 1 and "not a Latent Snare site" in refused.stderr
    assert [p.name for p in theirs.iterdir()] == ["song.wav"]
    missing = cli("site", "--model", "no-such-model", tmp_path / "www2")
    assert missing.returncode != 0 and "no-such-model" in missing.stderr and not (tmp_path / "www2").exists()
