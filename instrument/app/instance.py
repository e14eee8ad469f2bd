"""One instrument per MIDI port name and per control socket.

A second `latent-snare run` on the same virtual port would join as a second
client on the same name, and two instruments would answer one controller; on the
same socket, CLI commands would reach only one of them. Each running instrument
holds an advisory lock (flock) on a small file per port name and per socket, with
its PID inside. The kernel drops the lock when the process dies, however it dies,
so a crash never leaves a stale claim behind.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from ..errors import UserError
from .control import socket_path


def _lock_files(socket_file: Path, port_name: str, runtime_dir: Path) -> list[tuple[Path, str]]:
    files = [(Path(f"{socket_file}.lock"), f"socket {socket_file}")]
    if port_name:  # in the user's one runtime folder, wherever each instrument's socket is
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", port_name)[:64]
        files.append((runtime_dir / f"latent-snare-{os.getuid()}-port-{slug}.lock", f"MIDI port '{port_name}'"))
    return files


class InstanceClaim:
    """Held for the instrument's lifetime; `release()` (or process exit) lets the next one start."""

    def __init__(self, socket_file: Path, port_name: str, runtime_dir: Path | None = None):
        self._fds: list[int] = []
        try:
            for path, what in _lock_files(Path(socket_file), port_name, runtime_dir or socket_path().parent):
                self._claim(path, what)
        except BaseException:
            self.release()
            raise

    def _claim(self, path: Path, what: str) -> None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            raise UserError(f"{path}: cannot claim the {what} ({err.strerror})") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UserError(
                f"latent-snare is already running on the {what} (PID {pid}); stop it first, "
                "or give this one another --virtual-port and --socket"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fds.append(fd)

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing drops the flock
        self._fds.clear()
