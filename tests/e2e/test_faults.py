"""Faults the instrument must survive: its JACK server dying and coming back, and a bug raising
inside the audio callback of a running stream (on both backends)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from instrument.config import AudioConfig
from instrument.core.events import NoteOn
from instrument.host.link import EngineLink
from instrument.host.outputs import open_output
from instrument.rt.engine import engine_settings
from instrument.rt.portaudio import sounddevice

from ..jackrig import SERVER_NAME, Rig, ServiceProcess, first_sound, service_state, start_jackd, stop_process
from .conftest import ARTIFACTS
from .listen import HANG_S, assert_matches, expected_snare, hit, set_knobs

pytestmark = pytest.mark.e2e

SERVER = "latent-snare-faults"  # its own server: killing it must not disturb the other tests


def wait_for_line(service, text: str) -> None:
    """How soon the service says it is measured by bench/recovery.py; here only that it does."""
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        if any(text in line for line in service.lines):
            return
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} from the service within {HANG_S:.0f} s; it said {service.lines[-5:]}")


def service_on_its_own_server(tmp_path_factory, backend: str, role: str):
    """A private JACK server (the test kills it, or the service's audio process) and the service on it."""
    config = tmp_path_factory.mktemp("config") / f"{role}.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    jackd = start_jackd(name=SERVER)
    try:
        return jackd, ServiceProcess(
            ["--config", str(config), "--audio-backend", backend],
            server=SERVER,
            log_path=ARTIFACTS / f"service-{role}-{backend}.log",
        )
    except BaseException:
        stop_process(jackd)
        raise


def play_at_the_corner(service) -> Rig:
    """A rig on the service's server, knobs moved away from the centre the service starts at, one hit played."""
    rig = Rig(server=SERVER, audio_sources=(service.audio_source,))
    set_knobs(rig, 0, 0)
    hit(rig)
    return rig


@pytest.mark.parametrize("backend", ["jack", "portaudio"])
def test_the_instrument_survives_its_jack_server_dying_and_coming_back(jack_server, tmp_path_factory, backend):
    """On PortAudio, the stream's server is PortAudio's JACK host API's: the stream is reopened too."""
    jackd, service = service_on_its_own_server(tmp_path_factory, backend, "faults")
    try:
        play_at_the_corner(service).close()

        jackd.kill()  # the server crashes: no goodbye to its clients
        jackd.wait()
        wait_for_line(service, "went away")
        jackd = start_jackd(name=SERVER)
        wait_for_line(service, "is back; reopened")

        with Rig(server=SERVER, audio_sources=(service.audio_source,)) as rig:
            # The knob position survived, and the sound is that position's snare.
            assert_matches(hit(rig)[1], expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127))
    finally:
        code = service.stop(signal.SIGHUP)  # SIGHUP stops cleanly, like SIGTERM (it does not reload)
        stop_process(jackd)
    assert code == 0, f"the service did not stop cleanly after the restart: {service.log_path.read_text()[-1500:]}"
    assert any(line.startswith("latent-snare: stopped") for line in service.lines)


def test_a_server_that_stops_answering_is_noticed_by_its_stopped_cycles_and_reopened_when_it_answers(
    jack_server, tmp_path_factory
):
    """A stopped jackd says nothing, as PipeWire's libjack never calls the shutdown callback: the
    instrument notices that its cycles stopped, and plays again once the server answers, its knobs
    and its connections (the recorder's) kept."""
    jackd, service = service_on_its_own_server(tmp_path_factory, "jack", "stalled")
    try:
        rig = play_at_the_corner(service)
        try:
            os.kill(jackd.pid, signal.SIGSTOP)
            wait_for_line(service, "no audio cycle for")
            time.sleep(0.5)
            os.kill(jackd.pid, signal.SIGCONT)
            wait_for_line(service, "is back; reopened")
            # The recorder is connected again without a hand on it, and hears that knob position's snare.
            assert_matches(hit(rig)[1], expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127))
            assert service_state()["cc"] == [0, 0]
        finally:
            os.kill(jackd.pid, signal.SIGCONT)
            rig.close()
    finally:
        code = service.stop()
        stop_process(jackd)
    assert code == 0, f"the service did not stop cleanly after the stall: {service.log_path.read_text()[-1500:]}"


