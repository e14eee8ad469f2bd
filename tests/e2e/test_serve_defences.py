"""`latent-snare serve` under attack: a real server with two gunicorn workers on loopback, probed
as an attacker would. Each attacker and each visitor is its own loopback address (127.0.0.0/8 all
reaches this machine), so the server counts them apart as it would on the internet."""

from __future__ import annotations

import io
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrument.app.serve.logs import REFUSAL_WINDOW_S, REFUSALS_PER_WINDOW
from instrument.app.serve.uploads import UPLOAD_IDLE_S

from ..serveproc import Serve, http_from
from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

WORKERS = 2
PER_MINUTE = 3  # per client and worker
PROXY = "127.0.0.4"
VERSION_WORDS = re.compile(r"(?i)python/|aiohttp|gunicorn|matplotlib|\d+\.\d+\.\d+")
GUNICORN_ACCESS_LINE = re.compile(
    r'^(\S+) - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$'
)


def dead_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


@pytest.fixture(scope="module")
def tmpdir(tmp_path_factory):
    return tmp_path_factory.mktemp("serve-tmp")


@pytest.fixture(scope="module")
def stale(tmpdir):
    folder = tmpdir / f"latent-snare-serve-{dead_pid()}-left"  # what a server killed earlier left
    folder.mkdir()
    (folder / "upload.bin").write_bytes(b"x")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, tmpdir, stale):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    config = tmp_path_factory.mktemp("config") / "serve.yaml"
    config.write_text("web:\n  max_upload_mb: 1\n")
    args = ["--workers", str(WORKERS), "--config", str(config), "--encodes-per-minute", str(PER_MINUTE)]
    svc = Serve([*args, "--forwarded-allow-ips", PROXY], ARTIFACTS / "serve-defences.log", env={"TMPDIR": str(tmpdir)})
    yield svc
    assert svc.stop() == 0, svc.log_path.read_text()[-2000:]
    log = svc.log_path.read_text()
    assert re.search(r"latent-snare serve: stopped after \d+ s \(pid \d+\)", log), log[-2000:]
    assert "Traceback" not in log, log[-4000:]


def snare_wav() -> bytes:
    t = np.arange(int(0.5 * 44100)) / 44100
    rng = np.random.default_rng(7)
    wave = (rng.standard_normal(t.size) * np.exp(-t * 18) + np.sin(2 * np.pi * 190 * t) * np.exp(-t * 30)) * 0.4
    out = io.BytesIO()
    sf.write(out, wave.astype(np.float32), 44100, format="WAV", subtype="PCM_16")
    return out.getvalue()


def assert_error_shape(status: int, body: bytes, what: str = "") -> dict:
    """The one documented error shape: {"ok": false, "status": N, "message": "one line"}."""
    reply = json.loads(body)
    assert set(reply) == {"ok", "status", "message"}, (what, reply)
    assert reply["ok"] is False and reply["status"] == status, (what, status, reply)
    assert isinstance(reply["message"], str) and reply["message"] and "\n" not in reply["message"], (what, reply)
    return reply


def raw(server, data: bytes, source: str = "127.0.0.1", timeout_s: float = 30.0) -> tuple[int, dict, bytes]:
    """Send bytes as they are; the first answer's (status, headers, body). (No half-close: aiohttp
    closes a connection whose client has stopped sending.)"""
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s, source_address=(source, 0)) as s:
        s.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := s.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        length = int(headers.get("Content-Length", -1))
        while (length < 0 or len(body) < length) and (chunk := s.recv(65536)):
            body += chunk
    assert lines[0].startswith("HTTP/1."), f"no answer: {answer[:200]!r}"
    return int(lines[0].split()[1]), headers, body[:length] if length >= 0 else body


