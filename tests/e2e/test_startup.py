"""What the instrument says at start-up about its audio server."""

from __future__ import annotations

import time

import pytest

from instrument.app.service import NOT_REALTIME_WARNING

from ..jackrig import ServiceProcess, start_jackd, stop_process
from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

SERVER = "latent-snare-startup"  # its own server: the others run real-time


@pytest.mark.parametrize("realtime", [False, True], ids=["no-realtime", "realtime"])
def test_a_jack_server_that_is_not_real_time_is_named_once_at_start_up(jack_server, tmp_path_factory, realtime):
    config = tmp_path_factory.mktemp("config") / "startup.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    jackd = start_jackd(name=SERVER, realtime=realtime)
    service = ServiceProcess(
        ["--config", str(config), "--audio-backend", "jack"],
        server=SERVER,
        log_path=ARTIFACTS / f"service-startup-{'rt' if realtime else 'no-rt'}.log",
    )
    try:
        time.sleep(1.5)  # six status intervals: the warning is said at start-up, not on every tick
    finally:
        service.stop()
        stop_process(jackd)
    warnings = [line for line in service.lines if NOT_REALTIME_WARNING in line]
    assert len(warnings) == (0 if realtime else 1), service.lines
    if warnings:
        assert "jackd with -R" in warnings[0]  # the one-line fix comes with it
