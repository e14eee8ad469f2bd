"""Every remote command, typed as a user types it: the installed `latent-snare` console script
talking to the running service over its control socket. And a second `run` is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instrument.config import load_config

from ..jackrig import SERVER_NAME, ServiceProcess, service_state, wait_for
from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).with_name("latent-snare")
DEFAULT = load_config()


def typed(*args, timeout_s: float = 60):
    """`latent-snare ARGS` as a subprocess on the rig's JACK server."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=SERVER_NAME)
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout_s, env=env)


def ok(*args) -> str:
    done = typed(*args)
    assert done.returncode == 0 and done.stderr == "", f"latent-snare {args}: {done.stdout}{done.stderr}"
    return done.stdout


def refused(*args, needle: str) -> str:
    done = typed(*args)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert needle in done.stderr, done.stderr
    return done.stderr


def test_status_line_and_json(service):
    line = ok("status")
    assert DEFAULT.model in line and "CC" in line
    state = json.loads(ok("status", "--json"))
    assert state["model"] == DEFAULT.model and len(state["cc"]) == 2


def test_model_lists_the_programs_and_switches_by_number_and_name(service):
    listing = ok("model").splitlines()
    programs = list(DEFAULT.midi.programs)
    assert [line.split(": ")[1] for line in listing] == programs
    assert listing[0].startswith(">") and "program 0" in listing[0]
    assert ok("model", 1).strip() == f"model {programs[1]}"
    wait_for(lambda: service_state()["model"] == programs[1], what="program 1 to play")
    assert ok("model").splitlines()[1].startswith(">")
    ok("model", programs[0])
    wait_for(lambda: service_state()["model"] == programs[0], what="program 0 by name to play")
    refused("model", 9, needle=f"programs 0..{len(programs) - 1}")


def test_loop_on_at_a_tempo_off_and_a_bad_tempo(service):
    assert ok("loop", "on", "--bpm", 123).strip() == "loop on at 123 bpm"
    assert service_state()["loop"] and service_state()["bpm"] == 123
    assert ok("loop", "off").strip() == "loop off"
    assert not service_state()["loop"]
    refused("loop", "on", "--bpm", 9999, needle="allowed 20..400")
    assert not service_state()["loop"]  # a refused command changes nothing


def test_save_history_and_recall(service, user_folders, tmp_path):
    config = tmp_path / "save.yaml"
    config.write_text(f"save:\n  folder: {user_folders['save']}\n")
    before = service_state()
    saved = ok("save")
    assert saved.startswith("saved #") and str(user_folders["save"]) in saved
    number = int(saved.split("#")[1].split(":")[0])
    assert f"#{number:<4d}" in ok("history", "--config", config)
    ok("model", 1)  # move away in model, then come back by recall
    wait_for(lambda: service_state()["model"] != before["model"], what="the other model")
    assert ok("recall", number).startswith(f"recalled #{number}")
    wait_for(
        lambda: service_state()["model"] == before["model"] and service_state()["cc"] == before["cc"],
        what="the recalled snare",
    )
    refused("recall", 9999, needle="no saved snare number 9999")


def test_learn_with_nothing_moving_times_out_in_one_line(service):
    refused("learn", "x", "--timeout", 0.5, needle="learn x: no free control moved within 0.5 s")


def test_a_command_with_no_instrument_says_how_to_start_one(service, tmp_path):
    refused("status", "--socket", tmp_path / "nobody.sock", needle="latent-snare run")


def test_a_second_run_is_refused_unless_it_has_its_own_port_and_socket(service, tmp_path):
    base = ["run", "--midi-api", "jack", "--audio-backend", "jack", "--no-status", "--web-port", 0]
    stderr = refused(*base, needle=f"(PID {service.proc.pid})")
    assert "--virtual-port and --socket" in stderr
    refused(
        *base,
        "--socket",
        tmp_path / "own.sock",
        needle=f"MIDI port '{DEFAULT.midi.virtual_port}' (PID {service.proc.pid})",
    )
    other = tmp_path / "other.sock"
    second = ServiceProcess(
        ["--virtual-port", "Latent Snare Two", "--socket", str(other)], log_path=ARTIFACTS / "service-second.log"
    )
    try:
        assert json.loads(ok("status", "--json", "--socket", other))["inputs"] != service_state()["inputs"]
    finally:
        assert second.stop() == 0
