"""What both web servers share (the instrument's page, app/web, and the public server, app/serve):
the Host and Origin guard, and receiving an upload.

The guard has one rule. Host: a request must name one of the allowed names (any port): the
public names, and the loopback names when the server listens on loopback or on every interface
(against DNS rebinding and stray virtual hosts); a server on every interface with no public name
answers any Host (the instrument's page on a LAN). Origin: a request that changes something (any
method but GET and HEAD, and a WebSocket upgrade) from a browser carries an Origin, which must be
the page's own, so other sites cannot drive it. Without an Origin it is no browser's: the
instrument's page refuses it (it drives the instrument in the room, and has no API clients),
the public server lets it through (curl is its API client, and it has no cookies or sessions a
forged request could ride on).
"""

from __future__ import annotations

import ipaddress
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

from aiohttp import web

from ..files.audio import AUDIO_SUFFIXES

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
MAX_SHOWN_NAME = 80


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_host_names(bind_host: str, public_names: tuple[str, ...]) -> frozenset[str] | None:
    """The Host names a server bound to `bind_host` answers to; None: any."""
    names = {n.lower() for n in public_names}
    if bind_host in WILDCARD_HOSTS and not names:
        return None
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


def guard_middleware(allowed: frozenset[str] | None, origin_required: bool):
    """The Host and Origin rule above; `origin_required`: a changing request without an Origin is refused."""

    @web.middleware
    async def guard(request: web.Request, handler):
        if allowed is not None and host_name(request.host or "") not in allowed:
            return web.Response(
                status=403, text=f"unknown host {request.host!r}: this server answers to {', '.join(sorted(allowed))}\n"
            )
        changes = request.method not in ("GET", "HEAD") or request.headers.get("Upgrade", "").lower() == "websocket"
        origin = request.headers.get("Origin")
        if changes and (
            origin is None and origin_required or origin is not None and urlsplit(origin).netloc != request.host
        ):
            return web.json_response({"ok": False, "error": "refused: request from another site"}, status=403)
        return await handler(request)

    return guard


def shown_name(header: str | None) -> str:
    """A browser's file name made safe to display: last path part, no control characters, bounded."""
    name = unquote(header or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:MAX_SHOWN_NAME] or "upload"


async def receive_upload(request: web.Request, folder: str, name: str, max_bytes: int) -> Path | None:
    """Stream the request body into `folder` under a fixed name (only a known audio suffix is kept
    from the browser's `name`, for the parser's format guess); None once it passes `max_bytes`."""
    suffix = Path(name).suffix.lower()
    path = Path(folder) / f"upload{suffix if suffix in AUDIO_SUFFIXES else '.bin'}"
    size = 0
    with path.open("wb") as f:
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                return None
            f.write(chunk)
    return path
