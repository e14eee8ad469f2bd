"""Faults the running instrument must survive: its JACK server dying and coming back."""

from __future__ import annotations

import time

import pytest

from .conftest import ARTIFACTS
from .listen import assert_matches, expected_snare, hit, set_knobs
from .rig import Rig, ServiceProcess, start_jackd, stop_process

pytestmark = pytest.mark.e2e

SERVER = "latent-snare-faults"  # its own server: killing it must not disturb the other tests


def wait_for_line(service, text, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(text in line for line in service.lines):
            return time.monotonic()
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} from the service within {timeout_s} s; it said {service.lines[-5:]}")


def test_the_instrument_survives_its_jack_server_dying_and_coming_back(jack_server, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "faults.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    jackd = start_jackd(name=SERVER)
    service = ServiceProcess(["--config", str(config), "--audio-backend", "jack"], server=SERVER,
                             log_path=ARTIFACTS / "service-faults.log")
    try:
        rig = Rig(server=SERVER)
        set_knobs(rig, 0, 0)  # away from the centre the service starts at
        hit(rig)
        rig.close()

        jackd.kill()  # the server crashes: no goodbye to its clients
        killed_at = time.monotonic()
        jackd.wait()
        noticed_at = wait_for_line(service, "JACK server went away", timeout_s=5)
        assert noticed_at - killed_at <= 1.0, f"noticed {noticed_at - killed_at:.2f} s after the server died"

        jackd = start_jackd(name=SERVER)
        back_at = time.monotonic()
        reopened_at = wait_for_line(service, "JACK is back", timeout_s=10)
        assert reopened_at - back_at <= 5.0, f"reopened {reopened_at - back_at:.2f} s after the server came back"

        rig = Rig(server=SERVER)
        try:
            # The knob position survived, and the sound is that position's snare.
            assert_matches(hit(rig)[1], expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127))
        finally:
            rig.close()
    finally:
        code = service.stop()
        stop_process(jackd)
    assert code == 0, f"the service did not stop cleanly after the restart: {service.log_path.read_text()[-1500:]}"
