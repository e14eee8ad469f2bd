"""Receiving an upload's body, whole, before it may wait for the worker's job thread.

A body that stops arriving must not hold anything another visitor needs: it is read under a
size cap, an idle limit (no byte for UPLOAD_IDLE_S) and a minimum average rate (after a grace
period), and a client receives at most UPLOADS_PER_CLIENT bodies at once in one worker. A body
that breaks one of these is refused with its reason, and a client that vanishes mid-body is
an UploadError too, never a traceback.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ...files.audio import AUDIO_SUFFIXES

UPLOAD_IDLE_S = 10.0  # the longest pause between two parts of a body
UPLOAD_GRACE_S = 10.0  # then the body must average at least UPLOAD_MIN_BYTES_PER_S ...
UPLOAD_MIN_BYTES_PER_S = 20_000  # ... (160 kbit/s: 20 MB within 17 minutes; a WAV snare in seconds)
UPLOADS_PER_CLIENT = 4  # bodies one client may be sending to one worker at once
CHUNK_BYTES = 64 * 1024


class UploadError(Exception):
    """An upload refused while its body was read: the HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Receiving:
    """How many bodies each client is sending to this worker right now."""

    def __init__(self, per_client: int = UPLOADS_PER_CLIENT):
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    @contextmanager
    def slot(self, client: str):
        if self._open[client] >= self.per_client:
            raise UploadError(429, f"too many uploads at once from {client}: at most {self.per_client}; retry later")
        self._open[client] += 1
        try:
            yield
        finally:
            self._open[client] -= 1
            if not self._open[client]:
                del self._open[client]


def upload_path(folder: str | Path, name: str) -> Path:
    """A fixed name in `folder`: only a known audio suffix is kept from the browser's `name`, for
    the parser's format guess."""
    suffix = Path(name).suffix.lower()
    return Path(folder) / f"upload{suffix if suffix in AUDIO_SUFFIXES else '.bin'}"


async def receive_body(
    request: web.Request,
    path: Path,
    max_bytes: int,
    idle_s: float = UPLOAD_IDLE_S,
    grace_s: float = UPLOAD_GRACE_S,
    min_bytes_per_s: float = UPLOAD_MIN_BYTES_PER_S,
) -> int:
    """Stream the body into `path`; its size, or UploadError (413, 408, 400)."""
    start = time.monotonic()
    size = 0
    with path.open("wb") as f:
        while True:
            # The deadline moves with every byte: the body must average min_bytes_per_s after grace_s.
            rate_deadline = start + grace_s + size / min_bytes_per_s
            wait_s = min(idle_s, rate_deadline - time.monotonic())
            try:
                if wait_s <= 0:
                    raise asyncio.TimeoutError
                chunk = await asyncio.wait_for(request.content.readany(), wait_s)
            except asyncio.TimeoutError:
                raise UploadError(
                    408,
                    f"the upload stalled after {size} bytes: a body must keep arriving (no pause over "
                    f"{idle_s:g} s, at least {min_bytes_per_s / 1000:g} kB/s after {grace_s:g} s)",
                ) from None
            except (RequestPayloadError, HttpProcessingError) as err:
                raise UploadError(400, f"the body could not be read: {_reason(err)}") from None
            except ConnectionError:
                raise UploadError(400, f"the client went away after {size} bytes") from None
            if not chunk:
                return size
            size += len(chunk)
            if size > max_bytes:
                raise UploadError(413, f"larger than {max_bytes / 1e6:g} MB; refused")
            f.write(chunk)


def _reason(err: Exception) -> str:
    """A decoding error's own words are aiohttp's; say what was wrong, in ours."""
    text = str(getattr(err, "__cause__", None) or err).lower()
    if "encoding" in text or "decode" in text or "decompress" in text:
        return "its Content-Encoding does not match its bytes (send the file as it is, or gzip or deflate it whole)"
    return "malformed or cut short"
