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


KNOB_TURNS = 7
STARTS = 3  # a cold first decode is slow at every start; a busy machine's spike hits one at random


def test_the_first_decode_it_reports_is_as_quick_as_the_ones_after(jack_server, tmp_path_factory):
    """The decoder is warmed before the ready line: the first figure the status shows is a warm
    decode, not the 100 ms cold one a player would take for the instrument's speed."""
    from ..jackrig import Rig, service_state
    from .listen import set_knobs

    config = tmp_path_factory.mktemp("config") / "warm.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    firsts = []
    for start in range(STARTS):
        service = ServiceProcess(
            ["--config", str(config), "--audio-backend", "jack"], log_path=ARTIFACTS / "service-warm.log"
        )
        try:
            first = service_state()
            assert first["decodes"] == 1, first  # what the status says before any knob moved
        except BaseException:
            service.stop()
            raise
        firsts.append(first["decode_ms"])
        if start < STARTS - 1:  # the last one stays to play the knob turns
            service.stop()
    rig = None
    try:
        rig = Rig(audio_sources=(service.audio_source,))
        later = []
        for n in range(KNOB_TURNS):
            set_knobs(rig, 10 + 15 * n, 100 - 10 * n)  # waits on the instrument's own published position
            later.append(service_state()["decode_ms"])
    finally:
        if rig:
            rig.close()
        service.stop()
    typical = sorted(later)[len(later) // 2]
    # Cold, the first was 40x the median (113 ms against 2.5); warm, it is one of them. The bound
    # leaves room for a busy machine's spikes, which hit any decode alike; the best of a few starts
    # is compared, since one start's single figure may fall on a spike (16 ms against 2 in a loaded run).
    best = min(firsts)
    assert best <= 4 * max(later) and best <= 10 * typical, (firsts, later)


def test_a_stall_of_the_machines_is_counted_beside_our_own_xruns_not_in_them(jack_server, tmp_path_factory):
    """A stalled audio process (SIGSTOP, as a busy machine's scheduler would) misses cycles: they are
    the machine's (`skipped_cycles` in status --json), not the status line's own xruns, which count
    only cycles our own work made late, and the dropout advice waits for one of those."""
    import os
    import signal

    from ..jackrig import service_state, wait_for
    from .test_faults import wait_stopped

    config = tmp_path_factory.mktemp("config") / "xruns.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    service = ServiceProcess(
        ["--config", str(config), "--audio-backend", "jack"], log_path=ARTIFACTS / "service-xruns.log"
    )
    try:
        pid = service_state()["audio_pid"]
        for _ in range(2):
            skipped = service_state()["skipped_cycles"]
            os.kill(pid, signal.SIGSTOP)
            try:
                wait_stopped(pid)
                time.sleep(0.05)  # about 19 periods of 2.7 ms missed
            finally:
                os.kill(pid, signal.SIGCONT)
            wait_for(lambda n=skipped: service_state()["skipped_cycles"] > n, what="the stall counted as skipped")
        time.sleep(1.0)  # two turns of the main loop, where the advice would be given
        state = service_state()
    finally:
        service.stop()
    advice = [line for line in service.lines if "a dropout" in line]
    # Our own count moves only if a stop landed inside a cycle (under 1 % of the time): then, and
    # only then, the advice is given, once.
    assert len(advice) == (1 if state["own_xruns"] else 0), (state["own_xruns"], service.lines)


def test_a_taken_web_port_names_the_flag_that_changes_it(jack_server, tmp_path_factory):
    import socket

    config = tmp_path_factory.mktemp("config") / "port.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = ServiceProcess(
            ["--config", str(config), "--audio-backend", "jack", "--web-port", str(port)],
            log_path=ARTIFACTS / "service-port-taken.log",
        )
        service.stop()
    (said,) = [line for line in service.lines if "cannot listen" in line]
    assert f"127.0.0.1:{port}" in said and "--web-port PORT" in said and "playing on without it" in said, said
