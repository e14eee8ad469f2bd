"""MIDI inputs by name: the service finds a controller that appears after it started, plays its
notes, and finds it again when it is unplugged and plugged back in under the same name. On JACK,
other programs' MIDI outputs (the rig's port is one) are connected only when named."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ..jackrig import Rig, ServiceProcess, first_sound, service_inputs, service_state, wait_for
from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

RESCAN_WAIT_S = 3.0  # the service rescans every second (midi.reconnect_s)
NOTICE_S = 2.0  # an unplugged controller must be noticed within this


def test_on_jack_another_programs_midi_output_is_not_connected_unless_named(jack_server, tmp_path):
    # First in this module: no other service may be running beside this one.
    config = tmp_path / "default-inputs.yaml"  # midi.inputs as shipped: ["*"]
    config.write_text('midi:\n  virtual_port: ""\n  reconnect_s: 0.1\nsave:\n  drop_folder: ""\n')
    service = ServiceProcess(
        ["--config", str(config), "--audio-backend", "jack"], log_path=ARTIFACTS / "service-default-inputs.log"
    )
    try:
        rig = Rig(midi_targets=(), audio_sources=(service.audio_source,))  # a software port, as a DAW track's is
        try:
            rig.wait_frames(int(1.0 * rig.rate))  # ten rescans
            assert not rig.midi_client.get_all_connections(rig.midi_out), (
                "a software MIDI output was connected by default"
            )
            assert service_inputs() == []
        finally:
            rig.close()
    finally:
        assert service.stop() == 0
    assert "MIDI rescan" not in service.log_path.read_text(), "the scanner ran before the MIDI input existed"


# JACK connects matching ports to its own MIDI input; PortAudio opens an rtmidi port for each.
@pytest.fixture(scope="module", params=["jack", "portaudio"])
def hardware_only_service(request, jack_server, tmp_path_factory):
    # No virtual port: notes can only arrive through the input named under software_inputs.
    config = tmp_path_factory.mktemp("config") / "hardware-only.yaml"
    config.write_text(
        'midi:\n  virtual_port: ""\n  inputs: []\n  software_inputs: ["rig-midi:*"]\n  exclude: []\n'
        'save:\n  drop_folder: ""\n'
    )
    svc = ServiceProcess(
        ["--config", str(config), "--audio-backend", request.param],
        log_path=ARTIFACTS / f"service-hardware-{request.param}.log",
    )
    yield svc
    assert svc.stop() == 0


def wait_connected(rig: Rig) -> float:
    """Seconds until the service has connected to the rig's MIDI output and says so itself (with
    PortAudio the JACK connection exists before its rtmidi input has a callback to hand notes to)."""
    start = time.monotonic()
    while time.monotonic() - start < RESCAN_WAIT_S:
        if rig.midi_client.get_all_connections(rig.midi_out) and service_inputs():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"the service did not connect to {rig.midi_out.name} within {RESCAN_WAIT_S} s")


def counted_note(rig: Rig, cycle: int, attempts: int = 3) -> int:
    """Send a note until the service counts it; the frame it was sent at. JACK MIDI sent in an xrun
    cycle is lost for every client, so a note is sent again only when the server reported an xrun
    meanwhile: a note lost without one fails here."""
    for _ in range(attempts):
        notes, xruns = service_state()["notes"], rig.xruns  # the server tells the rig of every client's xrun
        sent = rig.note(38, 127)
        rig.wait_frames(int(0.3 * rig.rate))
        if service_state()["notes"] > notes:
            return sent
        assert rig.xruns > xruns, (
            f"cycle {cycle}: the note was not counted, and the server reported no xrun that could have lost it"
        )
    raise AssertionError(f"cycle {cycle}: {attempts} notes lost to xruns in a row")


def test_a_controller_plugged_in_later_is_found_played_and_found_again_after_unplugging(hardware_only_service):
    assert "MIDI in: none" in hardware_only_service.lines[0], "no input should match before the controller exists"
    for cycle in range(3):  # plug in, play, unplug; then again under the same name
        rig = Rig(midi_targets=(), audio_sources=(hardware_only_service.audio_source,))
        try:
            found_s = wait_connected(rig)
            sent = counted_note(rig, cycle)
            audio = rig.audio(sent, int(0.3 * rig.rate))
            assert first_sound(audio) is not None, (
                f"cycle {cycle}: connected after {found_s:.1f} s but the note was not heard"
            )
            assert np.max(np.abs(audio)) > 0.05
            rig.wait_frames(int(0.6 * rig.rate))  # let the snare ring out before the next cycle
        finally:
            rig.close()
        # Unplugged: the service closes its side within NOTICE_S (a controller replugged faster
        # than one rescan looks, on JACK, like one that never left; real replugs take longer).
        wait_for(lambda: not service_inputs(), NOTICE_S, f"cycle {cycle}: the unplugged controller was not noticed")
