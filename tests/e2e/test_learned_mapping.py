"""What one player taught the instrument with `learn` stays theirs: `serve` (every visitor's page)
and `pack` (a shared sample pack's map) read the mapping they were given, not the learn file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from instrument.config import load_config, save_user_settings

from ..serveproc import Serve, http
from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).with_name("latent-snare")
LEARNED_CC = (21, 22)
DEFAULT = load_config(learned=False)


@pytest.fixture
def learned_home(tmp_path, monkeypatch):
    """A user who ran `latent-snare learn x y` and moved CC 21 and 22 (in this test's own config home)."""
    home = tmp_path / "config-home"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    learn_file = save_user_settings({"midi.cc_x": LEARNED_CC[0], "midi.cc_y": LEARNED_CC[1]})
    assert learn_file.is_relative_to(home) and (DEFAULT.midi.cc_x, DEFAULT.midi.cc_y) != LEARNED_CC
    return learn_file


def served_mapping(args: list[str], name: str) -> tuple[int, int]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    svc = Serve(args, ARTIFACTS / f"serve-{name}.log")
    try:
        status, body, _ = http(svc.url, "/settings")
        assert status == 200, body
        settings = json.loads(body)
        return settings["midi"]["cc_x"], settings["midi"]["cc_y"]
    finally:
        assert svc.stop() == 0


def test_serve_gives_every_visitor_the_configured_mapping_not_a_learned_one(learned_home):
    assert served_mapping([], "learned-ignored") == (DEFAULT.midi.cc_x, DEFAULT.midi.cc_y)
    # Asked for by name, the learn file is read like any other --config.
    assert served_mapping(["--config", str(learned_home)], "learned-asked") == LEARNED_CC


def pack_map_labels(outdir: Path, *config: str) -> str:
    done = subprocess.run(
        [str(SCRIPT), "pack", "--grid", "2", *config, str(outdir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    with Image.open(outdir / "latent-map.png") as png:
        return png.info["Description"], done.stdout


def test_pack_labels_its_map_with_the_mapping_it_was_asked_for(learned_home, tmp_path):
    labels, said = pack_map_labels(tmp_path / "plain")
    assert labels == f"x: CC {DEFAULT.midi.cc_x}, y: CC {DEFAULT.midi.cc_y}"
    assert f"labelled CC {DEFAULT.midi.cc_x} and CC {DEFAULT.midi.cc_y}, from config/default.yaml" in said
    labels, said = pack_map_labels(tmp_path / "asked", "--config", str(learned_home))
    assert labels == f"x: CC {LEARNED_CC[0]}, y: CC {LEARNED_CC[1]}" and str(learned_home) in said
