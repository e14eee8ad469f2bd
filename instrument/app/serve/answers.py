"""Every error the server sends has one shape, whichever layer refused the request:

    {"ok": false, "status": 429, "message": "too many encodes and packs: ..."}

with the status in the HTTP status line too, and a `message` of one line saying what was wrong
and what is allowed. No answer names the server's software or its version.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from .guard import SECURITY_HEADERS

log = logging.getLogger("gunicorn.error")


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"ok": False, "status": status, "message": message}).encode() + b"\n"


class ErrorAnswer(web.Response):
    """An error in the one shape, with the security headers and no Server header (also below the
    application, where aiohttp's response-prepare signal does not run)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(
            status=status,
            body=error_body(status, message),
            content_type="application/json",
            headers={**SECURITY_HEADERS, **(headers or {})},
        )

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        self.headers.popall("Server", None)


class Refused(Exception):
    """Raised by a handler: answered as an ErrorAnswer."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


async def drop_server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: aiohttp adds `Server: Python/3.x aiohttp/3.y` to every answer."""
    response.headers.popall("Server", None)


@web.middleware
async def errors_in_one_shape(request: web.Request, handler):
    """Any 4xx or 5xx, raised or returned by a handler or aiohttp's router, becomes an ErrorAnswer."""
    try:
        response = await handler(request)
    except Refused as refused:
        return ErrorAnswer(refused.status, str(refused), refused.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = exc
    except Exception:
        log.exception("%s %s: the handler failed", request.method, request.path)
        return ErrorAnswer(500, "the server failed on this request; it is logged")
    if response.status < 400 or isinstance(response, ErrorAnswer):
        return response
    keep = {k: v for k, v in response.headers.items() if k in ("Retry-After", "Allow")}
    return ErrorAnswer(response.status, _message(request, response), keep)


def _message(request: web.Request, response: web.Response) -> str:
    if response.status == 404:
        return "no such page; the API: /snare.wav, /models, /settings, /map/NAME.png, /pack.zip, /encode, /health"
    if response.status == 405:
        return f"{request.method[:16]} is not allowed here; allowed {response.headers.get('Allow', 'GET')}"
    text = ""
    if isinstance(response, web.Response) and isinstance(response.body, bytes):
        text = response.body.decode(errors="replace")
    if response.content_type == "application/json":
        try:
            data = json.loads(text)
            text = data.get("message") or data.get("error") or ""
        except (ValueError, AttributeError):
            text = ""
    text = " ".join(text.split())
    return text or response.reason or f"error {response.status}"
