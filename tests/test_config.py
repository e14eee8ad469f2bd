import pytest

from instrument.config import load_config, save_user_settings, user_config_path
from instrument.errors import UserError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_load_and_a_user_file_overrides_only_its_keys(tmp_path):
    default = load_config()
    custom = load_config(write(tmp_path, "audio:\n  block_size: 64\n"))
    assert custom.audio.block_size == 64
    assert custom.midi == default.midi


@pytest.mark.parametrize(
    "text,message",
    [
        ("audio:\n  block_size: 0\n", "audio.block_size must be in range 16..4096"),
        ("audio:\n  gain_db: 1000000\n", "audio.gain_db must be in range"),
        ("midi:\n  cc_x: 300\n", "midi.cc_x must be in range 0..119"),
        ("midi:\n  channel: 17\n", "midi.channel must be 'omni' or a channel 1..16"),
        ("midi:\n  api: winmm\n", "midi.api must be one of auto, alsa, jack, coremidi"),
        ("audo:\n  block_size: 64\n", "unknown key 'audo'"),
        ("audio:\n  block_size: fast\n", "audio.block_size must be int"),
        ("!!python/object/apply:os.system ['touch /tmp/x']\n", "not valid YAML"),
        ("- a list\n", "must be a mapping"),
        ("midi:\n  trigger_notes: [38, 300]\n", "midi.trigger_notes must be a list of notes 0..127"),
        ("midi:\n  inputs: [3]\n", "midi.inputs must be a list of names"),
        ("midi:\n  software_inputs: Hydrogen\n", "midi.software_inputs must be a list, got 'Hydrogen'"),
        ("midi:\n  software_inputs: ['']\n", "midi.software_inputs must be a list of names"),
        ("loop:\n  bpm: 401\n", "loop.bpm must be in range 20.0..400.0"),
    ],
)
def test_bad_values_fail_naming_the_key_and_the_allowed_range(tmp_path, text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path, text))


def test_command_line_overrides_are_validated_too():
    with pytest.raises(UserError, match="audio.block_size"):
        load_config().with_overrides(**{"audio.block_size": 0})


def test_learned_settings_persist_in_the_user_file_under_an_explicit_config(tmp_path):
    user = tmp_path / "user.yaml"
    save_user_settings({"midi.cc_x": 21, "midi.cc_y": 22}, user)
    save_user_settings({"save.cc": 64}, user)  # a second learn keeps the first one's keys
    learned = load_config(user_path=user)
    assert (learned.midi.cc_x, learned.midi.cc_y, learned.save.cc) == (21, 22, 64)
    over = load_config(write(tmp_path, "midi:\n  cc_x: 30\n"), user_path=user)
    assert (over.midi.cc_x, over.midi.cc_y) == (30, 22), "--config is laid over what was learned"


def test_the_learn_file_is_left_out_where_asked_unless_named(tmp_path):
    user = tmp_path / "user.yaml"
    save_user_settings({"midi.cc_x": 21}, user)
    assert load_config(user_path=user, learned=False).midi.cc_x == load_config(user_path=tmp_path / "none").midi.cc_x
    assert load_config(user, user_path=user, learned=False).midi.cc_x == 21


def test_a_broken_user_file_is_named_and_an_invalid_setting_is_never_written(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("midi:\n  cc_x: 500\n")
    with pytest.raises(UserError, match=f"{user}: midi.cc_x must be in range 0..119"):
        load_config(user_path=user)
    user.unlink()
    with pytest.raises(UserError, match="midi.cc_y must be in range"):
        save_user_settings({"midi.cc_y": 128}, user)
    assert not user.exists()


def test_the_user_file_follows_xdg_config_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert user_config_path() == tmp_path / "latent-snare" / "config.yaml"
