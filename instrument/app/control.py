"""The control socket: `latent-snare recall/drop/save/loop/model/learn/status` talk to the running instrument.

A Unix socket in $XDG_RUNTIME_DIR (or /tmp), private to the user. One request
per connection: a JSON line {"cmd": ..., ...}; one JSON line back, {"ok": true,
"message": ...} or {"ok": false, "error": ...}. The message is a line for a
person, except for `state`, whose message is a JSON object (model, cc, latent,
loop, bpm, voices, notes, decodes, own_xruns, inputs, save_presses, saved...):
tools and tests read that, never the human `status` line. Handlers run on the
socket's own thread, never on the MIDI or audio threads.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from pathlib import Path

from ..errors import UserError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


def socket_path() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"latent-snare-{os.getuid()}.sock"


class ControlServer:
    def __init__(self, handlers: dict, path: Path | None = None):
        self.handlers = handlers  # cmd -> callable(**args) returning a message: a string, or a dict for `state`
        self.path = Path(path or socket_path())
        self._sock = None
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)

    def start(self) -> bool:
        """Listen; False (and a warning) if another instrument already answers on this socket."""
        if self.path.exists():
            try:
                with socket.socket(socket.AF_UNIX) as probe:
                    probe.connect(str(self.path))
                log.warning("another latent-snare answers on %s; CLI commands will reach that one", self.path)
                return False
            except OSError:
                self.path.unlink()  # left behind by an instrument that crashed
        self._sock = socket.socket(socket.AF_UNIX)
        old_umask = os.umask(0o177)  # only this user may control the instrument
        try:
            self._sock.bind(str(self.path))
        finally:
            os.umask(old_umask)
        self._sock.listen(4)
        self._thread.start()
        return True

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5.0)
                reply = self._answer(conn)
                try:
                    conn.sendall((json.dumps(reply) + "\n").encode())
                except OSError:
                    pass  # the client went away; nothing to tell it

    def _answer(self, conn) -> dict:
        try:
            data = b""
            while not data.endswith(b"\n") and len(data) <= MAX_REQUEST_BYTES:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                return {"ok": False, "error": "request too long"}
            request = json.loads(data)
            handler = self.handlers[request.pop("cmd")]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {"ok": False, "error": f"not a request; commands: {', '.join(self.handlers)}"}
        try:
            return {"ok": True, "message": handler(**request)}
        except UserError as err:
            return {"ok": False, "error": str(err)}
        except TypeError as err:
            return {"ok": False, "error": f"bad arguments: {err}"}
        except Exception as err:  # a bug in a handler: report it, keep serving
            log.exception("control command %r failed", request)
            return {"ok": False, "error": f"internal error: {err}"}

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self._sock.close()
            self._thread.join(2.0)
            self.path.unlink(missing_ok=True)
            self._sock = None


def send_command(cmd: str, timeout_s: float = 10.0, socket_file: Path | None = None, **args):
    """Ask the running instrument; returns its message (a dict for `state`) or raises UserError with its error.
    `args` are the command's own (`drop` sends a `path`: the audio file, not the socket's)."""
    path = Path(socket_file or socket_path())
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(path))
            sock.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError) as err:
        raise UserError(
            f"the instrument is not running (nothing answers on {path}); start it with `latent-snare run`"
        ) from err
    except OSError as err:
        raise UserError(f"the instrument did not answer on {path}: {err}") from err
    try:
        reply = json.loads(data)
    except ValueError as err:
        raise UserError(f"the instrument sent an unreadable reply on {path}") from err
    if not reply.get("ok"):
        raise UserError(reply.get("error", "failed"))
    return reply.get("message", "")
