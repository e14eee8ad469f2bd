"""What a public server needs around the API besides the Host and Origin guard (app/http.py):
security headers, and a per-client limit on the expensive requests (encodes and packs)."""

from __future__ import annotations

import time
from collections import deque

from aiohttp import web

from ..http import is_loopback

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


def client_key(request: web.Request) -> str:
    """Who to count a request against: the peer address, or behind a proxy on this machine (nginx),
    the address that proxy appended last to X-Forwarded-For (the only entry it vouches for)."""
    peer = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and is_loopback(peer):
        return forwarded.rsplit(",", 1)[-1].strip()[:64] or peer
    return peer


class RateLimit:
    """At most `per_minute` requests per client in any 60 s (one worker's count; N workers allow N x)."""

    def __init__(self, per_minute: int, window_s: float = 60.0):
        self.per_minute = per_minute
        self.window_s = window_s
        self._seen: dict[str, deque] = {}

    def retry_after_s(self, key: str, now: float | None = None) -> float:
        """0 and counted if the client may go ahead; else the seconds until it may."""
        now = time.monotonic() if now is None else now
        if len(self._seen) > MAX_TRACKED_CLIENTS:
            self._seen = {k: q for k, q in self._seen.items() if q and q[-1] > now - self.window_s}
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= self.per_minute:
            return times[0] + self.window_s - now
        times.append(now)
        return 0.0
