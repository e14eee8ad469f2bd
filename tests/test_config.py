import pytest

from instrument.config import load_config
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


@pytest.mark.parametrize("text,message", [
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
    ("midi:\n  inputs: [3]\n", "midi.inputs must be a list of name patterns"),
])
def test_bad_values_fail_naming_the_key_and_the_allowed_range(tmp_path, text, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path, text))


def test_command_line_overrides_are_validated_too():
    with pytest.raises(UserError, match="audio.block_size"):
        load_config().with_overrides(**{"audio.block_size": 0})
