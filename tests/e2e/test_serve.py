"""`latent-snare serve` in a real browser (Debian's chromium driven by Playwright), started as a
subprocess with two gunicorn workers, no JACK and no audio device: tabs are independent
instruments, a tap plays what `render` writes, Web MIDI, drops, downloads, share links, the API's
400s, and a worker killed mid-run. Every page test runs twice: with the page decoding in the tab
(its default), and with it forced to fetch the server's WAVs (its fallback)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from instrument.config import load_config
from instrument.core.dsp import velocity_to_gain
from instrument.files.audio import load_snare
from instrument.files.saving import read_snare_metadata
from instrument.model.file import load_model

from ..serveproc import Serve, http
from . import pagechecks
from .conftest import ARTIFACTS, autoplay_browser
from .test_web import drag, drop_file, wait_until

pytestmark = pytest.mark.e2e

CONFIG = load_config()
MAX_UPLOAD_MB = 1
WORKERS = 2
MATCH_DB = -90.0  # the tab's decoder against render, max |difference| re full scale


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    config = tmp_path_factory.mktemp("config") / "serve.yaml"
    config.write_text(f"web:\n  max_upload_mb: {MAX_UPLOAD_MB}\n")
    svc = Serve(["--workers", str(WORKERS), "--config", str(config)], ARTIFACTS / "serve.log")
    yield svc
    assert svc.stop() == 0, (ARTIFACTS / "serve.log").read_text()[-2000:]


@pytest.fixture(scope="module", params=["browser", "server"])
def decoder(request):
    """Where the page decodes: in the tab, or on the server (`?decoder=server`, the fallback)."""
    return request.param


@pytest.fixture(scope="module")
def browser(server):
    yield from autoplay_browser()


def wait_js(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll a JavaScript expression until it is true. (Playwright's wait_for_function evaluates a
    string with eval, which the page's Content-Security-Policy rightly refuses.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} within {timeout_s} s"
        page.wait_for_timeout(50)


def open_tab(browser, server, url=None, decoder="browser"):
    page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    page.goto(url or server.url + ("?decoder=server" if decoder == "server" else ""))
    wait_js(page, "!!document.body.dataset.ready && document.querySelector('#map').naturalWidth > 0", 20)
    assert page.evaluate("document.body.dataset.decoder") == decoder
    return page


@pytest.fixture
def tab(browser, server, decoder, request):
    page = open_tab(browser, server, decoder=decoder)
    yield page
    page.screenshot(path=str(ARTIFACTS / f"serve-{request.node.name}.png"))
    page.close()


def tab_cc(page) -> tuple[int, int]:
    x, y = page.evaluate("document.body.dataset.cc").split(",")
    return int(x), int(y)


def wait_ready(page, model, x, y):
    wait_js(page, f"document.body.dataset.ready === '{model} {x} {y}'")


def rendered_file(tmp_path, x, y, model=CONFIG.model, velocity=127, variant=0) -> Path:
    out = tmp_path / f"render-{model}-{x}-{y}-{velocity}-{variant}.wav"
    cc = ["--cc", str(x), str(y), "--velocity", str(velocity), "--variant", str(variant)]
    subprocess.run(
        [sys.executable, "-m", "instrument.app.cli", "render", "--model", model, *cc, str(out)],
        check=True,
        capture_output=True,
    )
    return out


# --- each tab its own instrument ---------------------------------------------------------------


def test_two_tabs_move_independently(browser, server, tab):
    other = open_tab(browser, server)
    try:
        drag(tab, (0.5, 0.5), (0.9, 0.1))
        wait_until(tab, lambda: tab_cc(tab)[0] >= 110, f"the first tab's point at the top right, not {tab_cc(tab)}")
        other.focus("#pad")
        other.keyboard.press("Shift+ArrowLeft")  # 8 steps left of the centre
        wait_until(other, lambda: tab_cc(other) == (56, 64), f"the second tab at (56, 64), not {tab_cc(other)}")
        assert tab_cc(tab)[0] >= 110 and tab_cc(other) == (56, 64)  # neither moved the other
        wait_until(
            tab, lambda: "x=56" in other.url and f"x={tab_cc(tab)[0]}" in tab.url, "each URL following its own tab"
        )
    finally:
        other.close()


def assert_same_snare(ours, render_file: Path, decoder: str) -> None:
    """The server sends render's file (equal up to its 24-bit steps); the tab decodes its own."""
    theirs = sf.read(render_file, dtype="float32")[0]
    worst = np.max(np.abs(np.asarray(ours, np.float32) - theirs))
    assert worst <= (2**-23 if decoder == "server" else 10 ** (MATCH_DB / 20)), f"{20 * np.log10(worst):.1f} dB off"


