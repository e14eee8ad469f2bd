"""`latent-snare serve`: gunicorn's arbiter with aiohttp's worker runs N processes of the app.

The arbiter binds the socket, forks the workers and replaces any that dies; each worker builds
its own application (and loads the models) after the fork, in `load()`'s factory. The models are
also loaded once in the arbiter before it forks, only to check them: a missing or broken model is
one line and exit 2 there, instead of every worker failing to boot.

The arbiter also deletes the temporary folders a dead worker left (its uploads and packs), and at
start those of servers no longer running. Logs: the ready line and the stop line on stdout,
gunicorn's access log on stdout (unless --no-access-log), warnings on stderr.
"""

from __future__ import annotations

import os
import socket
import time

from gunicorn.app.base import BaseApplication

from ...errors import UserError
from ..http import WILDCARD_HOSTS, is_loopback
from .app import ServeSettings, make_app
from .clients import Proxies, ProxyListError
from .connections import KEEPALIVE_S, LINGER_S, ServeRunner
from .folders import remove_stale_folders, remove_worker_folders
from .logs import ACCESS, ERRORS, RefusalLog, access_logger
from .snares import Snares

GRACEFUL_TIMEOUT_S = 10  # SIGTERM: requests in flight get this long
WORKER_TIMEOUT_S = 30  # a worker whose event loop stalls this long is killed and replaced


class ServeApplication(BaseApplication):
    def __init__(self, settings: ServeSettings, port: int, workers: int, access_log: bool = True):
        self.settings, self.port, self.workers, self.access_log = settings, port, workers, access_log
        self.started = time.monotonic()
        super().__init__(prog="latent-snare serve")

    def load_config(self) -> None:
        host = self.settings.host
        bind = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        for key, value in {
            "bind": [bind],
            "workers": self.workers,
            "worker_class": "aiohttp.GunicornWebWorker",
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "timeout": WORKER_TIMEOUT_S,
            "accesslog": "-" if self.access_log else None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "latent-snare-serve",
            "when_ready": self._ready,
            "child_exit": self._child_exit,
            "on_exit": self._stopped,
        }.items():
            self.cfg.set(key, value)

    def load(self):
        settings = self.settings

        access_log = self.access_log

        async def factory():  # runs in each worker, after the fork
            app = make_app(settings)
            return ServeRunner(
                app,
                proxies=settings.proxies,
                refusals=RefusalLog(),
                logger=ERRORS,
                access_log=ACCESS if access_log else None,
                access_log_class=access_logger(
                    lambda r: settings.proxies.client(r.remote, r.headers.get("X-Forwarded-For"))
                ),
                keepalive_timeout=KEEPALIVE_S,
                lingering_time=LINGER_S,
                shutdown_timeout=GRACEFUL_TIMEOUT_S * 0.95,
            )

        return factory

    def _child_exit(self, _arbiter, worker) -> None:
        """A worker ended (stopped, or killed mid-answer): delete what it had in the temp folder."""
        removed = remove_worker_folders(worker.pid)
        if removed:
            ERRORS.warning("worker %d ended with %d temporary folder(s); deleted", worker.pid, removed)

    def _stopped(self, _arbiter) -> None:
        print(
            f"latent-snare serve: stopped after {time.monotonic() - self.started:.0f} s (pid {os.getpid()})", flush=True
        )

    def _ready(self, arbiter) -> None:
        port = arbiter.LISTENERS[0].sock.getsockname()[1]
        shown = "127.0.0.1" if self.settings.host in WILDCARD_HOSTS else self.settings.host
        names = ", ".join(self.settings.public_names) or "loopback only"
        print(
            f"latent-snare serve: http://{shown}:{port}/ ({self.workers} worker{'s' * (self.workers > 1)}, "
            f"pid {os.getpid()}, public names: {names})",
            flush=True,
        )


def _check_port(host: str, port: int) -> None:
    """One line now, instead of gunicorn retrying for 5 s with a log line a second."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as err:
            raise UserError(
                f"serve: cannot listen on {host}:{port} ({err.strerror}); choose another --port or --host"
            ) from err


def run_serve(args) -> int:
    from ...config import load_config

    if not 1 <= args.workers <= 64:
        raise UserError(f"--workers {args.workers}: allowed 1..64 (about one per core)")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: allowed 0..65535 (0: any free port)")
    if args.encodes_per_minute < 1:
        raise UserError(f"--encodes-per-minute {args.encodes_per_minute}: allowed 1 or more")
    public = tuple(args.public_name or ())
    if not public and args.host not in WILDCARD_HOSTS and not is_loopback(args.host):
        public = (args.host,)
    if not public and args.host in WILDCARD_HOSTS:
        raise UserError(
            f"--host {args.host or '0.0.0.0'} listens on every interface: name the host visitors use "
            f"with --public-name NAME (Host and Origin are checked against it)"
        )
    try:
        proxies = Proxies(args.forwarded_allow_ips or "")
    except ProxyListError as err:
        raise UserError(str(err)) from None
    _check_port(args.host, args.port)
    config = load_config(args.config, learned=False)  # the same mapping for every visitor
    Snares(config)  # check the models here, once, before any worker is forked
    settings = ServeSettings(
        config=config,
        host=args.host,
        public_names=public,
        encodes_per_minute=args.encodes_per_minute,
        proxies=proxies,
    )
    remove_stale_folders()  # what servers killed before now left
    ServeApplication(settings, args.port, args.workers, access_log=not args.no_access_log).run()
    return 0
