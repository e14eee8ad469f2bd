"""The web application: the page, and an HTTP API others can build on.

    GET  /                      the page (its state lives in its URL: /?x=40&y=90&model=env)
    GET  /snare.wav?x&y[&model][&velocity]   exactly what `latent-snare render --cc X Y` writes
    GET  /models                the models, the default first
    GET  /settings              the page's MIDI mapping, loop and upload settings
    GET  /map/NAME.png          the pad picture of a model
    GET  /models/NAME.safetensors and /models/NAME.browser.json   what the page's own decoder loads
    GET  /pack.zip?grid=N[&model]            an N x N sample pack: WAVs, index.csv, latent-map.png
    POST /encode[?model]        the body is an audio file; answers with its point
    GET  /health                "ok" (for load balancers)

The server keeps no visitor state. Renders run on the event loop (about 1 ms, and cached);
encodes, packs and map pictures run on one worker thread per process, off the event loop.
Static files are read into memory at start and served from there: no request path ever
reaches the file system.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ...core.dsp import spectral_match
from ...errors import UserError
from ...files.pack import render_pack
from ...files.untrusted import load_snare_isolated
from ..http import allowed_host_names, guard_middleware, receive_upload, shown_name
from . import page, params
from .guard import RateLimit, add_security_headers, client_key
from .params import PACK_GRID_RANGE, ParamError
from .snares import Snares

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent / "web" / "static"  # the local page's stylesheet and icon, shared
ASSETS = {  # URL -> (file, content type): the whole list of files the app serves
    "/": (HERE / "static" / "index.html", "text/html"),
    "/static/serve.js": (HERE / "static" / "serve.js", "text/javascript"),
    "/static/serve.css": (HERE / "static" / "serve.css", "text/css"),
    "/static/snare-model.js": (HERE / "static" / "snare-model.js", "text/javascript"),
    "/static/decoder-worker.js": (HERE / "static" / "decoder-worker.js", "text/javascript"),
    "/static/style.css": (SHARED / "style.css", "text/css"),
    "/static/favicon.svg": (SHARED / "favicon.svg", "image/svg+xml"),
}
SNARE_PARAMS = ("x", "y", "model", "velocity", "variant")
ENCODE_QUEUE_MAX = 4  # heavy jobs waiting in one worker beyond this are refused with 503
SNARE_MAX_AGE_S = 86_400


@dataclass(frozen=True)
class ServeSettings:
    config: object  # Config: models, velocity range, ceiling, MIDI mapping, upload cap
    host: str = "127.0.0.1"
    public_names: tuple[str, ...] = ()
    encodes_per_minute: int = 10


def make_app(settings: ServeSettings) -> web.Application:
    """One worker's application; loads the models (call it in the worker, after the fork)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core per worker: N workers on N cores, no BLAS threads fighting
    api = Api(settings, Snares(settings.config))
    app = web.Application(
        middlewares=[guard_middleware(allowed_host_names(settings.host, settings.public_names), origin_required=False)],
        client_max_size=api.max_upload_bytes + 1,
    )
    app.on_response_prepare.append(add_security_headers)
    app.on_startup.append(api.start)
    app.on_cleanup.append(api.stop)
    app.add_routes(
        [web.get(url, api.asset(url)) for url in ASSETS]
        + [
            web.get("/snare.wav", api.snare),
            web.get("/models", api.models),
            web.get("/settings", api.page_settings),
            web.get("/map/{model}.png", api.map_picture),
            web.get("/models/{model}.safetensors", api.model_weights),
            web.get("/models/{model}.browser.json", api.model_spec),
            web.get("/pack.zip", api.pack),
            web.post("/encode", api.encode),
            web.get("/health", health),
        ]
    )
    return app


async def health(_request) -> web.Response:
    return web.Response(text="ok\n")


def bad_request(err: Exception) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f"{err}\n")