def test_a_tap_plays_the_snare_render_writes_from_a_buffer_in_memory(tab, decoder, tmp_path):
    tab.evaluate("latentSnare.midi([0xB0, 74, 30]); latentSnare.midi([0xB0, 75, 100])")
    wait_ready(tab, CONFIG.model, 30, 100)
    tab.evaluate(
        "(() => { const v = document.getElementById('velocity'); v.value = 90; v.dispatchEvent(new Event('input')); })()"
    )
    tab.dispatch_event("#hit", "pointerdown")
    played = tab.evaluate(
        "(() => { const p = latentSnare.lastPlayed();"
        " return { key: p.key, layer: p.layer, variant: p.variant, gain: p.gain, rate: p.buffer.sampleRate,"
        " data: Array.from(p.buffer.getChannelData(0)) }; })()"
    )
    # Velocity 90 plays the layer rendered at 80 (the instrument's nearest), at 90's level.
    render_file = rendered_file(tmp_path, 30, 100, velocity=80, variant=played["variant"])
    assert played["key"] == f"{CONFIG.model} 30 100" and played["layer"] == 80
    assert played["rate"] == sf.info(render_file).samplerate
    assert_same_snare(played["data"], render_file, decoder)
    level = velocity_to_gain(90, CONFIG.voices.velocity_range_db) / velocity_to_gain(
        80, CONFIG.voices.velocity_range_db
    )
    assert played["gain"] == pytest.approx(level, rel=1e-6)


def test_web_midi_moves_the_point_plays_switches_models_and_learns(tab):
    tab.evaluate("latentSnare.midi([0xB0, 74, 20]); latentSnare.midi([0xB0, 75, 110])")
    wait_ready(tab, CONFIG.model, 20, 110)
    tab.evaluate("latentSnare.midi([0x99, 38, 64])")  # note 38 on channel 10
    assert tab.evaluate("latentSnare.lastPlayed().key") == f"{CONFIG.model} 20 110"
    assert tab.evaluate("latentSnare.lastPlayed().velocity") == 64
    tab.evaluate("latentSnare.midi([0x90, 60, 100])")  # not a trigger note: nothing new plays
    assert tab.evaluate("latentSnare.lastPlayed().velocity") == 64

    second = CONFIG.midi.programs[1]
    # One script: the veil must be up when the switch returns, before any load event can take it down
    # (a map already in the browser's cache arrives within a task).
    assert tab.evaluate("latentSnare.midi([0xC0, 1]); document.getElementById('pad').classList.contains('loading')"), (
        "no loading state on a switch"
    )
    wait_ready(tab, second, 20, 110)
    wait_js(
        tab,
        f"document.querySelector('#map').src.endsWith('/map/{second}.png') && "
        "!document.querySelector('#pad').classList.contains('loading')",
    )
    wait_js(tab, f"location.search.includes('model={second}')")

    tab.click("[data-learn=x]")
    tab.evaluate("latentSnare.midi([0xB0, 21, 5])")  # learned, not played
    tab.wait_for_selector("#message.good")
    tab.evaluate("latentSnare.midi([0xB0, 21, 99])")
    wait_until(tab, lambda: tab_cc(tab) == (99, 110), f"CC 21 moving x, not {tab_cc(tab)}")
    tab.evaluate("localStorage.clear()")


# --- drops and downloads -----------------------------------------------------------------------


def test_dropping_a_sample_moves_the_point_where_the_model_puts_it(tab, decoder, tmp_path):
    model = load_model(None, CONFIG.model)
    source = rendered_file(tmp_path, 110, 15)
    expected = model.knobs.latent_to_cc_int(model.encode(load_snare(source, model.sample_rate, model.n_samples)))
    drop_file(tab, "found snare.wav", source.read_bytes())
    tab.wait_for_selector("#message.good", timeout=30_000)
    assert "found snare.wav" in tab.locator("#message").inner_text()
    if decoder == "server":  # the server runs `encode` itself
        assert tab_cc(tab) == expected
    else:  # the tab's own search: within 3 CC of where `encode` puts it
        assert max(abs(a - b) for a, b in zip(tab_cc(tab), expected)) <= 3, (tab_cc(tab), expected)


