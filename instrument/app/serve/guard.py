"""What a public server needs around the API: Host and Origin checks, security headers, and a
per-client limit on the expensive requests (encodes and packs).

Host: a request must name one of the configured public names (any port), or a loopback name when
the server listens on loopback or on every interface; anything else is refused (DNS rebinding,
stray virtual hosts). Origin: a browser's POST must come from the page's own origin, so other
sites cannot spend a visitor's encodes; API clients (curl) send no Origin and are let through,
as there are no cookies or sessions a forged request could ride on.
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from urllib.parse import urlsplit

from aiohttp import web

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_host_names(bind_host: str, public_names: tuple[str, ...]) -> frozenset[str]:
    names = {n.lower() for n in public_names}
    if bind_host in WILDCARD_HOSTS or is_loopback(bind_host):
        names.update(LOOPBACK_NAMES)
    else:
        names.add(bind_host.lower())
    return frozenset(names)


def host_name(host_header: str) -> str:
    """'Example.org:8765' -> 'example.org'; '[::1]:80' -> '::1'."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard_middleware(allowed: frozenset[str]):
    @web.middleware
    async def guard(request: web.Request, handler):
        if host_name(request.host or "") not in allowed:
            return web.Response(
                status=403, text=f"unknown host {request.host!r}: this server answers to {', '.join(sorted(allowed))}\n"
            )
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin is not None and urlsplit(origin).netloc != request.host:
            return web.Response(status=403, text=f"refused: a {request.method} from another site ({origin[:80]!r})\n")
        return await handler(request)

    return guard


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
