"""The output: the audio cycle (rt/) started, watched and stopped, in an audio process of its own
(the default, `audio.separate_process: true`) or in this process.

Beside a busy machine, an audio callback in this process waits for the GIL while the decode
worker, the page or the MIDI thread holds it. The audio process runs the cycle with an
interpreter nothing else uses; this process keeps decoding, the router, the page, saving and
the terminal, and talks to the cycle through shared memory only (rt/layout.py, host/link.py),
wherever the cycle runs.

`CycleOutput` starts the cycle and keeps it: an `audio-watch` thread restarts an audio process
that dies while its server or device is there (the knobs, the model and the snare live here and
in shared memory, so nothing is lost but the sounding voices), and sets `server_lost` when the
server or device went away, for the service to open a new output once it is back. A server can
go away without a word (PipeWire's libjack never calls the shutdown callback, a stopped jackd
says nothing): the same thread also watches the cycle's frame count, and when no cycle has run
for CYCLES_STOPPED_S it sets `server_lost` and `cycles_stopped` (`lost_why` says it in words).
Such a server may hang any call into it, so that output is abandoned rather than closed.
`jack_output.JackOutput` and `portaudio_output.PortAudioOutput` say what each host adds.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from ..errors import UserError
from ..rt.child import EXIT_SERVER_GONE
from ..rt.layout import load_acquire
from ..rt.run import AudioHost, JackRun, PortAudioRun, ServerGone, WrongRate, open_run
from .link import EngineLink

log = logging.getLogger(__name__)

WATCH_POLL_S = (
    0.002  # a dead audio process is noticed, and the MIDI the cycle hands over reaches the router, within 2 ms
)
READY_TIMEOUT_S = 10.0
# An audio process that ended cleanly (exit 0, or SIGTERM's default death) was asked to stop. When the
# whole process group is stopped (`timeout`, systemd's KillMode=control-group) it can end before
# this process has even run its own signal handler: wait this long for our stop before calling it a crash.
ASKED_TO_STOP_GRACE_S = 2.0
ASKED_TO_STOP_CODES = (0, -signal.SIGTERM)
# No cycle for this long while the cycle should run: the server went away or hangs. Above any
# stall a busy machine makes (a 2048-frame quantum is 43 ms; the e2e tests stop the audio process
# for 100 ms), below what a player waits before restarting by hand.
CYCLES_STOPPED_S = 0.5
ABANDON_AFTER_S = 1.0  # a call into a server that stopped answering is left behind after this long
# The audio process mixes on one thread: numpy's BLAS would otherwise start idle worker threads there.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class CycleOutput:
    """A subclass sets `backend`, `sample_rate`, `block_size`, `realtime`, `target` (AudioHost's)
    and `channels` before calling this __init__."""

    advice = ""  # a line for the player at start-up about the choice of backend, or nothing

    def __init__(self, separate_process: bool = True):
        self.separate_process = separate_process
        self.engine: EngineLink | None = None
        self.router = None
        self.server_lost = False
        self.cycles_stopped = False  # no cycle ran for CYCLES_STOPPED_S: the server may hang any call
        self.lost_why = ""  # why server_lost was set, for the player
        self._frames = -1  # the cycle's frame count when the watch last looked, and when it last moved
        self._frames_moved_at = 0.0
        self._stopping = False  # a plain flag: stopping() is called from a signal handler
        self.restarts = 0  # audio processes restarted after a crash
        self.process: subprocess.Popen | None = None
        self.run: JackRun | PortAudioRun | None = None  # the cycle, when it runs in this process
        self._parent_end = None  # our end of the pipe whose closing tells the audio process we are gone
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_loop, name="audio-watch", daemon=True)

    @property
    def host(self) -> AudioHost:
        return AudioHost(self.backend, self.channels, self.target, self.block_size)

    def attach(self, engine: EngineLink, router) -> None:
        self.engine, self.router = engine, router

    # --- counters: the cycle's, in shared memory ---------------------------------------------

    @property
    def own_xruns(self) -> int:
        """The xruns that were ours, as the cycle saw them."""
        return self.engine.stats.own_xruns if self.engine else 0

    @property
    def callback_errors(self) -> int:
        return self.engine.stats.callback_errors if self.engine else 0

    @property
    def audio_pid(self) -> int | None:
        return self.process.pid if self.process else None

    # --- the cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.separate_process and not self._spawn():
            raise UserError(f"the audio process did not start (exit code {self.process.returncode}); see the log above")
        if not self.separate_process:
            try:
                self.run = open_run(self.host, self.engine.shared)
            except (ServerGone, WrongRate) as err:
                raise UserError(f"audio: {err}") from err
            self.run.start()
        self.cycles_ran()
        self._watch.start()

    def _spawn(self) -> bool:
        """Start an audio process and wait until it plays; False if it ended first."""
        shared = self.engine.shared
        self.engine.audio_starting()
        shared.stats.ready_pid = 0
        child_end, self._parent_end = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "instrument.rt.child", str(shared.fd), str(child_end), self.host.to_json()],
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

    def frames(self) -> int:
        """The cycle's frame count (shared memory): it moves while cycles run."""
        return load_acquire(self.engine.shared.snares, "frames")

    def cycles_ran(self) -> None:
        """A cycle is starting (or was just restarted): the stall clock starts from now."""
        self._frames, self._frames_moved_at = self.frames(), time.monotonic()

    def _cycles_stopped(self) -> bool:
        frames, now = self.frames(), time.monotonic()
        if frames != self._frames:
            self._frames, self._frames_moved_at = frames, now
            return False
        if now - self._frames_moved_at < CYCLES_STOPPED_S:
            return False
        self.cycles_stopped, self.server_lost = True, True
        self.lost_why = f"no audio cycle for {now - self._frames_moved_at:.1f} s (the server stopped without a word)"
        return True

    def _watch_loop(self) -> None:
        while not self._stop.wait(WATCH_POLL_S):
            if self.run is not None:  # in this process: nothing to restart
                # A PortAudio stream whose server died cannot be closed, nor PortAudio restarted, in
                # the process that opened it (it waits forever): only JACK's loss is reopened here.
                if self.backend == "jack" and self.run.server_gone():
                    self.lost_why = "it went away"
                    self.server_lost = True
                    return
                if self.backend == "jack" and self._cycles_stopped():
                    return  # the service reopens the output once a server answers
                self.each_turn()
                continue
            if self.process.poll() is None or self._stop.is_set():
                if self.process.poll() is None and self._cycles_stopped():
                    return  # the service reopens the output once a server answers
                self.each_turn()
                continue
            code = self.process.returncode
            self._end_process()
            if code in ASKED_TO_STOP_CODES and self._stop_follows():
                return  # the instrument is stopping too: a stop, not a crash
            if code != EXIT_SERVER_GONE:
                log.warning("the audio process ended (exit code %s); restarting it", code)
                if self._spawn():
                    self.restarts += 1
                    self.cycles_ran()
                    self.after_restart()
                    continue
            if self.process.returncode == EXIT_SERVER_GONE:
                self.lost_why = "it went away"
                self.server_lost = True  # the service waits for the server and opens a new output
                return
            time.sleep(0.2)  # it failed to start for another reason: the next turn tries again

    def stopping(self) -> None:
        """The instrument is stopping (safe in a signal handler): an audio process that ends now
        was stopped with it, not crashed."""
        self._stopping = True

    def _stop_follows(self) -> bool:
        deadline = time.monotonic() + ASKED_TO_STOP_GRACE_S
        while not (self._stopping or self._stop.is_set()):
            if time.monotonic() > deadline:
                return False
            time.sleep(WATCH_POLL_S)
        return True

    def each_turn(self) -> None:
        """Called by the watch thread about every WATCH_POLL_S while the cycle runs."""

    def after_restart(self) -> None:
        """Called by the watch thread once a crashed audio process plays again."""

    def _end_process(self) -> None:
        if self._parent_end is not None:
            os.close(self._parent_end)
            self._parent_end = None
        if self.process is not None and self.process.poll() is None:
            if self.cycles_stopped:  # its clean stop would call into a server that may never answer
                self.process.kill()
                self.process.wait()
                return
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
        if self.run is not None:
            if self.cycles_stopped:
                abandon_if_hung(self.run.stop, "the audio cycle")
            else:
                self.run.stop()
        self._end_process()


def abandon_if_hung(fn, what: str) -> bool:
    """Call `fn` on a thread of its own and wait ABANDON_AFTER_S for it: a call into a server that
    stopped answering never returns, and must not hold the instrument with it. True if it returned."""
    thread = threading.Thread(target=fn, name=f"closing {what}", daemon=True)
    thread.start()
    thread.join(ABANDON_AFTER_S)
    if thread.is_alive():
        log.info("%s did not close within %.1f s; left behind", what, ABANDON_AFTER_S)
    return not thread.is_alive()
