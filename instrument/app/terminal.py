"""The terminal front end: one live status line, messages above it, and single-key commands.

Keys (when stdin is a terminal): space plays the current snare, s saves it,
l toggles the loop, p is panic (all sound off), q quits.
"""

from __future__ import annotations

import contextlib
import select
import sys
import threading

KEYS_HELP = "keys: space play, s save, l loop, p panic, q quit"
AUDITION_VELOCITY = 110


class Terminal:
    def __init__(self, live_status: bool):
        self.live = live_status and sys.stdout.isatty()
        self.keys = sys.stdin.isatty()
        self._lock = threading.Lock()  # messages come from several threads; lines must not interleave

    def say(self, line: str) -> None:
        with self._lock:
            sys.stdout.write(("\r\x1b[K" if self.live else "") + f"latent-snare: {line}\n")
            sys.stdout.flush()

    def status(self, line: str) -> None:
        if self.live:
            with self._lock:
                sys.stdout.write("\r\x1b[K" + line)
                sys.stdout.flush()

    @contextlib.contextmanager
    def raw_keys(self):
        """Keys arrive one at a time without Enter while the instrument runs; the terminal is restored after."""
        if not self.keys:
            yield
            return
        import termios
        import tty

        saved = termios.tcgetattr(sys.stdin)
        try:
            tty.setcbreak(sys.stdin.fileno())
            yield
        finally:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, saved)

    def read_key(self, timeout_s: float, stop: threading.Event) -> str | None:
        """The next key within `timeout_s`, or None; without a terminal, just waits (or until `stop`)."""
        if not self.keys:
            stop.wait(timeout_s)
            return None
        ready, _, _ = select.select([sys.stdin], [], [], timeout_s)
        return sys.stdin.read(1) if ready else None

    def handle_key(self, key: str, instrument) -> bool:
        """Act on one key through `instrument`, as every front end does; False means quit."""
        if key == "q":
            return False
        if key == " ":
            instrument.hit(AUDITION_VELOCITY)
        elif key == "s":
            instrument.background(instrument.save)
        elif key == "l":
            instrument.background(instrument.set_loop)  # a toggle; it says whether the loop is now on
        elif key == "p":
            self.say(instrument.panic())
        return True
