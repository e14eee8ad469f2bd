"""`latent-snare serve` as a subprocess, for the e2e tests and the serve benchmark."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


class Serve:
    """`latent-snare serve --port 0 ARGS` as a subprocess, with no JACK in its environment; its
    address from the ready line. Returns once every worker is up and one answers."""

    def __init__(self, args: list[str], log_path: Path, env: dict | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("JACK")} | (env or {})
        self.log_path = log_path
        self.log = open(log_path, "w", buffering=1)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "instrument.app.cli", "serve", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=dict(env, PYTHONUNBUFFERED="1"),
        )
        self.n_workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
        line = self.proc.stdout.readline()
        match = re.search(r"(http://\S+/)", line)
        assert match, f"no address in the ready line {line!r}; log: {log_path.read_text()[-2000:]}"
        self.url = match.group(1)
        self._copier = threading.Thread(target=lambda: [self.log.write(x) for x in self.proc.stdout], daemon=True)
        self._copier.start()
        self.wait_workers(self.n_workers)
        for _ in range(100):  # the arbiter is up; wait until a worker answers
            if http(self.url, "/health")[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError("no worker answered /health within 10 s")

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return {int(pid) for pid in children}

    def wait_workers(self, n: int, gone: int | None = None, timeout_s: float = 15.0) -> set[int]:
        """The worker pids once there are `n` of them (and `gone`, a killed one, is no longer among them)."""
        deadline = time.monotonic() + timeout_s
        while len(self.workers()) != n or gone in self.workers():
            assert time.monotonic() < deadline, f"workers {self.workers()}, not {n} without {gone}, after {timeout_s} s"
            time.sleep(0.05)
        return self.workers()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        self._copier.join(5)  # the last stdout lines (the stop line) reach the log
        return code


def http_from(source: str, url: str, path: str, method="GET", headers=None, body=None, timeout_s=60.0):
    """One request from the loopback address `source` (127.0.0.0/8 is all this machine's): a
    client the server tells apart from the test's other clients. (status, body, headers)."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout_s, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        reply = connection.getresponse()
        return reply.status, reply.read(), dict(reply.headers)
    finally:
        connection.close()


def http(url, path, method="GET", headers=None, body=None):
    request = urllib.request.Request(url + path.lstrip("/"), data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, reply.read(), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)
