"""A JACK test rig that drives the running instrument the way a DAW would; shared by the
end-to-end tests (tests/e2e) and the JACK benchmarks (bench/), imported as `tests.jackrig`.

Two JACK clients on a private dummy server:
- `rig-midi` writes MIDI into the instrument's virtual port at the start of a
  period and notes the server frame time it was sent at;
- `rig-rec` records the instrument's audio output with server frame times.

Both use the server's frame clock, so latency is measured in frames, not in
wall-clock time on a noisy machine. The recorder also notes every frame where
its cycles stop following each other: in an xrun the instrument (upstream of it)
or the recorder itself runs late, and what is recorded from there on may be
shifted or missing a period, so comparisons use only the stretch before it
(`xrun_free`). `ServiceProcess` runs `latent-snare run` on the rig's server, and
`service_state()` reads its JSON state over the control socket.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from instrument.app.control import send_command

SERVER_NAME = "latent-snare-test"
SAMPLE_RATE = 48_000
PERIOD = 128
RECORD_SECONDS = 120
# The rig's JACK callbacks need this process's GIL, which the test thread holds while it computes
# or polls. Python's default 5 ms switch interval is two periods: the rig's own MIDI client ran
# late in most xruns of a loaded run (jackd's log), losing the MIDI it carried.
SWITCH_INTERVAL_S = 0.0005


def leftovers(server_prefix: str = "latent-snare") -> list[int]:
    """The pids of test servers (`jackd -n latent-snare...`) and test-run instruments (`run
    --no-status --web-port 0`, as ServiceProcess starts them) that an earlier test process left
    running when it crashed: they hold the server names and the control socket a new run needs."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        server = (
            Path(argv[0]).name == "jackd" and "-n" in argv[:-1] and argv[argv.index("-n") + 1].startswith(server_prefix)
        )
        service = "instrument.app.cli" in argv and "--no-status" in argv and "--web-port" in argv
        if server or service:
            found.append(int(entry.name))
    return found


def stop_leftovers() -> None:
    for pid in leftovers():
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_for(lambda: not leftovers(), 5.0, what="processes left by an earlier test run to end")