def restart_portaudio() -> None:
    sd = sounddevice()
    sd._terminate()
    sd._initialize()


def start_audio_process(monkeypatch, backend="jack", separate_process=True):
    """The audio cycle (the JACK client, or PortAudio's stream on JACK) in an audio process or in
    this one, without the service: a plateau snare, mono."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", SERVER_NAME)
    output = open_output(AudioConfig(backend=backend, device="JACK", channels=1, separate_process=separate_process), "")
    engine = EngineLink(engine_settings(output.sample_rate, 4096))
    engine.publish(np.full(output.sample_rate, 0.25, dtype=np.float32))  # a 1 s plateau: any dropout shows
    output.attach(engine, None)
    output.start()
    return output, engine


@pytest.mark.parametrize("separate_process", [True, False], ids=["audio-process", "in-process"])
@pytest.mark.parametrize("backend", ["jack", "portaudio"])
def test_an_exception_in_the_audio_callback_silences_one_block_and_it_plays_on(
    jack_server, monkeypatch, backend, separate_process
):
    """In the audio process and with `separate_process: false`, the same cycle keeps the contract."""
    output, engine = start_audio_process(monkeypatch, backend, separate_process)
    rig = Rig(
        midi_targets=(), audio_sources=(f"{'latent-snare' if backend == 'jack' else 'latent-snare-audio'}:out_0",)
    )
    try:
        start = rig.last_frame
        engine.post(NoteOn(127))
        rig.wait_frames(rig.rate // 4)
        for _ in range(3):  # a record no event decodes from: raises inside the callback, once per cycle it is read in
            engine.shared.events.push(99.0)
            rig.wait_frames(2 * rig.period)
        rig.wait_frames(rig.rate // 4)
        assert output.callback_errors == 3
        assert not separate_process or output.process.poll() is None, "the audio process died"
        later = rig.last_frame
        engine.post(NoteOn(127))
        assert first_sound(rig.audio(later, rig.rate // 2)) is not None, "no sound after the faults"
        recorded = rig.audio(start, rig.rate)
        assert np.count_nonzero(np.abs(recorded) < 1e-6) >= 3 * rig.period / 2  # the failed blocks were silence
        assert np.all(np.isfinite(recorded)) and np.max(np.abs(recorded)) <= 10 ** (-1 / 20) + 1e-6
    finally:
        rig.close()
        output.close()
        if backend == "portaudio" and not separate_process:
            # PortAudio keeps a JACK client until it terminates; let it go while this server still runs
            # (terminating against a server that is gone aborts the interpreter at exit).
            monkeypatch.undo()
            restart_portaudio()


@pytest.mark.parametrize("backend", ["jack", "portaudio"])
def test_notes_posted_while_the_audio_cycle_stalls_play_late_rather_than_never(jack_server, monkeypatch, backend):
    """A run of xruns: the audio process stopped for 100 ms (as a preempted or page-faulting audio
    thread would be). The notes the main process posts meanwhile wait in the event ring and all
    play once it runs again."""
    output, engine = start_audio_process(monkeypatch, backend)
    pid = output.process.pid
    try:
        deadline = time.monotonic() + 2.0
        while engine.stats.blocks == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_stopped(pid)
            before = engine.stats.notes
            for _ in range(3):
                engine.post(NoteOn(100))
                time.sleep(0.03)
            assert engine.stats.notes == before, "the audio process played while stopped"
            blocks = engine.stats.blocks
        finally:
            os.kill(pid, signal.SIGCONT)
        # The event ring is drained at the start of a cycle: three cycles after the stall, every note has played.
        deadline = time.monotonic() + HANG_S
        while engine.stats.blocks < blocks + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert engine.stats.notes == before + 3, f"{engine.stats.notes - before} of 3 notes played after the stall"
        assert output.process.poll() is None, "the audio process died"
    finally:
        output.close()


def wait_stopped(pid: int) -> None:
    """Until every thread of `pid` is stopped: SIGSTOP is delivered asynchronously, and a cycle
    already running finishes first (its notes are counted before the stall, not during it)."""
    while True:
        states = [
            Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            for tid in os.listdir(f"/proc/{pid}/task")
        ]
        if all(state in ("T", "t") for state in states):
            return
        time.sleep(0.001)


def threads_of(pid: int) -> list[str]:
    return sorted(Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip() for tid in os.listdir(f"/proc/{pid}/task"))


def test_the_audio_process_has_no_thread_but_its_own_and_libjacks(jack_server, monkeypatch):
    """The audio cycle can wait for no Python thread: the audio process runs only its main thread
    (which sleeps in select) and the threads libjack starts for any client, as a bare JACK-Client
    process with a process callback shows. No lock of the main process exists there to touch: the
    two share memory only, and the shared memory holds no lock (rt/layout.py)."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", SERVER_NAME)
    bare = subprocess.Popen([sys.executable, "-c", BARE_JACK_CLIENT], stdout=subprocess.PIPE, text=True)
    output = None
    try:
        assert bare.stdout.readline().strip() == "active"
        reference = threads_of(bare.pid)
        output, engine = start_audio_process(monkeypatch)
        engine.post(NoteOn(100))
        time.sleep(0.3)
        assert threads_of(output.process.pid) == reference, "the audio process runs threads of its own"
        assert engine.stats.blocks > 0
    finally:
        stop_process(bare)
        if output:
            output.close()


