"""What `serve` writes to its logs: gunicorn's access log lines, and one warning per refused
connection or malformed request, rate-limited.

The access log is gunicorn's default format (what log parsers for gunicorn expect):

    127.0.0.1 - - [04/Dec/2026:10:00:00 +0000] "GET /snare.wav?x=1&y=2 HTTP/1.1" 200 67244 "-" "curl/8.5.0"

with the visitor's address (see clients.py) first. A refusal is one line, never a traceback: a
client should not buy 500 bytes of log with a 27-byte request, so at most REFUSALS_PER_WINDOW
lines are written per worker in any REFUSAL_WINDOW_S, and the next line counts what was left out.
"""

from __future__ import annotations

import logging
import time

from aiohttp.abc import AbstractAccessLogger

ACCESS = logging.getLogger("gunicorn.access")
ERRORS = logging.getLogger("gunicorn.error")
REFUSALS_PER_WINDOW = 10
REFUSAL_WINDOW_S = 10.0
MAX_LOGGED_CHARS = 2000  # of a request line, a Referer or a User-Agent


def shown(text: str | None, limit: int = MAX_LOGGED_CHARS) -> str:
    """A client's text made safe for one log line: no control characters, quotes or backslashes
    unescaped (no forged lines), bounded."""
    if not text:
        return "-"
    text = text[:limit]
    return "".join(c if c.isprintable() and c not in '"\\' else f"\\x{ord(c):02x}" for c in text)


class RefusalLog:
    """Warnings about refused requests: one line each, at most `per_window` per `window_s`."""

    def __init__(self, per_window: int = REFUSALS_PER_WINDOW, window_s: float = REFUSAL_WINDOW_S):
        self.per_window, self.window_s = per_window, window_s
        self._window_start = -window_s
        self._written = self._left_out = 0

    def refused(self, peer: str | None, reason: str) -> None:
        now = time.monotonic()
        if now - self._window_start >= self.window_s:
            self._window_start, self._written = now, 0
        if self._written >= self.per_window:
            self._left_out += 1
            return
        self._written += 1
        more = f" ({self._left_out} more refused, not logged)" if self._left_out else ""
        self._left_out = 0
        ERRORS.warning("refused %s: %s%s", shown(peer, 64), reason, more)


def access_logger(client_of):
    """An aiohttp access logger class writing gunicorn's format; `client_of(request)` is the address
    shown first."""

    class GunicornFormat(AbstractAccessLogger):
        def log(self, request, response, time_s: float) -> None:
            version = f"HTTP/{request.version.major}.{request.version.minor}"
            line = f"{request.method} {request.raw_path} {version}"
            size = response.content_length if response.content_length is not None else "-"
            self.logger.info(
                '%s - - [%s] "%s" %s %s "%s" "%s"',
                shown(client_of(request), 64),
                time.strftime("%d/%b/%Y:%H:%M:%S %z"),
                shown(line),
                response.status,
                size,
                shown(request.headers.get("Referer")),
                shown(request.headers.get("User-Agent")),
            )

    return GunicornFormat