class IdleUploads:
    """An attacker at `source` keeping `n` uploads open: POST headers promising 1 MB, four bytes,
    then silence. A connection the server closes is opened again at once."""

    def __init__(self, server, n: int, source: str = "127.0.0.2"):
        self.port = int(server.url.rsplit(":", 1)[1].strip("/"))
        self.n, self.source = n, source
        self.held = 0  # connections open, headers and four bytes sent, no answer yet
        self.answers: list[tuple[int, bytes]] = []  # what the server said when it closed one
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self, selector) -> None:
        s = socket.create_connection(("127.0.0.1", self.port), source_address=(self.source, 0))
        s.sendall(
            f"POST /encode HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Length: 1000000\r\n\r\nRIFF".encode()
        )
        selector.register(s, selectors.EVENT_READ, bytearray())

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        while not self._stop.is_set():
            while len(selector.get_map()) < self.n:
                self._open(selector)
            self.held = len(selector.get_map())
            for key, _ in selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)
                except ConnectionResetError:
                    data = b""
                key.data.extend(data)
                if not data:  # the server closed it: note its answer, open another
                    selector.unregister(key.fileobj)
                    key.fileobj.close()
                    head, _, body = bytes(key.data).partition(b"\r\n\r\n")
                    status = int(head.split()[1]) if head.startswith(b"HTTP/") else -1
                    self.answers.append((status, body))
                    time.sleep(0.05)
        for key in list(selector.get_map().values()):
            key.fileobj.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def wait_for(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        time.sleep(0.05)


# --- 1. idle upload bodies ---------------------------------------------------------------------


def test_a_visitor_encodes_while_another_client_holds_20_idle_uploads(server):
    wav = snare_wav()
    start = time.monotonic()
    attacker = IdleUploads(server, 20)
    try:
        latencies = []
        for at_s in (5.0, 35.0):
            # The attacker holds at least as many as the old code needed to lock out both workers' queues.
            wait_for(lambda: attacker.held >= 12, "the attacker holding 12 or more idle uploads")
            time.sleep(max(0.0, start + at_s - time.monotonic()))
            held = attacker.held
            t0 = time.monotonic()
            status, body, _ = http_from("127.0.0.1", server.url, "/encode", "POST", {"X-File-Name": "mine.wav"}, wav)
            latencies.append(time.monotonic() - t0)
            assert status == 200 and json.loads(body)["ok"], (at_s, status, body)
            assert held >= 12, f"the attacker held only {held} at {at_s} s"
        print(f"\nvisitor's encode while 20 idle uploads are held: {', '.join(f'{s:.2f} s' for s in latencies)}")
    finally:
        attacker.stop()
    statuses = {status for status, _ in attacker.answers}
    # Idle bodies were ended by the server (408), and one address could not open 20 at once (429).
    assert 408 in statuses and 429 in statuses, statuses
    for status, body in attacker.answers:
        assert_error_shape(status, body, "an attacker's answer")
    closed_after_s = UPLOAD_IDLE_S + 5
    assert time.monotonic() - start > closed_after_s  # so the 408s above came from the idle limit


# --- 2. the rate limit's client identity -------------------------------------------------------


def test_a_forged_x_forwarded_for_does_not_escape_the_limit_but_a_named_proxys_does_count(server):
    served = refused = 0
    for i in range(PER_MINUTE * WORKERS + 3):
        headers = {"X-Forwarded-For": f"203.0.113.{i}"}  # a new "visitor" each time, from one peer
        status, body, _ = http_from("127.0.0.3", server.url, "/pack.zip?grid=2", headers=headers)
        if status == 429:
            refused += 1
            assert "at most 3 a minute" in assert_error_shape(status, body)["message"]
        else:
            assert status == 200, body[:200]
            served += 1
    assert served <= PER_MINUTE * WORKERS and refused >= 3, (served, refused)
    # Through the named proxy, each visitor it reports is counted apart: all are served.
    for i in range(PER_MINUTE * WORKERS + 1):
        headers = {"X-Forwarded-For": f"198.51.100.7, 192.0.2.{i}"}  # the proxy appended the last entry
        status, body, _ = http_from(PROXY, server.url, "/pack.zip?grid=2", headers=headers)
        assert status == 200, (i, status, body[:200])


# --- 3. only what was served spends the budget ---------------------------------------------------


def test_refused_uploads_do_not_spend_the_rate_budget(server):
    too_big = b"\0" * 1_100_000
    for _ in range(PER_MINUTE * WORKERS + 2):  # more than both workers' budgets, all refused before any work
        chunked = f"{len(too_big):x}\r\n".encode() + too_big + b"\r\n0\r\n\r\n"
        request = b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
        status, _, body = raw(server, request, source="127.0.0.5")
        assert status == 413, body
        assert_error_shape(413, body)
    status, body, _ = http_from("127.0.0.5", server.url, "/encode", "POST", {"X-File-Name": "a.wav"}, snare_wav())
    assert status == 200, body


# --- 4. a killed worker's uploads --------------------------------------------------------------


def test_a_worker_killed_mid_upload_leaves_no_folder_behind(server, tmpdir, stale):
    assert not stale.exists(), "the folder of a server no longer running was not deleted at start"
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.6", 0)) as s:
        s.sendall(b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500000\r\n\r\n" + b"\0" * 1000)
        wait_for(lambda: list(tmpdir.glob("latent-snare-serve-*/upload.*")), "an upload folder", 10)
        folder = next(tmpdir.glob("latent-snare-serve-*/upload.*")).parent
        victim = int(folder.name.split("-")[3])
        assert victim in server.workers()
        os.kill(victim, signal.SIGKILL)
        after = server.wait_workers(WORKERS, gone=victim)
    assert victim not in after
    assert not folder.exists() and not list(tmpdir.glob(f"latent-snare-serve-{victim}-*"))


# --- 5 to 7. malformed requests, logs, disclosure, one error shape ----------------------------


def test_a_body_that_does_not_decode_is_a_400(server):
    request = b"POST /encode HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: deflate\r\nContent-Length: 1\r\n\r\nx"
    status, _, body = raw(server, request)
    assert status == 400
    assert "Content-Encoding" in assert_error_shape(400, body)["message"]
    status, _, body = raw(server, request.replace(b"deflate", b"zstd"))
    message = assert_error_shape(400, body)["message"]
    assert status == 400 and "install" not in message.lower() and "zstd" not in message.lower(), message


def new_log_lines(server, before: int) -> list[str]:
    return server.log_path.read_text().splitlines()[before:]


def test_a_malformed_request_line_logs_one_line_and_a_flood_is_rate_limited(server):
    # The earlier tests' refusals may have spent this window's log lines: start in a fresh window.
    time.sleep(REFUSAL_WINDOW_S)
    before = len(server.log_path.read_text().splitlines())
    status, headers, body = raw(server, b"NOT-A-METHOD@@ /SECRET-ECHO HTTP/1.1\r\n\r\n", source="127.0.0.7")
    assert status == 400 and "SECRET-ECHO" not in body.decode()
    assert headers["X-Content-Type-Options"] == "nosniff" and "default-src 'none'" in headers["Content-Security-Policy"]
    assert_error_shape(400, body)
    lines = new_log_lines(server, before)  # the worker logs before it answers
    assert len([line for line in lines if "127.0.0.7" in line]) == 1, lines
    assert not [line for line in lines if "Traceback" in line or "SECRET-ECHO" in line], lines
    before = len(server.log_path.read_text().splitlines())
    for _ in range(60):
        raw(server, b"\x16\x03\x01 garbage\r\n\r\n", source="127.0.0.7")
    lines = [line for line in new_log_lines(server, before) if "127.0.0.7" in line]
    assert 1 <= len(lines) <= WORKERS * REFUSALS_PER_WINDOW * 2, len(lines)


def test_no_answer_names_a_server_or_a_library_version(server):
    port = server.url.rsplit(":", 1)[1].strip("/")
    answers = {
        "page": http_from("127.0.0.8", server.url, "/"),
        "snare": http_from("127.0.0.8", server.url, "/snare.wav?x=1&y=2"),
        "map": http_from("127.0.0.8", server.url, "/map/env-small.png"),
        "404": http_from("127.0.0.8", server.url, "/nope"),
        "405": http_from("127.0.0.8", server.url, "/models", "DELETE"),
        "403": http_from("127.0.0.8", server.url, "/", headers={"Host": "rebound.example"}),
    }
    status, headers, body = raw(server, f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nBad Header\r\n\r\n".encode())
    answers["parser 400"] = (status, body, headers)
    for what, (_, _, headers) in answers.items():
        assert "Server" not in headers, (what, headers.get("Server"))
        named = [f"{k}: {v}" for k, v in headers.items() if VERSION_WORDS.search(v) and k not in ("Date", "ETag")]
        assert not named, (what, named)
    assert answers["map"][0] == 200 and b"atplotlib" not in answers["map"][1]


def test_every_error_answer_is_the_one_json_shape(server):
    big = {"Content-Length": "2000000"}
    answers = {
        "bad parameter": http_from("127.0.0.9", server.url, "/snare.wav?x=300&y=1"),
        "unknown parameter": http_from("127.0.0.9", server.url, "/pack.zip?colour=red"),
        "unknown host": http_from("127.0.0.9", server.url, "/", headers={"Host": "rebound.example"}),
        "other site": http_from("127.0.0.9", server.url, "/encode", "POST", {"Origin": "http://evil.example"}, b"x"),
        "no such page": http_from("127.0.0.9", server.url, "/nope"),
        "wrong method": http_from("127.0.0.9", server.url, "/models", "DELETE"),
        "empty upload": http_from("127.0.0.9", server.url, "/encode", "POST", body=b""),
        "broken upload": http_from("127.0.0.9", server.url, "/encode", "POST", body=b"RIFF\0\0\0\0WAVEnot audio" * 9),
        "too big": http_from("127.0.0.9", server.url, "/encode", "POST", big, b""),
    }
    for what, (status, body, _) in answers.items():
        assert status >= 400, (what, status)
        assert_error_shape(status, body, what)
    status, _, body = raw(server, b"GET /\x00 HTTP/1.1\r\n\r\n")
    assert_error_shape(status, body, "unparseable")


def test_the_access_log_is_gunicorns_format(server):
    agent = f"defence-test/{os.getpid()}"
    assert http_from("127.0.0.10", server.url, "/health?probe=1", headers={"User-Agent": agent})[0] == 200

    def line():
        return next((x for x in server.log_path.read_text().splitlines() if agent in x), None)

    wait_for(line, "the access line", 10)
    match = GUNICORN_ACCESS_LINE.match(line())
    assert match, line()
    assert match.groups() == ("127.0.0.10", "GET /health?probe=1 HTTP/1.1", "200", "3", "-", agent)


def test_no_access_log_leaves_only_the_start_and_stop_lines(tmp_path):
    quiet = Serve(["--workers", "1", "--no-access-log"], tmp_path / "quiet.log")
    try:
        assert http_from("127.0.0.1", quiet.url, "/health")[0] == 200
    finally:
        assert quiet.stop() == 0
    lines = (tmp_path / "quiet.log").read_text().splitlines()
    assert not [x for x in lines if "GET /health" in x], lines
    assert [x for x in lines if x.startswith("latent-snare serve: stopped after")], lines


# --- 8. the parser child -----------------------------------------------------------------------


def test_the_parser_child_dies_with_its_parent_and_cannot_write_a_file(tmp_path):
    target = tmp_path / "written.txt"
    child = """
import os, sys, time
from instrument.files.sandbox import confine, die_with_parent
die_with_parent(int(sys.argv[1]))
confine(10, 2 << 30)
print(os.getpid(), flush=True)
try:
    with open(sys.argv[2], "w") as f:
        f.write("x" * 100)
    print("wrote", flush=True)
except OSError as err:
    print("refused", err, flush=True)
time.sleep(60)
"""
    parent = (
        "import os, subprocess, sys, time; "
        "subprocess.Popen([sys.executable, '-B', '-c', sys.argv[1], str(os.getpid()), sys.argv[2]]); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", parent, child, str(target)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        child_pid = int(proc.stdout.readline())
        said = proc.stdout.readline()
        assert Path(f"/proc/{child_pid}").exists()
        assert not target.exists() or target.stat().st_size == 0, "the child wrote a file"
        assert "refused" in said or not target.exists(), said
    finally:
        proc.kill()
        proc.wait()
    wait_for(lambda: not Path(f"/proc/{child_pid}").exists() or _zombie(child_pid), "the child to die", 10)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True
