"""What a public server needs around the API besides the Host and Origin guard (app/http.py):
security headers, and a per-client limit on the expensive requests (encodes and packs)."""

from __future__ import annotations

import time
from collections import deque

from aiohttp import web

# The page loads only its own scripts, styles and pictures, fetches only from this server, and plays
# decoded audio; nothing may frame it.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; media-src 'self' blob:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_TRACKED_CLIENTS = 10_000  # the limiter forgets idle clients past this many


async def add_security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every answer, errors and static files included, carries the headers."""
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)


class RateLimit:
    """At most `per_minute` requests per client in any 60 s (one worker's count; N workers allow N x).
    A request is counted when it asks (so a burst cannot all pass at once) and given back if it is
    refused before its work runs: only what was served spends the budget."""

    def __init__(self, per_minute: int, window_s: float = 60.0):
        self.per_minute = per_minute
        self.window_s = window_s
        self._seen: dict[str, deque] = {}

    def retry_after_s(self, key: str, now: float | None = None) -> float:
        """0 and counted if the client may go ahead; else the seconds until it may."""
        return self.take(key, now)[0]

    def take(self, key: str, now: float | None = None) -> tuple[float, float | None]:
        """(0, when) and counted if the client may go ahead; else (the seconds until it may, None)."""
        now = time.monotonic() if now is None else now
        if len(self._seen) > MAX_TRACKED_CLIENTS:
            self._seen = {k: q for k, q in self._seen.items() if q and q[-1] > now - self.window_s}
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.per_minute:
            return times[0] + self.window_s - now, None
        times.append(now)
        return 0.0, now

    def give_back(self, key: str, when: float) -> None:
        """Uncount the request `take` counted at `when`: it was refused before its work ran."""
        times = self._seen.get(key)
        if times is not None and when in times:
            times.remove(when)
