"""The web page's pure helpers (the page itself is tested in a browser: tests/e2e/test_web.py)."""

from types import SimpleNamespace

import mido
import pytest

from instrument.app.http import shown_name
from instrument.app.web.server import WebPage, _number
from instrument.config import Config
from instrument.host.midi import MidiRouter


@pytest.mark.parametrize(
    "header, shown",
    [
        ("snare.wav", "snare.wav"),
        ("..%2F..%2Fetc%2Fpasswd", "passwd"),
        ("C:%5CUsers%5Cme%5Ckit%5Csnare%2001.wav", "snare 01.wav"),
        (
            "evil%0A%1B%5B2Jname.wav",
            "evil[2Jname.wav",
        ),  # newline and escape removed: no forged log lines or terminal codes
        ("", "upload"),
        (None, "upload"),
        ("%2F", "upload"),
        ("x" * 500 + ".wav", "x" * 80),
    ],
)
def test_browser_file_names_are_only_ever_a_bounded_display_name(header, shown):
    assert shown_name(header) == shown


@pytest.mark.parametrize("value", ["1", None, True, float("nan"), float("inf"), -0.5, 127.5, [1]])
def test_numbers_from_the_page_must_be_finite_and_in_range(value):
    with pytest.raises(ValueError, match="x must be a number in 0..127"):
        _number({"x": value}, "x", 0, 127)
    assert _number({"x": 63.5}, "x", 0, 127) == 63.5


def test_hello_names_the_knobs_midi_learn_assigned_not_the_configured_ones():
    config = Config()
    router = MidiRouter(config, engine=None, on_turn=lambda axis, cc: None)
    router.learn("x", lambda key, number: None)
    router.handle(mido.Message("control_change", control=21, value=64))
    instrument = SimpleNamespace(config=config, router=router, snapshot=dict, program_names=lambda: [config.model])
    hello = WebPage(instrument, config.web)._hello()
    assert hello["cc_names"] == [21, config.midi.cc_y]
