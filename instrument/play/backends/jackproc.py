"""The JACK backend with the audio cycle in its own process (the default on JACK).

Beside a busy machine, JACK's process callback in this process waited for the GIL while the
decode worker, the page or the MIDI thread held it (issue 16: 49 of 58 xruns under load).
Here the JACK client that owns the MIDI input and the audio outputs, and the engine, live in
an audio process (play/audioproc.py) whose interpreter nothing else uses; this process keeps
decoding, the router, the page, saving and the terminal, and talks to it through shared
memory only (play/shared.py, play/link.py). Notes are still read in the cycle they arrive in
and started at their frame.

This side keeps a JACK client of its own that is never activated (it reads the server's
rate and period, and connects hardware MIDI ports to the audio process's input), and an
`audio-watch` thread that hands the MIDI the audio process did not play to the router, and
restarts the audio process if it dies while the server runs (the knobs, the model and the
snare live here and in shared memory, so nothing is lost but the sounding voices).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

import mido

from ...errors import UserError
from ..audioproc import EXIT_SERVER_GONE
from ..link import EngineLink
from . import CLIENT_NAME

log = logging.getLogger(__name__)

WATCH_POLL_S = 0.002  # the MIDI the audio process hands over reaches the router within 2 ms
CONNECTIONS_EVERY_S = 0.25  # how often the audio process's connections are noted, to restore after a crash
READY_TIMEOUT_S = 10.0
# The audio process mixes on one thread: numpy's BLAS would otherwise start idle worker threads there.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class JackProcessOutput:
    backend = "jack"

    def __init__(self, channels: int, midi_port: str):
        import jack

        self.engine = self.router = None
        self.channels, self.midi_port = channels, midi_port
        self.server_lost = False
        self.restarts = 0  # audio processes restarted after a crash
        try:
            self.client = jack.Client(f"{CLIENT_NAME}-ctl", no_start_server=True)
        except jack.JackOpenError as err:
            raise UserError("no JACK server answers: start jackd (or choose audio.backend: portaudio)") from err
        self.sample_rate = self.client.samplerate
        self.block_size = self.client.blocksize
        self.realtime = self.client.realtime
        self.midi_in = f"{CLIENT_NAME}:{midi_port or 'in'}"  # the audio process's port, by name
        self.process: subprocess.Popen | None = None
        self._parent_end = None  # our end of the pipe whose closing tells the audio process we are gone
        self._connections: list[tuple[str, str]] = []  # (source, destination) of the audio process's ports
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="audio-watch", daemon=True)

    def new_engine(self, **settings) -> EngineLink:
        return EngineLink(self.sample_rate, **settings)

    def attach(self, engine: EngineLink, router) -> None:
        self.engine, self.router = engine, router
        if router is not None:
            router.share_routes(engine.shared.routes)

    # --- counters: the audio process's, in shared memory -------------------------------------

    @property
    def underflows(self) -> int:
        """The xruns that were ours: cycles the audio process finished after the period's end."""
        return self.engine.stats.own_xruns if self.engine else 0

    @property
    def server_xruns(self) -> int:
        """Every xrun the server announced, whichever client was late."""
        return self.engine.stats.server_xruns if self.engine else 0

    @property
    def callback_errors(self) -> int:
        return self.engine.stats.callback_errors if self.engine else 0

    @property
    def audio_pid(self) -> int | None:
        return self.process.pid if self.process else None

    # --- the audio process -------------------------------------------------------------------

    def start(self) -> None:
        if not self._spawn():
            raise UserError(f"the audio process did not start (exit code {self.process.returncode}); see the log above")
        self._watch.start()

    def _spawn(self) -> bool:
        """Start an audio process and wait until it plays; False if it ended first."""
        shared = self.engine.shared
        self.engine.audio_starting()
        shared.stats.ready_pid = 0
        child_end, self._parent_end = os.pipe()
        args = [str(shared.fd), str(child_end), str(self.sample_rate), str(self.channels), self.midi_port,
                json.dumps(self.engine.settings)]
        self.process = subprocess.Popen([sys.executable, "-m", "instrument.play.audioproc", *args], env={**os.environ, **ONE_BLAS_THREAD},
                                        pass_fds=(shared.fd, child_end), stdin=subprocess.DEVNULL)
        os.close(child_end)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while shared.stats.ready_pid != self.process.pid:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._end_process()
                return False
            time.sleep(0.002)
        return True

    def _watch_loop(self) -> None:
        noted_at = 0.0
        while not self._stop.wait(WATCH_POLL_S):
            self._drain_midi()
            if self.process.poll() is None or self._stop.is_set():
                if time.monotonic() - noted_at > CONNECTIONS_EVERY_S:
                    self._note_connections()
                    noted_at = time.monotonic()
                continue
            code = self.process.returncode
            self._end_process()
            if code != EXIT_SERVER_GONE:
                log.warning("the audio process ended (exit code %s); restarting it", code)
                if self._spawn():
                    self.restarts += 1
                    self._restore_connections()
                    continue
            if self.process.returncode == EXIT_SERVER_GONE:
                self.server_lost = True  # the service waits for the server and opens a new output
                return
            time.sleep(0.2)  # it failed to start for another reason: the next turn tries again

    def _note_connections(self) -> None:
        """What the audio process's ports are connected to (a DAW's routing), to restore after a crash."""
        try:
            outs = [f"{CLIENT_NAME}:out_{i}" for i in range(self.channels)]
            connections = [(peer.name, self.midi_in) for peer in self.client.get_all_connections(self.midi_in)]
            connections += [(port, peer.name) for port in outs for peer in self.client.get_all_connections(port)]
            self._connections = connections
        except Exception as err:  # a port that vanished mid-look, or the server going away: keep the last
            log.debug("noting connections: %s", err)

    def _restore_connections(self) -> None:
        for source, destination in self._connections:
            try:
                self.client.connect(source, destination)
            except Exception as err:  # the other end went away meanwhile
                log.info("not reconnected %s -> %s: %s", source, destination, err)

    def _drain_midi(self) -> None:
        ring = self.engine.shared.midi
        while self.router is not None and (record := ring.pop()) is not None:
            data = bytes(int(b) for b in record[1 : 1 + int(record[0])])
            try:
                self.router.handle(mido.Message.from_bytes(data))
            except ValueError:
                pass  # a malformed message from a device: nothing to play
            except Exception:
                log.exception("MIDI message %s could not be handled", data.hex(" "))

    def _end_process(self) -> None:
        if self._parent_end is not None:
            os.close(self._parent_end)
            self._parent_end = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(2.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self) -> None:
        """Idempotent: the service closes an output whose server died, and again at shutdown."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._watch.is_alive():
            self._watch.join(2.0)
        self._end_process()
        self.client.close()
