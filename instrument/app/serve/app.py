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
reaches the file system. An encode's body is read whole (uploads.py) before the request waits for
the job thread, so a body that never arrives holds no one else's place.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from ...core.dsp import spectral_match
from ...errors import UserError
from ...files.pack import render_pack
from ...files.untrusted import PARSE_TIMEOUT_S, load_snare_isolated
from ..http import allowed_host_names, guard_middleware, shown_name
from . import page, params
from .answers import Refused, drop_server_header, errors_in_one_shape
from .clients import Proxies
from .folders import worker_prefix
from .guard import RateLimit, add_security_headers
from .params import PACK_GRID_RANGE, ParamError
from .snares import Snares
from .uploads import Receiving, UploadError, receive_body, upload_path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent / "web" / "static"  # the local page's stylesheet and icon, shared
ASSETS = {  # URL -> (file, content type): the whole list of files the app serves
    "/": (HERE / "static" / "index.html", "text/html"),
    "/static/serve.js": (HERE / "static" / "serve.js", "text/javascript"),
    "/static/serve.css": (HERE / "static" / "serve.css", "text/css"),
    "/static/snare-model.js": (HERE / "static" / "snare-model.js", "text/javascript"),
    "/static/decoder-worker.js": (HERE / "static" / "decoder-worker.js", "text/javascript"),
    "/static/style.css": (SHARED / "style.css", "text/css"),
    "/static/pad.js": (SHARED / "pad.js", "text/javascript"),
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
    proxies: Proxies = field(default_factory=Proxies)  # whose X-Forwarded-For counts (none by default)


def make_app(settings: ServeSettings) -> web.Application:
    """One worker's application; loads the models (call it in the worker, after the fork)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core per worker: N workers on N cores, no BLAS threads fighting
    api = Api(settings, Snares(settings.config))
    app = web.Application(
        middlewares=[
            errors_in_one_shape,
            guard_middleware(allowed_host_names(settings.host, settings.public_names), origin_required=False),
        ],
        client_max_size=api.max_upload_bytes + 1,
    )
    app.on_response_prepare.append(add_security_headers)
    app.on_response_prepare.append(drop_server_header)
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


def bad_request(err: Exception) -> Refused:
    return Refused(400, str(err))


class Api:
    def __init__(self, settings: ServeSettings, snares: Snares):
        self.settings = settings
        self.config = settings.config
        self.snares = snares
        self.limit = RateLimit(settings.encodes_per_minute)
        self.receiving = Receiving()
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
        png = await asyncio.shield(self._map_future(self._served(request).name))
        return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "public, max-age=3600"})

    def _served(self, request: web.Request):
        """The model a /map/NAME or /models/NAME URL names; a 400 for any other name."""
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
            raise Refused(404, f"{served.name}: the page cannot decode this model family; use /snare.wav")
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

    def client(self, request: web.Request) -> str:
        return self.settings.proxies.client(request.remote, request.headers.get("X-Forwarded-For"))

    @contextmanager
    def _budget(self, client: str):
        """The per-client limit on encodes and packs; yields a flag to set once the work runs. A
        request refused before that (busy, a stalled or broken body) gives its count back."""
        wait_s, when = self.limit.take(client)
        if when is None:
            raise Refused(
                429,
                f"too many encodes and packs: at most {self.limit.per_minute} a minute; retry in {wait_s:.0f} s",
                {"Retry-After": str(max(1, round(wait_s)))},
            )
        ran = [False]
        try:
            yield ran
        finally:
            if not ran[0]:
                self.limit.give_back(client, when)

    @asynccontextmanager
    async def _queue_slot(self):
        """A place among the heavy jobs waiting for this worker's job thread (at most ENCODE_QUEUE_MAX)."""
        if self._waiting >= ENCODE_QUEUE_MAX:
            raise Refused(503, "busy: too many encodes and packs waiting; retry in a few seconds", {"Retry-After": "5"})
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1

    async def encode(self, request: web.Request) -> web.Response:
        """The raw file is the body (its name, URI-encoded, may come in X-File-Name: shown, never a path)."""
        name = shown_name(request.headers.get("X-File-Name"))
        try:
            params.only(request.query, ("model",))
            model_name = params.model(request.query, self.snares.names, self.snares.default)
        except ParamError as err:
            raise bad_request(err) from None
        cap_mb = self.config.web.max_upload_mb
        if (request.content_length or 0) > self.max_upload_bytes:
            raise Refused(413, f"{name}: larger than {cap_mb:g} MB; refused")
        model = self.snares.served[model_name].model
        client = self.client(request)
        with self._budget(client) as ran, self.receiving_slot(client, name):
            with tempfile.TemporaryDirectory(prefix=worker_prefix()) as folder:
                path = upload_path(folder, name)
                try:
                    size = await receive_body(request, path, self.max_upload_bytes)
                except UploadError as err:
                    raise Refused(err.status, f"{name}: {err}") from None
                if size == 0:
                    raise Refused(400, f"{name}: empty file; refused")
                async with self._queue_slot():
                    ran[0] = True
                    try:
                        empty = Path(folder) / "parse"  # the parser's working directory: nothing in it
                        empty.mkdir()
                        wave = await self._job(
                            load_snare_isolated, path, model.sample_rate, model.n_samples, PARSE_TIMEOUT_S, empty
                        )
                    except UserError as err:
                        raise Refused(400, str(err).replace(str(path), name)) from None
                    latent, match = await self._job(_encode, model, wave)
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

    @contextmanager
    def receiving_slot(self, client: str, name: str):
        try:
            with self.receiving.slot(client):
                yield
        except UploadError as err:
            raise Refused(err.status, f"{name}: {err}") from None

    async def pack(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            params.only(q, ("grid", "model"))
            grid = params.integer(q, "grid", *PACK_GRID_RANGE, default=5)
            name = params.model(q, self.snares.names, self.snares.default)
        except ParamError as err:
            raise bad_request(err) from None
        with self._budget(self.client(request)) as ran:
            async with self._queue_slot():
                ran[0] = True
                body = await self._job(_pack_zip, self.snares.served[name].model, grid, self.config)
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
    with tempfile.TemporaryDirectory(prefix=worker_prefix()) as folder:
        render_pack(model, grid, Path(folder), config)
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).iterdir()):
                archive.write(path, path.name)
    return data.getvalue()
