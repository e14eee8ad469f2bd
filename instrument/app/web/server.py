"""The web control page: an XY pad over the latent map, audition, drop a file, save and download.

aiohttp runs on its own thread ("web") with its own event loop. It talks to the
instrument only through `Instrument`'s methods, the same interface as MIDI and
the control socket: pad moves and hits return at once (newest move wins in the
decode worker); saves, uploads, recalls and model switches run on the
instrument's `jobs` thread, so the web thread never waits on disk or decoding.

State goes to every open page at most every STATE_INTERVAL_S, and only when it
changed, so a flood of knob or pad moves coalesces into a few messages.

Security: the page binds to 127.0.0.1 unless configured otherwise. Host and
Origin are checked by app/http.py's guard; here an Origin is required.
Browser file names are only ever shown, never used as paths. Uploads are capped
in size here and parsed in a sandboxed child (untrusted.py), which caps duration.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import tempfile
import threading
from pathlib import Path

import soundfile as sf
from aiohttp import WSMsgType, web

from ...config import LOOP_BPM_RANGE
from ...errors import UserError
from ...files.landmarks import landmarks_of
from ...files.saving import render_snare
from ...model.knobs import CC_MAX, CC_MIN
from ..http import WILDCARD_HOSTS, allowed_host_names, guard_middleware, receive_upload, shown_name

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
STATE_INTERVAL_S = 0.04  # at most 25 state messages a second per page
MAX_WS_MESSAGE_BYTES = 4096


def _number(msg: dict, key: str, lo: float, hi: float) -> float:
    value = msg.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not lo <= value <= hi
    ):
        raise ValueError(f"{key} must be a number in {lo:g}..{hi:g}")
    return value


class WebPage:
    def __init__(self, instrument, config):
        self.instrument = instrument
        self.config = config  # config.web
        self.url: str | None = None
        self.malformed = 0  # rejected WebSocket messages
        self._sockets: set[web.WebSocketResponse] = set()
        self._maps: dict[str, bytes] = {}  # model name -> pad picture (PNG)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: OSError | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="web", daemon=True)

    # --- lifetime (called from the main thread) ----------------------------------------------

    def start(self) -> str:
        """Serve the page; returns its address, or raises UserError if the port cannot be had."""
        self._thread.start()
        self._started.wait(10.0)
        if self._error is not None or self.url is None:
            c = self.config
            reason = self._error.strerror if self._error else "it did not start"
            raise UserError(
                f"web page: cannot listen on {c.host}:{c.port} ({reason}); choose another with --web-port PORT "
                "(0: any free port) or web.port, or turn the page off with web.enabled: false"
            )
        return self.url

    def close(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive():
            self._thread.join(3.0)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.config.host, self.config.port).start()
        except OSError as err:
            self._error = err
            self._started.set()
            await runner.cleanup()
            return
        port = runner.addresses[0][1]
        host = self.config.host
        self.url = f"http://{'127.0.0.1' if host in WILDCARD_HOSTS else host}:{port}/"
        self._started.set()
        broadcaster = asyncio.create_task(self._broadcast())
        await self._stopping.wait()
        broadcaster.cancel()
        for ws in list(self._sockets):
            await ws.close(code=1001, message=b"instrument stopped")
        await runner.cleanup()

    def _app(self) -> web.Application:
        guard = guard_middleware(allowed_host_names(self.config.host, ()), origin_required=True)
        app = web.Application(middlewares=[guard], client_max_size=self._max_upload_bytes + 1)
        app.add_routes(
            [
                web.get("/", lambda _: web.FileResponse(STATIC / "index.html")),
                web.get("/ws", self._websocket),
                web.get("/map/{model}.png", self._map),
                web.get("/landmarks/{model}.json", self._landmarks),
                web.get("/snare.wav", self._snare),
                web.get("/history", self._history),
                web.get("/saved/{number:\\d+}", self._saved),
                web.post("/save", self._save),
                web.post("/upload", self._upload),
            ]
        )
        app.router.add_static("/static", STATIC)
        return app

    @property
    def _max_upload_bytes(self) -> int:
        return int(self.config.max_upload_mb * 1e6)

    async def _job(self, fn, *args):
        """Run a slow instrument method on its jobs thread (one at a time, shared with MIDI's saves)."""
        return await asyncio.get_running_loop().run_in_executor(self.instrument.jobs, fn, *args)

    # --- state, both ways --------------------------------------------------------------------

    def _hello(self) -> dict:
        controls = self.instrument.router.controls  # live: MIDI learn may have changed them since start
        return {
            **self._state(),
            "type": "hello",
            "models": self.instrument.program_names(),
            "cc_names": [controls["midi.cc_x"], controls["midi.cc_y"]],
            "max_upload_mb": self.config.max_upload_mb,
        }

    def _state(self) -> dict:
        return {"type": "state", **self.instrument.snapshot()}

    async def _broadcast(self) -> None:
        last = None
        while True:
            await asyncio.sleep(STATE_INTERVAL_S)
            if not self._sockets:
                continue
            state = self._state()
            if state != last:
                last = state
                for ws in list(self._sockets):
                    await self._send(ws, state)

    async def _send(self, ws: web.WebSocketResponse, message: dict) -> None:
        try:
            await ws.send_json(message)
        except (ConnectionError, RuntimeError):
            self._sockets.discard(ws)  # the page went away mid-send

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=MAX_WS_MESSAGE_BYTES, heartbeat=10.0)
        await ws.prepare(request)
        self._sockets.add(ws)
        await self._send(ws, self._hello())
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                reply = await self._answer(msg.data)
                if reply:
                    await self._send(ws, reply)
        finally:
            self._sockets.discard(ws)
        return ws

    async def _answer(self, text: str) -> dict | None:
        """One page message -> an instrument call. Anything malformed is refused with a reason; playback never notices."""
        inst = self.instrument
        try:
            try:
                msg = json.loads(text)
            except ValueError:
                raise ValueError("not JSON") from None
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "move":
                inst.move(_number(msg, "x", CC_MIN, CC_MAX), _number(msg, "y", CC_MIN, CC_MAX))
                return None
            if kind == "hit":
                inst.hit(round(_number(msg, "velocity", 1, 127)))
                return None
            if kind == "loop":
                on = msg.get("on")
                if on is not None and not isinstance(on, bool):
                    raise ValueError("on must be true, false or null (toggle)")
                bpm = _number(msg, "bpm", *LOOP_BPM_RANGE) if msg.get("bpm") is not None else None
                return {"type": "said", "text": await self._job(inst.set_loop, on, bpm)}
            if kind == "model":
                name = msg.get("name")
                if name not in inst.program_names():
                    raise ValueError(f"model must be one of {', '.join(inst.program_names())}")
                return {"type": "said", "text": await self._job(inst.switch_model, name)}
            if kind == "recall":
                return {"type": "said", "text": await self._job(inst.recall, int(_number(msg, "number", 1, 1e9)))}
            raise ValueError("type must be move, hit, loop, model or recall")
        except (ValueError, TypeError) as err:
            self.malformed += 1
            return {"type": "error", "text": f"message refused: {err}"}
        except UserError as err:
            return {"type": "error", "text": str(err)}

    # --- pictures and sounds -----------------------------------------------------------------

    async def _map(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in self._maps:
            if name not in self.instrument.program_names():
                raise web.HTTPNotFound(text=f"no model {name!r}")
            from ...files.latent_map import pad_picture

            model = await self._job(self.instrument.model_named, name)
            self._maps[name] = await self._job(pad_picture, model)
        return web.Response(body=self._maps[name], content_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def _landmarks(self, request: web.Request) -> web.Response:
        """Where the model puts its training snares, for the pad's dots and the nearest name."""
        name = request.match_info["model"]
        if name not in self.instrument.program_names():
            raise web.HTTPNotFound(text=f"no model {name!r}")
        model = await self._job(self.instrument.model_named, name)
        return web.json_response(landmarks_of(model), headers={"Cache-Control": "max-age=3600"})

    async def _snare(self, request: web.Request) -> web.Response:
        """The current snare as a WAV, for the page's play-in-browser option."""
        velocity = request.query.get("velocity", "127")
        if not velocity.isdigit() or not 1 <= int(velocity) <= 127:
            raise web.HTTPBadRequest(text="velocity must be 1..127")
        playing = self.instrument.worker.now_playing
        audio = self.instrument.config.audio
        wave = await self._job(
            render_snare,
            playing.model,
            playing.latent,
            int(velocity),
            self.instrument.config.voices.velocity_range_db,
            audio.ceiling_db,
        )
        data = io.BytesIO()
        sf.write(data, wave, playing.model.sample_rate, subtype="PCM_16", format="WAV")
        return web.Response(body=data.getvalue(), content_type="audio/wav", headers={"Cache-Control": "no-store"})

    # --- keeping what you like ---------------------------------------------------------------

    async def _history(self, _request: web.Request) -> web.Response:
        entries = await self._job(self.instrument.history)
        return web.json_response(
            [
                {"number": e.number, "file": e.file, "model": e.model, "cc": list(e.cc), "time": e.time}
                for e in reversed(entries)
            ]
        )

    async def _save(self, _request: web.Request) -> web.Response:
        try:
            entry = await self._job(self.instrument.save_entry)
        except UserError as err:
            return web.json_response({"ok": False, "error": str(err)})
        self.instrument.say(f"saved #{entry.number} from the page: {self.instrument.save_folder / entry.file}")
        return web.json_response(
            {"ok": True, "number": entry.number, "file": entry.file, "url": f"/saved/{entry.number}"}
        )

    async def _saved(self, request: web.Request) -> web.StreamResponse:
        number = int(request.match_info["number"])
        entry = next((e for e in await self._job(self.instrument.history) if e.number == number), None)
        path = self.instrument.save_folder / entry.file if entry else None
        # The name comes from our own history.json; still, only a plain name inside the save folder is served.
        if entry is None or Path(entry.file).name != entry.file or not path.is_file():
            raise web.HTTPNotFound(text=f"no saved snare #{number}")
        return web.FileResponse(
            path, headers={"Content-Disposition": f'attachment; filename="{entry.file}"', "Content-Type": "audio/wav"}
        )

    async def _upload(self, request: web.Request) -> web.Response:
        """The raw file as the body; its name in X-File-Name (URI-encoded), shown but never used as a path."""
        name = shown_name(request.headers.get("X-File-Name"))
        cap = self._max_upload_bytes
        too_big = {"ok": False, "error": f"{name}: larger than {self.config.max_upload_mb:g} MB; refused"}
        if (request.content_length or 0) > cap:
            return web.json_response(too_big, status=413)
        with tempfile.TemporaryDirectory(prefix="latent-snare-upload-") as folder:
            path = await receive_upload(request, folder, name, cap)
            if path is None:
                return web.json_response(too_big, status=413)
            if path.stat().st_size == 0:
                return web.json_response({"ok": False, "error": f"{name}: empty file; refused"})
            try:
                message = await self._job(self.instrument.load_sample, path, name)
            except UserError as err:
                return web.json_response({"ok": False, "error": str(err)})
        self.instrument.say(message)
        return web.json_response({"ok": True, "message": message})