class Api:
    def __init__(self, settings: ServeSettings, snares: Snares):
        self.settings = settings
        self.config = settings.config
        self.snares = snares
        self.limit = RateLimit(settings.encodes_per_minute)
        self._assets = {url: (path.read_bytes(), kind) for url, (path, kind) in ASSETS.items()}
        self._maps: dict[str, asyncio.Future] = {}  # model name -> its pad picture (PNG bytes)
        self._jobs: ThreadPoolExecutor | None = None
        self._waiting = 0

    @property
    def max_upload_bytes(self) -> int:
        return int(self.config.web.max_upload_mb * 1e6)

    async def start(self, _app) -> None:
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix="serve-jobs")
        for name in self.snares.names:  # the pictures are ready before most visitors ask
            self._map_future(name)

    async def stop(self, _app) -> None:
        self._jobs.shutdown(wait=False, cancel_futures=True)

    def _job(self, fn, *args) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self._jobs, fn, *args)

    # --- the page ------------------------------------------------------------------------------

    def asset(self, url: str):
        body, kind = self._assets[url]

        async def handler(_request):
            return web.Response(body=body, content_type=kind, headers={"Cache-Control": "no-cache"})

        return handler

    async def models(self, _request) -> web.Response:
        return web.json_response(page.models_json(self.snares))

    async def page_settings(self, _request) -> web.Response:
        return web.json_response(page.settings_json(self.config, self.snares.programs))

    def _map_future(self, name: str) -> asyncio.Future:
        if name not in self._maps:
            from ...files.latent_map import pad_picture

            self._maps[name] = self._job(pad_picture, self.snares.served[name].model)
        return self._maps[name]

    async def map_picture(self, request: web.Request) -> web.Response:
        try:
            name = params.model({"model": request.match_info["model"]}, self.snares.names, self.snares.default)
        except ParamError as err:
            raise bad_request(err) from None
        png = await asyncio.shield(self._map_future(name))
        return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "public, max-age=3600"})

    def _served(self, request: web.Request):
        try:
            name = params.model({"model": request.match_info["model"]}, self.snares.names, self.snares.default)
        except ParamError as err:
            raise bad_request(err) from None
        return self.snares.served[name]

    async def model_weights(self, request: web.Request) -> web.Response:
        served = self._served(request)
        return web.Response(
            body=served.weights,
            content_type="application/octet-stream",
            headers={"Cache-Control": "no-cache", "ETag": f'"{served.identity}"'},
        )

    async def model_spec(self, request: web.Request) -> web.Response:
        served = self._served(request)
        if served.spec is None:
            raise web.HTTPNotFound(text=f"{served.name}: the page cannot decode this model family; use /snare.wav\n")
        return web.Response(
            body=served.spec,
            content_type="application/json",
            headers={"Cache-Control": "no-cache", "ETag": f'"{served.identity}"'},
        )

    # --- the API -------------------------------------------------------------------------------

    async def snare(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            params.only(q, SNARE_PARAMS)
            x, y = params.cc(q, "x"), params.cc(q, "y")
            velocity = params.velocity(q)
            name = params.model(q, self.snares.names, self.snares.default)
            variant = params.variant(q, self.snares.served[name].model.n_variants)
        except ParamError as err:
            raise bad_request(err) from None
        etag = self.snares.etag(name, x, y, velocity, variant)
        headers = {
            "ETag": etag,
            "Cache-Control": f"public, max-age={SNARE_MAX_AGE_S}",
            "Content-Disposition": f'inline; filename="{self.snares.file_name(name, x, y)}"',
        }
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        body = self.snares.wav(name, x, y, velocity, variant)
        return web.Response(body=body, content_type="audio/wav", headers=headers)

    def _heavy_allowed(self, request: web.Request) -> None:
        """The per-client rate limit and the worker's queue cap, for encodes and packs."""
        wait_s = self.limit.retry_after_s(client_key(request))
        if wait_s:
            raise web.HTTPTooManyRequests(
                text=f"too many encodes and packs: at most {self.limit.per_minute} a minute; retry in {wait_s:.0f} s\n",
                headers={"Retry-After": str(max(1, round(wait_s)))},
            )
        if self._waiting >= ENCODE_QUEUE_MAX:
            raise web.HTTPServiceUnavailable(
                text="busy: too many encodes waiting; retry in a few seconds\n", headers={"Retry-After": "5"}
            )

    async def encode(self, request: web.Request) -> web.Response:
        """The raw file is the body (its name, URI-encoded, may come in X-File-Name: shown, never a path)."""
        name = shown_name(request.headers.get("X-File-Name"))
        try:
            params.only(request.query, ("model",))
            model_name = params.model(request.query, self.snares.names, self.snares.default)
        except ParamError as err:
            raise bad_request(err) from None
        cap_mb = self.config.web.max_upload_mb
        too_big = web.json_response({"ok": False, "error": f"{name}: larger than {cap_mb:g} MB; refused"}, status=413)
        if (request.content_length or 0) > self.max_upload_bytes:
            return too_big
        self._heavy_allowed(request)
        model = self.snares.served[model_name].model
        self._waiting += 1
        try:
            with tempfile.TemporaryDirectory(prefix="latent-snare-encode-") as folder:
                path = await receive_upload(request, folder, name, self.max_upload_bytes)
                if path is None:
                    return too_big
                if path.stat().st_size == 0:
                    return web.json_response({"ok": False, "error": f"{name}: empty file; refused"}, status=400)
                try:
                    wave = await self._job(load_snare_isolated, path, model.sample_rate, model.n_samples)
                except UserError as err:
                    return web.json_response({"ok": False, "error": str(err).replace(str(path), name)}, status=400)
            latent, match = await self._job(_encode, model, wave)
        finally:
            self._waiting -= 1
        x, y = model.knobs.latent_to_cc(latent)
        cc = model.knobs.latent_to_cc_int(latent)
        return web.json_response(
            {
                "ok": True,
                "name": name,
                "model": model.name,
                "latent": [float(latent[0]), float(latent[1])],
                "x": x,
                "y": y,
                "cc": list(cc),
                "match": match,
                "message": f"{name} -> CC ({cc[0]}, {cc[1]}) on {model.name}, spectral match {match:.0%}",
            }
        )

    async def pack(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            params.only(q, ("grid", "model"))
            grid = params.integer(q, "grid", *PACK_GRID_RANGE, default=5)
            name = params.model(q, self.snares.names, self.snares.default)
        except ParamError as err:
            raise bad_request(err) from None
        self._heavy_allowed(request)
        self._waiting += 1
        try:
            body = await self._job(_pack_zip, self.snares.served[name].model, grid, self.config)
        finally:
            self._waiting -= 1
        return web.Response(
            body=body,
            content_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}-pack-{grid}x{grid}.zip"'},
        )


def _encode(model, wave):
    latent = model.encode(wave)
    return latent, spectral_match(wave, model.decode(latent))


def _pack_zip(model, grid: int, config) -> bytes:
    """`latent-snare pack` into a temporary folder, zipped in memory; nothing is kept."""
    with tempfile.TemporaryDirectory(prefix="latent-snare-pack-") as folder:
        render_pack(model, grid, Path(folder), config)
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).iterdir()):
                archive.write(path, path.name)
    return data.getvalue()
