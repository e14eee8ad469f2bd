"""The web application's API without a browser: parameter checks, caching, guards, the encode
limit (aiohttp's test client on a real socket; the page itself: tests/e2e/test_serve.py)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
import soundfile as sf
from aiohttp.test_utils import TestClient, TestServer

from instrument.app.http import allowed_host_names, host_name
from instrument.app.serve import params
from instrument.app.serve.app import ServeSettings, make_app
from instrument.app.serve.clients import Proxies, ProxyListError
from instrument.app.serve.folders import remove_stale_folders, remove_worker_folders, worker_prefix
from instrument.app.serve.guard import RateLimit
from instrument.config import load_config


def call(coroutine_fn, **settings):
    """Run `coroutine_fn(client)` against a fresh app on a real local socket."""

    async def main():
        app = make_app(ServeSettings(config=load_config(), **settings))
        async with TestClient(TestServer(app)) as client:
            return await coroutine_fn(client)

    return asyncio.run(main())


@pytest.mark.parametrize(
    "query, reason",
    [
        ({"x": "200", "y": "3"}, "x='200': out of range; allowed 0..127"),
        ({"x": "-1", "y": "3"}, "x='-1': out of range"),
        ({"x": "abc", "y": "3"}, "x='abc': not a number"),
        ({"x": "1", "y": "inf"}, "y='inf': not a finite number"),
        ({"x": "1", "y": "nan"}, "y='nan': not a finite number"),
        ({"x": "1" * 100, "y": "1"}, "not a number"),
        ({"x": "1"}, "y is required"),
        ({"x": "1", "y": "1", "velocity": "0"}, "velocity=0: out of range; allowed 1..127"),
        ({"x": "1", "y": "1", "velocity": "1.5"}, "not a whole number"),
        ({"x": "1", "y": "1", "model": "../models/env"}, "a model is a name, not a path"),
        ({"x": "1", "y": "1", "model": "/etc/passwd"}, "a model is a name, not a path"),
        ({"x": "1", "y": "1", "model": "..\\env"}, "a model is a name, not a path"),
        ({"x": "1", "y": "1", "model": "nope"}, "model='nope': unknown model; one of env-small, env"),
        ({"x": "1", "y": "1", "colour": "red"}, "'colour': unknown parameter"),
    ],
)
def test_bad_snare_parameters_are_a_400_with_one_line(query, reason):
    async def get(client):
        reply = await client.get("/snare.wav", params=query)
        return reply.status, await reply.text()

    status, text = call(get)
    assert status == 400 and reason in text and text.count("\n") == 1, text


def test_the_same_query_gives_the_same_bytes_and_etag_and_a_304_when_unchanged():
    async def get(client):
        first = await client.get("/snare.wav", params={"x": "30", "y": "100.25", "velocity": "90"})
        again = await client.get("/snare.wav", params={"x": "30.0", "y": "100.25", "velocity": "90"})
        other = await client.get("/snare.wav", params={"x": "31", "y": "100.25", "velocity": "90"})
        cached = await client.get(
            "/snare.wav",
            params={"x": "30", "y": "100.25", "velocity": "90"},
            headers={"If-None-Match": first.headers["ETag"]},
        )
        return [(r.status, r.headers, await r.read()) for r in (first, again, other, cached)]

    (s1, h1, b1), (_, h2, b2), (_, h3, b3), (s4, _, b4) = call(get)
    assert s1 == 200 and h1["Content-Type"] == "audio/wav" and "max-age" in h1["Cache-Control"]
    assert b1 == b2 and h1["ETag"] == h2["ETag"]
    assert b3 != b1 and h3["ETag"] != h1["ETag"]
    assert s4 == 304 and b4 == b""
    data, rate = sf.read(io.BytesIO(b1))
    assert rate == 44100 and sf.info(io.BytesIO(b1)).subtype == "PCM_24"
    assert json.loads(sf.SoundFile(io.BytesIO(b1)).copy_metadata()["comment"])["cc"] == [30, 100]


def test_models_lists_the_default_first_and_every_program():
    async def get(client):
        return await (await client.get("/models")).json()

    reply = call(get)
    config = load_config()
    assert reply["default"] == config.model and reply["models"][0]["name"] == config.model
    assert {m["name"] for m in reply["models"]} == set(config.midi.programs)


def test_every_answer_carries_the_security_headers_and_unknown_hosts_are_refused():
    async def get(client):
        page = await client.get("/")
        missing = await client.get("/no/such/../path")
        foreign = await client.get("/", headers={"Host": "rebound.example"})
        cross_site = await client.post("/encode", data=b"x", headers={"Origin": "http://evil.example"})
        return page, missing, foreign, cross_site

    page, missing, foreign, cross_site = call(get)
    for reply in (page, missing, foreign):
        assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
        assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert page.status == 200 and missing.status == 404
    assert foreign.status == 403 and cross_site.status == 403


def test_a_public_name_is_the_only_host_a_public_server_answers_to():
    allowed = allowed_host_names("0.0.0.0", ("Snare.Example.org",))
    assert host_name("snare.example.org:443") in allowed and host_name("SNARE.example.org") in allowed
    assert host_name("evil.example") not in allowed
    assert allowed_host_names("10.0.0.5", ("snare.example.org",)) == {"snare.example.org", "10.0.0.5"}
    assert host_name("[::1]:8765") == "::1" and host_name("localhost:80") == "localhost"


def test_encodes_are_limited_per_client_and_only_those_whose_work_ran_count():
    async def post(client):
        replies = []
        for body in (b"", b"RIFF\0\0\0\0WAVEnot audio" * 4, b""):  # empty: refused before any work
            reply = await client.post("/encode", data=body)
            replies.append((reply.status, reply.headers.get("Retry-After"), await reply.json()))
        return replies

    (s1, _, empty), (s2, _, broken), (s3, retry_after, limited) = call(post, encodes_per_minute=1)
    assert s1 == 400 and "empty file" in empty["message"] and empty == {"ok": False, "status": 400, **empty}
    assert s2 == 400 and "not a readable audio file" in broken["message"]  # parsed: it counts
    assert s3 == 429 and int(retry_after) >= 1 and "at most 1 a minute" in limited["message"]


def test_a_refused_request_gives_its_count_back():
    limit = RateLimit(1, window_s=60)
    wait_s, when = limit.take("a", now=0)
    assert wait_s == 0 and limit.take("a", now=1) == (59, None)
    limit.give_back("a", when)
    assert limit.take("a", now=2) == (0, 2)


@pytest.mark.parametrize(
    "proxies, peer, forwarded, counted",
    [
        ("", "127.0.0.1", "203.0.113.9", "127.0.0.1"),  # nobody named: the header is ignored, even from loopback
        ("127.0.0.1", "127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "10.0.0.8", "203.0.113.9", "10.0.0.8"),  # not a named proxy
        ("127.0.0.1", "127.0.0.1", "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged first entry is skipped
        ("127.0.0.1,10.0.0.0/8", "127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # two named hops
        ("127.0.0.1", "127.0.0.1", "not-an-address", "127.0.0.1"),
        ("::1", "::1", "[2001:db8::1]:443", "2001:db8::1"),
        ("*", "192.0.2.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),
    ],
)
def test_x_forwarded_for_counts_only_from_a_named_proxy(proxies, peer, forwarded, counted):
    assert Proxies(proxies).client(peer, forwarded) == counted


def test_a_bad_proxy_list_is_one_line():
    with pytest.raises(ProxyListError, match="'nginx' is not an address or network; allowed a comma-separated"):
        Proxies("127.0.0.1, nginx")


def test_only_the_folders_of_dead_processes_are_deleted(tmp_path):
    import os

    mine, dead = tmp_path / f"{worker_prefix()}a", tmp_path / "latent-snare-serve-4000001-b"
    other = tmp_path / "latent-snare-encode-x"
    for folder in (mine, dead, other):
        folder.mkdir()
    assert remove_stale_folders(tmp_path) == 1 and mine.exists() and other.exists() and not dead.exists()
    assert remove_worker_folders(os.getpid(), tmp_path) == 1 and not mine.exists() and other.exists()


def test_the_rate_limit_forgets_requests_older_than_its_window():
    limit = RateLimit(2, window_s=60)
    assert limit.retry_after_s("a", now=0) == 0 and limit.retry_after_s("a", now=1) == 0
    assert limit.retry_after_s("a", now=2) == pytest.approx(58)
    assert limit.retry_after_s("b", now=2) == 0  # another client is counted apart
    assert limit.retry_after_s("a", now=60.5) == 0


def test_a_model_name_never_becomes_a_path():
    for text in ("../env", "env/../../x", "~root", ".hidden", "a\\b"):
        with pytest.raises(params.ParamError, match="a name, not a path"):
            params.model({"model": text}, ["env"], "env")


def test_serve_imports_nothing_that_needs_jack_a_sound_card_or_midi():
    import subprocess
    import sys

    code = (
        "import sys, asyncio; from instrument.app.serve.gunicorn import ServeApplication; "
        "from instrument.app.serve.app import ServeSettings, make_app; from instrument.config import load_config; "
        "make_app(ServeSettings(config=load_config())); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('jack', 'sounddevice', 'rtmidi', 'mido', 'torch')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize(
    "argv, line",
    [
        (
            ["--host", "0.0.0.0"],
            "--host 0.0.0.0 listens on every interface: name the host visitors use with --public-name",
        ),
        (["--workers", "0"], "--workers 0: allowed 1..64"),
        (["--port", "70000"], "--port 70000: allowed 0..65535"),
        (["--forwarded-allow-ips", "nginx"], "--forwarded-allow-ips: 'nginx' is not an address or network"),
    ],
)
def test_serve_refuses_bad_flags_with_one_line(argv, line, capsys):
    from instrument.app.cli import main

    assert main(["serve", *argv]) == 2
    assert line in capsys.readouterr().err


def test_serve_on_a_taken_port_is_one_line(capsys):
    import socket

    from instrument.app.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
