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

    def __init__(self, args: list[str], log_path: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("JACK")}
        self.log = open(log_path, "w")
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
        threading.Thread(target=lambda: [self.log.write(x) for x in self.proc.stdout], daemon=True).start()
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
        return self.proc.wait(20)


def http(url, path, method="GET", headers=None, body=None):
    request = urllib.request.Request(url + path.lstrip("/"), data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, reply.read(), dict(reply.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)