def test_a_broken_drop_is_one_line_and_moves_nothing(tab):
    before = tab_cc(tab)
    drop_file(tab, "notes.wav", b"RIFF\x00\x00\x00\x00WAVEthese are not samples" * 10)
    tab.wait_for_selector("#message.bad", timeout=30_000)
    message = tab.locator("#message").inner_text()
    assert "notes.wav" in message and "not a readable audio file" in message and "/tmp" not in message, message
    assert tab_cc(tab) == before


def test_the_wav_download_is_the_file_render_writes(tab, decoder, tmp_path):
    tab.evaluate("latentSnare.midi([0xB0, 74, 12]); latentSnare.midi([0xB0, 75, 100])")
    wait_ready(tab, CONFIG.model, 12, 100)
    with tab.expect_download() as download:
        tab.click("#download")
    assert download.value.suggested_filename == f"{CONFIG.model}-x012-y100.wav"
    velocity = tab.evaluate("Number(document.getElementById('velocity').value)")  # the slider's level and timbre
    ours, render_file = Path(download.value.path()), rendered_file(tmp_path, 12, 100, velocity=velocity)
    if decoder == "server":
        assert ours.read_bytes() == render_file.read_bytes()
    else:  # made in the tab: the same samples (within -90 dB) and the same recall data
        assert_same_snare(sf.read(ours, dtype="float32")[0], render_file, decoder)
        assert read_snare_metadata(ours) == read_snare_metadata(render_file)
        assert sf.info(ours).subtype == "PCM_24"


def test_the_pack_download_is_a_zip_with_the_grid_the_index_and_the_map(tab):
    tab.select_option("#grid", "2")
    with tab.expect_download(timeout=60_000) as download:
        tab.click("#pack")
    assert download.value.suggested_filename == f"{CONFIG.model}-pack-2x2.zip"
    with zipfile.ZipFile(download.value.path()) as archive:
        names = archive.namelist()
        index = archive.read("index.csv").decode().splitlines()
        wav = archive.read(next(n for n in names if n.endswith(".wav")))
    assert sum(n.endswith(".wav") for n in names) == 4 and "latent-map.png" in names
    assert len(index) == 5 and index[0].startswith("file,row,col,cc_x,cc_y")
    assert sf.info(io.BytesIO(wav)).subtype == "PCM_24"


# --- for a musician ---------------------------------------------------------------------------


@pytest.fixture
def page(browser, server, request):
    """One tab, decoding in itself, at a desktop window's width."""
    page = open_tab(browser, server)
    page.set_viewport_size({"width": 1280, "height": 800})
    yield page
    page.screenshot(path=str(ARTIFACTS / f"serve-{request.node.name}.png"))
    page.close()


def move(page, x, y):
    page.evaluate(f"latentSnare.midi([0xB0, 74, {x}]); latentSnare.midi([0xB0, 75, {y}])")
    wait_js(page, f"document.body.dataset.cc === '{x},{y}'")


def test_the_pad_shows_where_the_models_training_snares_are_and_names_the_nearest(page):
    pagechecks.assert_landmarks_drawn(page, CONFIG.model)
    for x, y in ((100, 30), (12, 120), (64, 2)):
        move(page, x, y)
        pagechecks.assert_nearest_named(page, CONFIG.model, x, y)
    other = CONFIG.midi.programs[1]  # another model: its own landmarks
    page.select_option("#model", other)
    wait_js(page, "!document.getElementById('pad').classList.contains('loading')")
    pagechecks.assert_landmarks_drawn(page, other)
    drag(page, (0.25, 0.25), (0.75, 0.4))  # the dots and the name never catch the pointer
    wait_until(page, lambda: tab_cc(page) == (95, 76), f"the point at (95, 76), not {tab_cc(page)}")


def test_the_readout_speaks_of_the_sound_and_folds_the_engine_numbers(page):
    pagechecks.assert_engine_numbers_folded(page, ["r-ready", "r-latency"])
    for (x, y), words in (((120, 10), "bright, short"), ((10, 120), "dark, long"), ((64, 64), "mellow, medium decay")):
        move(page, x, y)
        pagechecks.assert_character(page, words)


