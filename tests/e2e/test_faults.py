"""Faults the instrument must survive: its JACK server dying and coming back, and a bug raising
inside the audio callback of a running stream (on both backends)."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from instrument.play.engine import Engine
from instrument.play.events import NoteOn

from .conftest import ARTIFACTS
from .listen import assert_matches, expected_snare, hit, set_knobs
from ..jackrig import SERVER_NAME, Rig, ServiceProcess, first_sound, start_jackd, stop_process

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
        code = service.stop(signal.SIGHUP)  # SIGHUP stops cleanly, like SIGTERM (it does not reload)
        stop_process(jackd)
    assert code == 0, f"the service did not stop cleanly after the restart: {service.log_path.read_text()[-1500:]}"
    assert any(line.startswith("latent-snare: stopped") for line in service.lines)


class FaultyEngine(Engine):
    """An engine whose render raises on chosen calls: a bug inside the audio callback."""

    def __init__(self, *args, fail_on=(), **kw):
        super().__init__(*args, **kw)
        self.fail_on = set(fail_on)
        self.calls = 0

    def render(self, frames):
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("simulated bug in the audio callback")
        return super().render(frames)


@pytest.mark.parametrize("backend", ["jack", "portaudio"])
def test_an_exception_in_the_audio_callback_silences_one_block_and_the_stream_runs_on(jack_server, monkeypatch, backend):
    from instrument.config import AudioConfig
    from instrument.play.backends import open_output

    monkeypatch.setenv("JACK_DEFAULT_SERVER", SERVER_NAME)
    output = open_output(AudioConfig(backend=backend, device="JACK", channels=1), "")
    engine = FaultyEngine(output.sample_rate, 4096, fail_on=range(200, 203))  # three blocks, about 1 s in
    engine.publish(np.full(output.sample_rate, 0.25, dtype=np.float32))  # a 1 s plateau: any dropout shows
    output.attach(engine, None)
    output.start()
    rig = Rig(midi_targets=(), audio_sources=(f"{'latent-snare' if backend == 'jack' else 'latent-snare-audio'}:out_0",))
    try:
        start = rig.last_frame
        engine.post(NoteOn(127))
        deadline = time.monotonic() + 5
        while engine.calls < 400 and time.monotonic() < deadline:  # well past the faults
            time.sleep(0.05)
        assert engine.calls >= 400, f"the callback stopped being called after the faults ({engine.calls} calls)"
        assert output.callback_errors == 3
        # The sound went on after the faults: a second note, long after them, is heard.
        later = rig.last_frame
        engine.post(NoteOn(127))
        assert first_sound(rig.audio(later, rig.rate // 2)) is not None, "no sound after the faults"
        recorded = rig.audio(start, 2 * rig.rate)
        assert np.count_nonzero(np.abs(recorded) < 1e-6) >= 3 * 128 / 2  # the failed blocks were silence, not garbage
        assert np.all(np.isfinite(recorded)) and np.max(np.abs(recorded)) <= 10 ** (-1 / 20) + 1e-6
    finally:
        rig.close()
        output.close()
        if backend == "portaudio":
            # PortAudio keeps a JACK client until it terminates; let it go while this server still runs
            # (terminating against a server that is gone aborts the interpreter at exit).
            import sounddevice as sd

            monkeypatch.undo()
            sd._terminate()
            sd._initialize()
