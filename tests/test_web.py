"""The web page's pure helpers (the page itself is tested in a browser: tests/e2e/test_web.py)."""

import pytest

from instrument.app.web.server import _number, shown_name


@pytest.mark.parametrize("header, shown", [
    ("snare.wav", "snare.wav"),
    ("..%2F..%2Fetc%2Fpasswd", "passwd"),
    ("C:%5CUsers%5Cme%5Ckit%5Csnare%2001.wav", "snare 01.wav"),
    ("evil%0A%1B%5B2Jname.wav", "evil[2Jname.wav"),  # newline and escape removed: no forged log lines or terminal codes
    ("", "upload"),
    (None, "upload"),
    ("%2F", "upload"),
    ("x" * 500 + ".wav", "x" * 80),
])
def test_browser_file_names_are_only_ever_a_bounded_display_name(header, shown):
    assert shown_name(header) == shown


@pytest.mark.parametrize("value", ["1", None, True, float("nan"), float("inf"), -0.5, 127.5, [1]])
def test_numbers_from_the_page_must_be_finite_and_in_range(value):
    with pytest.raises(ValueError, match="x must be a number in 0..127"):
        _number({"x": value}, "x", 0, 127)
    assert _number({"x": 63.5}, "x", 0, 127) == 63.5