def start_jackd(
    period: int = PERIOD, rate: int = SAMPLE_RATE, name: str = SERVER_NAME, realtime: bool = True
) -> subprocess.Popen:
    """A private dummy-driver server. realtime=True asks for SCHED_FIFO for it and its clients' process threads,
    as a performer's JACK runs; where the machine refuses (no rtprio), jackd and its clients go on at normal
    priority by themselves. Without it, on a loaded machine (stress-ng beside the e2e suite) jackd reported
    several xruns a second, and MIDI sent in an xrun cycle is lost for every client, the rig's included."""
    jackd = shutil.which("jackd")
    if jackd is None:
        raise FileNotFoundError("jackd (Debian package jackd2)")
    log = open(Path(os.environ.get("LATENT_SNARE_ARTIFACTS", "/tmp")) / f"jackd-{name}.log", "w")
    proc = subprocess.Popen(
        [
            jackd,
            "-n",
            name,
            *(["-R", "-P", "70"] if realtime else ["--no-realtime"]),
            "-d",
            "dummy",
            "-r",
            str(rate),
            "-p",
            str(period),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    import jack

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            jack.Client("rig-probe", servername=name, no_start_server=True).close()
            return proc
        except jack.JackOpenError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("jackd did not start within 10 s")


def wait_for(predicate, timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll until predicate() holds, or fail saying what did not happen in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout_s} s")


def stop_process(proc: subprocess.Popen, timeout_s: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class Rig:
    """Sends MIDI to every `midi_targets` port at once and records every `audio_sources` port,
    all on the server's frame clock (so two instruments can be compared note for note)."""

    def __init__(
        self,
        server: str = SERVER_NAME,
        midi_targets: tuple[str, ...] = ("latent-snare:Latent Snare",),
        audio_sources: tuple[str, ...] = ("latent-snare:out_0",),
        record_seconds: int = RECORD_SECONDS,
    ):
        import jack

        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.midi_client = jack.Client("rig-midi", servername=server, no_start_server=True)
        self.rec_client = jack.Client("rig-rec", servername=server, no_start_server=True)
        self.midi_out = self.midi_client.midi_outports.register("out")
        self.audio_ins = [self.rec_client.inports.register(f"in_{i}") for i in range(len(audio_sources))]
        self.period = self.midi_client.blocksize
        self.rate = self.midi_client.samplerate
        self._outbox: deque = deque()  # (bytes, sent-frame list to fill) from the test thread
        self._flood = None  # an iterator of per-period event lists, written before the outbox (see flood)
        self.flooded_bytes = 0
        self.recordings = [np.zeros(record_seconds * self.rate, dtype=np.float32) for _ in audio_sources]
        self.start_frame = None
        self.last_frame = 0
        self.gap_frames: list[int] = []  # where the recorder's cycles stopped following each other (xruns)
        self.xruns = 0  # every xrun the server reports, whichever client it fell on
        self.server_gone = False  # set by libjack's thread when the server goes away under the rig
        self.closed = False
        for client in (self.midi_client, self.rec_client):
            client.set_shutdown_callback(self._server_went_away)
        self.midi_client.set_xrun_callback(self._xrun)
        self.midi_client.set_process_callback(self._send)
        self.rec_client.set_process_callback(self._record)
        self.midi_client.activate()
        self.rec_client.activate()
        for target in midi_targets:
            self.midi_client.connect(self.midi_out, target)
        for source, port in zip(audio_sources, self.audio_ins):
            self.rec_client.connect(source, port)
        self.wait_frames(self.period * 4)

    def _send(self, frames: int) -> None:
        self.midi_out.clear_buffer()
        now = self.midi_client.last_frame_time
        for data in next(self._flood, ()) if self._flood else ():
            self.midi_out.write_midi_event(0, data)
            self.flooded_bytes += len(data)
        while self._outbox:
            data, receipt = self._outbox.popleft()
            self.midi_out.write_midi_event(0, data)
            receipt.append(now)

    def _xrun(self, _delay_us: float) -> None:
        self.xruns += 1

    def _server_went_away(self, _status, _reason: str) -> None:
        self.server_gone = True

    def xrun_free(self, frame: int, n_frames: int) -> int:
        """How many of the `n_frames` recorded from server frame `frame` on come before the first
        gap in the recorder's cycles (all of them when there was none). The recorder runs after the
        instrument in every cycle, so an instrument running late makes a gap here too."""
        return max(0, min([n_frames, *(at - frame for at in self.gap_frames if at >= frame)]))

    def _record(self, frames: int) -> None:
        now = self.rec_client.last_frame_time
        if self.start_frame is None:
            self.start_frame = now
        elif now != self.last_frame:  # a cycle missed or run late (now is ahead), or run twice (now is behind)
            self.gap_frames.append(min(now, self.last_frame))  # where what is recorded may stop being continuous
        at = now - self.start_frame
        # A server whose clock went back (PipeWire changing its driver: a sink coming up) has no
        # place in this recording: that cycle is left out, as a gap.
        if 0 <= at and at + frames <= self.recordings[0].size:
            for port, recording in zip(self.audio_ins, self.recordings):
                recording[at : at + frames] = port.get_array()
        self.last_frame = now + frames

    def send(self, *messages: bytes | list) -> int:
        """Send MIDI messages in one period; returns the server frame they were sent at."""
        receipt: list[int] = []
        for data in messages:
            self._outbox.append((bytes(data), receipt))
        deadline = time.monotonic() + 2
        while len(receipt) < len(messages) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert receipt, "the rig's JACK MIDI client did not run"
        return receipt[0]

    def flood(self, per_period=None) -> None:
        """Write `next(per_period)` (a list of events) every period ahead of anything sent, as a
        busy device would; None stops. The instrument has to read past them to reach the notes.
        A period's JACK MIDI buffer holds 32 KB (32720 bytes of events measured here)."""
        self._flood = per_period

    def note(self, note: int = 38, velocity: int = 127) -> int:
        return self.send([0x90, note, velocity])

    def cc(self, control: int, value: int) -> int:
        return self.send([0xB0, control, value])

    def wait_frames(self, frames: int) -> None:
        target = self.last_frame + frames
        deadline = time.monotonic() + frames / self.rate + 5
        while self.last_frame < target and time.monotonic() < deadline:
            time.sleep(0.002)

    def audio(self, frame: int, n_frames: int, source: int = 0) -> np.ndarray:
        """Recorded output of `audio_sources[source]` from server frame `frame` on (waits until it is recorded)."""
        self.wait_frames(max(0, frame + n_frames - self.last_frame))
        at = frame - self.start_frame
        return self.recordings[source][at : at + n_frames].copy()

    def close(self) -> None:
        """Idempotent, and safe once the server has died. In a loaded run a rig left open while its
        server was stopped under it was followed by a segfault in libjack at a later rig's
        deactivate: tests close a rig before its server stops, and a rig whose server went away
        anyway lets go of its clients without deactivating them."""
        if self.closed:
            return
        self.closed = True
        for client in (self.midi_client, self.rec_client):
            if not self.server_gone:
                client.deactivate()
            client.close()

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def first_sound(audio: np.ndarray, threshold: float = 1e-4) -> int | None:
    hits = np.flatnonzero(np.abs(audio) > threshold)
    return int(hits[0]) if hits.size else None


def service_state() -> dict:
    """The running service's state, as the JSON its control socket answers `state` with."""
    return send_command("state")


def service_inputs() -> list[str]:
    """The MIDI inputs the service reports connected (its virtual port included, when it has one)."""
    return service_state()["inputs"]


class ServiceProcess:
    """`latent-snare run` as a subprocess on the rig's JACK server."""

    def __init__(
        self,
        args: list[str],
        server: str | None = SERVER_NAME,
        log_path: Path | None = None,
        env: dict | None = None,
        wrapper: tuple[str, ...] = (),
        device_args: tuple[str, ...] = ("--midi-api", "jack", "--audio-device", "JACK"),
    ):
        """`server` None: the default server of `env` (PipeWire's, under `wrapper` pw-jack)."""
        env = dict(env or os.environ, PYTHONUNBUFFERED="1")
        if server is not None:
            env["JACK_DEFAULT_SERVER"] = server
        self.log_path = log_path or Path("/tmp/latent-snare-service.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                *wrapper,
                sys.executable,
                "-m",
                "instrument.app.cli",
                "run",
                *device_args,
                "--no-status",
                "--web-port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.url: str | None = None  # the control page, from the ready line
        self.backend: str | None = None  # jack or portaudio, from the ready line
        self._ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(30):
            stop_process(self.proc)
            raise RuntimeError(
                f"service not ready in 30 s; stdout {self.lines}, stderr {self.log_path.read_text()[-2000:]}"
            )

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            self.log.write(line)
            if "ready:" in line:
                page = re.search(r"page: (\S+);", line)
                self.url = page.group(1) if page else None
                self.backend = re.search(r" ms, (\w+)\)", line).group(1)
                self._ready.set()

    @property
    def audio_source(self) -> str:
        """Its first audio output port: its own JACK client's, or PortAudio's."""
        return "latent-snare:out_0" if self.backend == "jack" else "latent-snare-audio:out_0"

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        return stop_process(self.proc, sig=sig)