def test_a_point_in_a_corner_shows_its_whole_ring(page):
    for x, y in ((127, 0), (0, 127), (127, 127), (0, 0)):
        move(page, x, y)
        pagechecks.assert_ring_inside_the_pad(page)


def test_the_page_uses_a_wide_window_and_fits_a_phone(page):
    pagechecks.assert_uses_the_width(page)
    page.set_viewport_size({"width": 390, "height": 844})
    pagechecks.assert_fits_a_phone(page)


@pytest.mark.parametrize("width", [1280, 1100, 390])
def test_the_learn_buttons_are_one_line_high(page, width):
    page.set_viewport_size({"width": width, "height": 800})
    pagechecks.assert_one_line(page, "[data-learn]", "[data-learn='loop']")


def test_the_share_link_wraps_only_between_its_parameters(page):
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the link must wrap
    move(page, 101, 17)
    wait_js(page, "document.getElementById('share').textContent.includes('x=101')")
    assert page.evaluate("document.getElementById('share').textContent") == page.url
    pagechecks.assert_breaks_only_between_parameters(page, "#share")


def test_the_empty_kept_list_says_what_it_is_for(page):
    assert page.locator("#kept li").count() == 0
    assert page.locator("#kept-empty").is_visible()
    assert "Keep" in page.locator("#kept-empty").inner_text()
    assert "choose a file to find" not in page.locator(".file").inner_text()
    page.click("#keep")
    wait_js(page, "document.querySelectorAll('#kept li').length === 1")
    assert not page.locator("#kept-empty").is_visible()


# --- links, the API, workers -------------------------------------------------------------------


def test_the_share_link_reopens_the_same_snare(browser, server, decoder, tab):
    second = CONFIG.midi.programs[1]
    tab.select_option("#model", second)
    tab.evaluate("latentSnare.midi([0xB0, 74, 40]); latentSnare.midi([0xB0, 75, 90])")
    wait_ready(tab, second, 40, 90)
    wait_js(tab, "location.search.includes('x=40') && location.search.includes('y=90')")
    reopened = open_tab(browser, server, tab.url, decoder)  # the link keeps ?decoder=server where it was set
    try:
        wait_ready(reopened, second, 40, 90)
        assert reopened.input_value("#model") == second
    finally:
        reopened.close()


def test_bad_api_parameters_get_a_400_with_one_line_reason(server):
    for query, reason in [
        ("x=128&y=1", "out of range"),
        ("x=ten&y=1", "not a number"),
        ("x=1&y=1&model=nope", "unknown model"),
        ("x=1&y=1&model=..%2Fmodels%2Fenv", "not a path"),
    ]:
        status, body, _ = http(server.url, f"/snare.wav?{query}")
        assert status == 400 and reason in body.decode() and body.decode().count("\n") == 1, (query, body)
    status, body, headers = http(server.url, "/snare.wav?x=1&y=2")
    assert status == 200 and headers["ETag"] and "script-src 'self'" in headers["Content-Security-Policy"]
    assert http(server.url, "/", headers={"Host": "rebound.example"})[0] == 403
    assert http(server.url, "/encode", "POST", {"Origin": "http://evil.example"}, b"x")[0] == 403
    status, body, _ = http(
        server.url, "/encode", "POST", {"X-File-Name": "big.wav"}, b"\0" * int((MAX_UPLOAD_MB + 0.1) * 1e6)
    )
    assert status == 413 and f"{MAX_UPLOAD_MB} MB" in json.loads(body)["message"]


def test_a_killed_worker_is_replaced_and_only_its_request_in_flight_is_lost(server):
    before = server.wait_workers(WORKERS)
    results: list[int] = []
    stop = threading.Event()

    def client():
        x = 0
        while not stop.is_set():
            x = (x + 1) % 128  # a new point each time: every request is a real decode
            try:
                results.append(http(server.url, f"/snare.wav?x={x}&y=64")[0])
            except OSError:
                results.append(-1)

    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(1.0)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    after = server.wait_workers(WORKERS, gone=victim)
    time.sleep(1.5)
    stop.set()
    thread.join(20)
    assert victim not in after and len(after - before) == 1
    failed = [r for r in results if r != 200]
    assert len(results) > 20 and len(failed) <= 1, f"{len(failed)} of {len(results)} requests failed: {set(failed)}"
    assert http(server.url, "/snare.wav?x=5&y=5")[0] == 200
