"""The static site `latent-snare site` writes, served by `python -m http.server` and driven in
Chromium: it decodes in the tab (the same samples as `render`, within -90 dB), asks the server
for nothing after it has loaded, keeps working with the network cut, and builds packs itself."""

from __future__ import annotations

import csv
import io
import json
import socket
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

from instrument.config import load_config
from instrument.files.saving import render_snare
from instrument.model.file import load_model

from . import pagechecks
from .conftest import ARTIFACTS, autoplay_browser
from .test_serve import wait_js
from .test_web import drop_file

pytestmark = pytest.mark.e2e

CONFIG = load_config()
MATCH_DB = -90.0  # the page's samples against render's, max |difference| re full scale


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "www"
    done = subprocess.run(
        [sys.executable, "-m", "instrument.app.cli", "site", str(out)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(out), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(100):  # until it answers
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            subprocess.run(["sleep", "0.1"])
    yield url
    server.terminate()
    server.wait(10)


@pytest.fixture(scope="module")
def browser(site):
    yield from autoplay_browser()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    yield context
    context.close()


def open_site(context, url, request=None):
    page = context.new_page()
    page.goto(url)
    wait_js(page, "!!document.body.dataset.ready && document.querySelector('#map').naturalWidth > 0", 30)
    return page


def test_the_site_decodes_in_the_tab_and_asks_for_nothing_after_loading(context, site):
    page = open_site(context, site)
    assert page.evaluate("document.body.dataset.decoder") == "browser"
    asked = []  # what the page asks for; the browser fetches the tab's icon whenever it likes
    page.on("request", lambda r: None if r.url.endswith("/favicon.svg") else asked.append(r.url))
    page.evaluate("latentSnare.midi([0xB0, 74, 20]); latentSnare.midi([0xB0, 75, 110])")
    wait_js(page, f"document.body.dataset.ready === '{CONFIG.model} 20 110'")
    page.evaluate("latentSnare.midi([0x99, 38, 100])")
    assert page.evaluate("latentSnare.lastPlayed().key") == f"{CONFIG.model} 20 110"
    assert asked == [], f"the page asked for {asked} after a knob move and a hit"


def test_the_site_shows_the_models_landmarks(context, site):
    page = open_site(context, site)
    pagechecks.assert_landmarks_drawn(page, CONFIG.model)
    page.evaluate("latentSnare.midi([0xB0, 74, 30]); latentSnare.midi([0xB0, 75, 90])")
    wait_js(page, "document.body.dataset.cc === '30,90'")
    pagechecks.assert_nearest_named(page, CONFIG.model, 30, 90)


def test_the_sites_render_matches_latent_snare_render(context, site, tmp_path):
    page = open_site(context, site)
    model = load_model(None, CONFIG.model)
    rng = np.random.default_rng(7)
    c = CONFIG
    worst = -np.inf
    for i, (x, y) in enumerate(rng.integers(0, 128, (6, 2))):
        velocity, variant = int(rng.integers(1, 128)), int(rng.integers(0, model.n_variants))
        got = page.evaluate(f"latentSnare.render({x}, {y}, {velocity}, {variant})")
        wave = np.asarray(got["wave"], np.float32)
        if i < 2:  # the command itself, through its 24-bit file
            out = tmp_path / f"{i}.wav"
            command = ["render", "--cc", str(x), str(y), "--velocity", str(velocity), "--variant", str(variant)]
            subprocess.run([sys.executable, "-m", "instrument.app.cli", *command, str(out)], check=True)
            expected = sf.read(out, dtype="float32")[0]
        else:  # the function it calls
            latent = model.knobs.cc_to_latent(x, y)
            expected = render_snare(model, latent, velocity, c.voices.velocity_range_db, c.audio.ceiling_db, variant)
        assert wave.shape == expected.shape
        diff_db = 20 * np.log10(np.max(np.abs(wave - expected)) + 1e-12)
        assert diff_db <= MATCH_DB, f"CC ({x}, {y}) velocity {velocity} variant {variant}: {diff_db:.1f} dB off"
        worst = max(worst, diff_db)
    print(f"worst difference against render: {worst:.1f} dB")


def test_the_site_works_with_the_network_cut_after_the_first_load(context, site):
    page = open_site(context, site)
    wait_js(page, "!!navigator.serviceWorker.controller || false", 20)  # the service worker took the page
    context.set_offline(True)
    page.reload()
    wait_js(page, "!!document.body.dataset.ready && document.querySelector('#map').naturalWidth > 0", 30)
    page.evaluate("latentSnare.midi([0xB0, 74, 5])")
    wait_js(page, f"document.body.dataset.ready === '{CONFIG.model} 5 64'")
    page.evaluate("latentSnare.midi([0x99, 38, 120])")
    assert page.evaluate("latentSnare.lastPlayed().key") == f"{CONFIG.model} 5 64"
    page.screenshot(path=str(ARTIFACTS / "site-offline.png"))


def test_the_sites_pack_is_the_grid_latent_snare_pack_writes(context, site, tmp_path):
    page = open_site(context, site)
    page.select_option("#grid", "2")
    with page.expect_download(timeout=30_000) as download:
        page.click("#pack")
    archive = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    out = tmp_path / "pack"
    subprocess.run([sys.executable, "-m", "instrument.app.cli", "pack", "--grid", "2", str(out)], check=True)
    names = sorted(n for n in archive.namelist() if n.endswith(".wav"))
    assert names == sorted(p.name for p in out.glob("*.wav"))
    assert list(csv.reader(io.StringIO(archive.read("index.csv").decode()))) == list(
        csv.reader(open(out / "index.csv"))
    )
    for name in names:
        ours = sf.read(io.BytesIO(archive.read(name)), dtype="float32")[0]
        theirs = sf.read(out / name, dtype="float32")[0]
        assert 20 * np.log10(np.max(np.abs(ours - theirs)) + 1e-12) <= MATCH_DB, name
    assert archive.read("latent-map.png").startswith(b"\x89PNG")


def encode_cc(path) -> tuple[int, int]:
    """Where `latent-snare encode` puts a file: the whole knob positions it reports."""
    done = subprocess.run(
        [sys.executable, "-m", "instrument.app.cli", "encode", "--json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    x, y = json.loads(done.stdout)["cc"]
    return x, y


def test_a_drop_on_the_site_lands_within_3_cc_of_latent_snare_encode(context, site, tmp_path):
    page = open_site(context, site)
    rng = np.random.default_rng(11)
    for i, (x, y) in enumerate([(110, 15), (20, 100)]):
        source = (
            tmp_path / f"drop{i}.wav"
        )  # a snare of another drum's level and onset: a rendered one, shifted and quieter
        wave = load_model(None, CONFIG.model).decode(load_model(None, CONFIG.model).knobs.cc_to_latent(x, y))
        sf.write(
            source,
            np.concatenate([np.zeros(500, np.float32), 0.3 * wave + 1e-3 * rng.standard_normal(wave.size)]),
            44100,
        )
        expected = encode_cc(source)
        drop_file(page, source.name, source.read_bytes())
        page.wait_for_selector("#message.good", timeout=60_000)
        landed = tuple(int(v) for v in page.evaluate("document.body.dataset.cc").split(","))
        assert max(abs(a - b) for a, b in zip(landed, expected)) <= 3, (
            f"the site put it at {landed}, encode at {expected}"
        )
        assert source.name in page.locator("#message").inner_text()
        page.evaluate("document.getElementById('message').className = ''")


def test_a_broken_drop_on_the_site_is_one_line_and_moves_nothing(context, site):
    page = open_site(context, site)
    before = page.evaluate("document.body.dataset.cc")
    drop_file(page, "notes.wav", b"RIFF\x00\x00\x00\x00WAVEthese are not samples" * 10)
    page.wait_for_selector("#message.bad", timeout=30_000)
    message = page.locator("#message").inner_text()
    assert "notes.wav" in message and "not a readable audio file" in message and "\n" not in message, message
    assert page.evaluate("document.body.dataset.cc") == before