BARE_JACK_CLIENT = """
import sys, time, jack
client = jack.Client("bare-reference", no_start_server=True)
client.outports.register("out")
client.midi_inports.register("in")
client.set_process_callback(lambda frames: None)
client.set_xrun_callback(lambda delay: None)
client.set_shutdown_callback(lambda status, reason: None)
client.activate()
print("active", flush=True)
time.sleep(30)
"""


def listen_again(rig, source: str) -> None:
    """A restarted PortAudio stream connects itself to its device only (the JACK backend restores
    every connection): the recorder reconnects, as a user would, once the port is back."""
    import jack

    try:
        rig.rec_client.connect(source, rig.audio_ins[0])
    except jack.JackError:
        pass  # not back yet


@pytest.mark.parametrize("backend", ["jack", "portaudio"])
def test_the_audio_process_killed_mid_play_comes_back_at_the_same_knobs(jack_server, tmp_path_factory, backend):
    """How soon it comes back is bench/recovery.py's (well under a second here, loaded or not)."""
    jackd, service = service_on_its_own_server(tmp_path_factory, backend, "crash")
    try:
        with play_at_the_corner(service) as rig:
            pid = service_state()["audio_pid"]
            os.kill(pid, signal.SIGKILL)  # mid-play: the hit above still rings
            killed_at = time.monotonic()
            heard = False
            while not heard and time.monotonic() - killed_at < HANG_S:
                if backend == "portaudio":
                    listen_again(rig, service.audio_source)
                heard = first_sound(rig.audio(rig.note(), rig.period * 4)) is not None
                time.sleep(0.02)
            assert heard, f"no sound within {HANG_S:.0f} s of the audio process's death"
            state = service_state()
            assert state["audio_restarts"] == 1 and state["audio_pid"] != pid
            assert state["cc"] == [0, 0]
            time.sleep(1.6)  # the notes sent while it came back ring out
            # The knob position survived, and the sound is that position's snare.
            assert_matches(hit(rig)[1], expected_snare(rig.rate, 0, 0), expected_snare(rig.rate, 127, 127))
    finally:
        code = service.stop()
        stop_process(jackd)
    assert code == 0, f"the service did not stop cleanly after the restart: {service.log_path.read_text()[-1500:]}"
