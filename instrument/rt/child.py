"""The audio process: one cycle (rt/run.py) with an interpreter nothing else uses.

Started by host/audio_process.py as `python -m instrument.rt.child FD PIPE HOST`: FD is the
shared memory (rt/layout.py; the engine's settings are in it), PIPE the read end of a pipe the
main process holds open, HOST an `AudioHost` as JSON. Its main thread only waits for the main
process to go away, a SIGTERM, or the server or device to go away; the host's real-time thread
runs the cycle.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys

from .cycle import WAKE_SERVER_GONE, WAKE_STOP
from .layout import SharedAudio
from .run import AudioHost, ServerGone, WrongRate, open_run, wait, warn

MCL_CURRENT = 1  # mlockall(2): lock the pages mapped now, not later allocations (those could fail under the limit)
EXIT_SERVER_GONE = 3  # no server or device, or it went away: the main process waits for it to return
EXIT_WRONG_RATE = 4  # the server runs at another rate than the shared layout's
STREAM_CHECK_S = 0.05  # how often the host is checked for having gone away by itself


def settle(shared: SharedAudio) -> None:
    """Make the real-time thread's world still before it starts: start-up garbage frozen out of the
    collector's way, and every page mapped so far (code, the engine's buffers, the shared snare
    slots) faulted in and locked, so a cycle never waits on a page fault. Where the lock is refused
    (`ulimit -l`; JACK's real-time set-up raises it for the audio group) it plays on unlocked."""
    gc.collect()
    gc.freeze()
    mlockall = getattr(ctypes.CDLL(None), "mlockall", None)  # Linux and macOS; MCL_CURRENT is 1 on both
    shared.stats.memory_locked = int(mlockall is not None and mlockall(MCL_CURRENT) == 0)


def main(argv: list[str]) -> int:
    fd, pipe, host = int(argv[0]), int(argv[1]), AudioHost.from_json(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it fades out, then stops this one
    # SIGTERM is heard by this thread alone, and only while it waits: the host's threads (libjack's,
    # PortAudio's), started from here, inherit the block, so a stop never cuts one of their requests
    # short (libjack then prints "Cannot read socket ... Interrupted system call").
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    shared = SharedAudio.attach(fd)
    try:
        run = open_run(host, shared)
    except ServerGone as err:
        warn(f"audio: {err}")
        return EXIT_SERVER_GONE
    except WrongRate as err:
        warn(str(err))
        return EXIT_WRONG_RATE
    signal.signal(signal.SIGTERM, lambda *_: os.write(run.wake_w, WAKE_STOP))
    settle(shared)
    run.start()
    shared.stats.ready_pid = os.getpid()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    woke = wait(run, pipe, STREAM_CHECK_S)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # a second stop must not cut the closing short
    if woke == WAKE_SERVER_GONE:
        if host.backend != "jack":
            os._exit(EXIT_SERVER_GONE)  # PortAudio's clean-up at exit could wait forever on the dead stream
        run.stop()
        return EXIT_SERVER_GONE
    run.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
