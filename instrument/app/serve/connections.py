"""Each worker's connections, below the application: at most CONNECTIONS_PER_PEER open from one
address, and a request aiohttp cannot parse answered in the one error shape with one warning.

aiohttp's own answer to a malformed request logs a traceback at ERROR, echoes up to 100
characters of the request, and carries no security headers; here it is a fixed one-line reason,
the headers, and a rate-limited warning. A named proxy (--forwarded-allow-ips) carries many
visitors, so its connections are not capped; its visitors are counted by uploads.Receiving.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import http_exceptions, web

from .answers import ErrorAnswer, error_body
from .clients import Proxies
from .guard import SECURITY_HEADERS
from .logs import RefusalLog

CONNECTIONS_PER_PEER = 8  # a browser opens at most 6 to one host
KEEPALIVE_S = 2.0  # an idle connection, or one whose headers have not arrived, is closed after this
# After an answer sent before its body was read (413, 408), the rest of the body is read and
# dropped this long, so the client sees the answer and not a reset; then the connection closes.
LINGER_S = 2.0


# What was wrong with a request aiohttp's parser refused, in fixed words: never its own bytes.
_REASONS = (
    (http_exceptions.LineTooLong, "a line of the request is too long (at most 8190 bytes)"),
    (http_exceptions.BadHttpMethod, "not an HTTP method"),
    (http_exceptions.BadStatusLine, "the request line is not HTTP"),
    (http_exceptions.InvalidHeader, "a malformed header"),
    (http_exceptions.InvalidURLError, "a malformed URL"),
    (http_exceptions.PayloadEncodingError, "a malformed body framing (Content-Length or Transfer-Encoding)"),
)


def _reason(exc: BaseException | None) -> str:
    if isinstance(exc, http_exceptions.ContentEncodingError):
        if "install" in str(exc).lower():  # aiohttp's advice to install a decoder is for the server's owner
            return "Content-Encoding not accepted; allowed gzip, deflate or none"
        return "the body does not decode as its Content-Encoding says"
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "a malformed request")


def _peer(transport) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) else "?"


class Protocol(web.RequestHandler):
    """One connection of a ServeServer."""

    def connection_made(self, transport) -> None:
        server = self._manager
        super().connection_made(transport)  # counts it, and schedules reading its requests
        peer = server.over_cap(self)
        if peer is None:
            return
        # Refused after aiohttp has set the connection up, so that its own task sees it closed.
        self.refusals.refused(peer, f"a connection over {server.per_peer} open from one address")
        body = error_body(429, f"too many connections from {peer}: at most {server.per_peer} open at once")
        head = "".join(f"{k}: {v}\r\n" for k, v in SECURITY_HEADERS.items())
        transport.write(
            f"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n{head}"
            f"Retry-After: 5\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        self.force_close()

    def handle_error(self, request, status: int = 500, exc=None, message=None):
        reason = _reason(exc) if status == 400 else "the server failed on this request"
        self.refusals.refused(request.remote, f"malformed request ({reason})")
        if request.writer.output_size > 0:
            raise ConnectionError("the answer had begun; the connection is closed instead")
        answer = ErrorAnswer(status, f"malformed request: {reason}")
        answer.force_close()
        answer.unlogged = True  # gunicorn does not access-log a request it could not parse
        return answer

    def log_access(self, request, response, time) -> None:
        if not getattr(response, "unlogged", False):
            super().log_access(request, response, time)


class ServeServer(web.Server):
    """aiohttp's Server with a per-peer connection cap and the Protocol above."""

    def __init__(self, *args, proxies: Proxies, refusals: RefusalLog, per_peer: int = CONNECTIONS_PER_PEER, **kw):
        super().__init__(*args, **kw)
        self.proxies, self.refusals, self.per_peer = proxies, refusals, per_peer
        self.open: Counter[str] = Counter()
        self._peer_of: dict = {}

    def __call__(self) -> Protocol:
        protocol = Protocol(self, loop=self._loop, **self._kwargs)
        protocol.refusals = self.refusals
        return protocol

    def connection_made(self, handler, transport) -> None:
        super().connection_made(handler, transport)
        peer = _peer(transport)
        if not self.proxies.named(peer):
            self._peer_of[handler] = peer
            self.open[peer] += 1

    def over_cap(self, handler) -> str | None:
        """The peer's address if this connection is one too many from it."""
        peer = self._peer_of.get(handler)
        return peer if peer is not None and self.open[peer] > self.per_peer else None

    def connection_lost(self, handler, exc=None) -> None:
        peer = self._peer_of.pop(handler, None)
        if peer is not None:
            self.open[peer] -= 1
            if self.open[peer] <= 0:
                del self.open[peer]
        super().connection_lost(handler, exc)


class ServeRunner(web.AppRunner):
    """An AppRunner whose server is a ServeServer (gunicorn's aiohttp worker runs what the app
    factory returns)."""

    def __init__(self, app: web.Application, proxies: Proxies, refusals: RefusalLog, **kwargs):
        super().__init__(app, **kwargs)
        self._serve_args = dict(proxies=proxies, refusals=refusals)
        # What the runner itself takes stays with it; the rest is each connection's.
        self._handler_kwargs = {k: v for k, v in kwargs.items() if k not in ("shutdown_timeout", "handle_signals")}

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()  # starts the app and freezes it
        return ServeServer(
            base.request_handler,
            request_factory=base.request_factory,
            loop=asyncio.get_running_loop(),
            **self._serve_args,
            **self._handler_kwargs,
            debug=False,
        )
