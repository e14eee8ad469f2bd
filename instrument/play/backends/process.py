"""The audio cycle in a process of its own (the default, `audio.separate_process: true`).

Beside a busy machine, an audio callback in this process waited for the GIL while the decode
worker, the page or the MIDI thread held it (issue 16: 49 of 58 xruns under load). Here the
engine and the host's callback live in an audio process (play/audioproc.py) whose interpreter
nothing else uses; this process keeps decoding, the router, the page, saving and the terminal,
and talks to it through shared memory only (play/shared.py, play/link.py).

`ProcessOutput` starts that process and keeps it: an `audio-watch` thread restarts it if it
dies while its server or device is there (the knobs, the model and the snare live here and in
shared memory, so nothing is lost but the sounding voices), and sets `server_lost` when it
ended because the server or device went away, for the service to open a new output once it is
back. `jackproc.JackProcessOutput` and `PortAudioProcessOutput` below say what each host adds.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time

from ...errors import UserError
from ..audioproc import EXIT_SERVER_GONE
from ..link import EngineLink

log = logging.getLogger(__name__)

WATCH_POLL_S = (
    0.002  # a dead audio process is noticed, and the MIDI the JACK one hands over reaches the router, within 2 ms
)
READY_TIMEOUT_S = 10.0
# The audio process mixes on one thread: numpy's BLAS would otherwise start idle worker threads there.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ProcessOutput:
    """A subclass sets `backend` (audioproc's HOST), `sample_rate`, `block_size`,
    `realtime`, `target` (audioproc's TARGET) and `channels` before calling this __init__."""

    def __init__(self):
        self.engine = self.router = None
        self.server_lost = False
        self.restarts = 0  # audio processes restarted after a crash
        self.process: subprocess.Popen | None = None
        self._parent_end = None  # our end of the pipe whose closing tells the audio process we are gone
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="audio-watch", daemon=True)

    def new_engine(self, **settings) -> EngineLink:
        return EngineLink(self.sample_rate, **settings)

    def attach(self, engine: EngineLink, router) -> None:
        self.engine, self.router = engine, router

    # --- counters: the audio process's, in shared memory -------------------------------------

    @property
    def underflows(self) -> int:
        """The xruns that were ours, as the audio process's cycle saw them."""
        return self.engine.stats.own_xruns if self.engine else 0

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
        args = [
            self.backend,
            str(shared.fd),
            str(child_end),
            str(self.sample_rate),
            str(self.channels),
            self.target,
            str(self.block_size),
            json.dumps(self.engine.settings),
        ]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "instrument.play.audioproc", *args],
            env={**os.environ, **ONE_BLAS_THREAD},
            pass_fds=(shared.fd, child_end),
            stdin=subprocess.DEVNULL,
        )
        os.close(child_end)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while shared.stats.ready_pid != self.process.pid:
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._end_process()
                return False
            time.sleep(0.002)
        return True

    def _watch_loop(self) -> None:
        while not self._stop.wait(WATCH_POLL_S):
            if self.process.poll() is None or self._stop.is_set():
                self.each_turn()
                continue
            code = self.process.returncode
            self._end_process()
            if code != EXIT_SERVER_GONE:
                log.warning("the audio process ended (exit code %s); restarting it", code)
                if self._spawn():
                    self.restarts += 1
                    self.after_restart()
                    continue
            if self.process.returncode == EXIT_SERVER_GONE:
                self.server_lost = True  # the service waits for the server and opens a new output
                return
            time.sleep(0.2)  # it failed to start for another reason: the next turn tries again

    def each_turn(self) -> None:
        """Called by the watch thread about every WATCH_POLL_S while the audio process runs."""

    def after_restart(self) -> None:
        """Called by the watch thread once a crashed audio process plays again."""

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


class PortAudioProcessOutput(ProcessOutput):
    """The PortAudio stream in the audio process. Its server or device going away ends the
    audio process (a stream PortAudio cannot stop is left behind with it), and the service
    reopens once the device is back; PortAudio is initialised afresh in each audio process,
    which is what lets it see a restarted JACK server. MIDI stays rtmidi's, in this process."""

    backend = "portaudio"
    realtime = None  # PortAudio does not say

    def __init__(self, device_name: str, block_size: int, channels: int):
        from .portaudio import query_device

        _device, self.sample_rate = query_device(device_name)
        self.target, self.block_size, self.channels = device_name, block_size, channels
        super().__init__()

    @property
    def server_xruns(self) -> int:
        return self.underflows  # the stream's underflows are all PortAudio tells
