"""The web control page in a real browser (Debian's chromium driven by Playwright), against the
running service on JACK: the pad, knobs over JACK MIDI, drop, download, errors, and the
protocol's guards (Host, Origin, malformed messages, upload caps, flood coalescing)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re

import numpy as np
import pytest
import soundfile as sf

from instrument.files.audio import load_snare
from instrument.files.saving import read_snare_metadata
from instrument.model.file import load_model

from ..chromium import launch
from ..jackrig import ServiceProcess, service_state
from . import pagechecks
from .conftest import ARTIFACTS, _require
from .listen import CONFIG, assert_matches, expected_snare, hit, recorded_hit, rendered, set_knobs, wait_state

pytestmark = pytest.mark.e2e

MAX_UPLOAD_MB = 1


@pytest.fixture(scope="module")
def service(jack_server, tmp_path_factory, user_folders):
    config = tmp_path_factory.mktemp("config") / "web.yaml"
    config.write_text(
        f"midi:\n  inputs: []\nsave:\n  folder: {user_folders['save']}\n  drop_folder: ''\n"
        f"web:\n  max_upload_mb: {MAX_UPLOAD_MB}\n"
    )
    svc = ServiceProcess(["--config", str(config)], log_path=ARTIFACTS / "service-web.log")
    assert svc.url, f"no page address in the ready line: {svc.lines}"
    yield svc
    assert svc.stop() == 0


@pytest.fixture(scope="module")
def browser(service):
    _require("chromium", "chromium")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (pip install -e .[test])")
    with playwright_api.sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


def open_page(browser, service):
    page = browser.new_page(viewport={"width": 1100, "height": 800}, accept_downloads=True)
    page.goto(service.url)
    page.wait_for_selector("#link.on")
    page.wait_for_function("document.body.dataset.cc !== undefined && document.querySelector('#map').naturalWidth > 0")
    return page


@pytest.fixture
def page(browser, service, request):
    page = open_page(browser, service)
    yield page
    page.screenshot(path=str(ARTIFACTS / f"web-{request.node.name}.png"))
    page.close()


def status_cc() -> tuple[int, int]:
    """The knob position the service plays now (its JSON state)."""
    x, y = service_state()["cc"]
    return x, y


def page_cc(page) -> tuple[int, int]:
    x, y = page.evaluate("document.body.dataset.cc").split(",")
    return int(x), int(y)


def drag(page, start, end):
    """Drag on the pad between two points given as fractions of its map's width and height (from
    top left; the map is the pad inside its frame)."""
    box = page.locator("#field").bounding_box()
    at = lambda fx, fy: (box["x"] + fx * box["width"], box["y"] + fy * box["height"])  # noqa: E731
    page.mouse.move(*at(*start))
    page.mouse.down()
    page.mouse.move(*at(*end), steps=12)
    page.mouse.up()


def drop_file(page, name: str, data: bytes, mime="audio/wav"):
    """Drop a file on the pad the way a file manager does: a DataTransfer holding a File."""
    page.evaluate(
        """([name, b64, mime]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, { type: mime }));
        const pad = document.getElementById('pad');
        for (const type of ['dragenter', 'dragover', 'drop']) {
            pad.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }
    }""",
        [name, base64.b64encode(data).decode(), mime],
    )


def wait_until(page, predicate, what, timeout_s=5.0):
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{what} within {timeout_s} s")


def near(a, b, tolerance=1):
    return all(abs(p - q) <= tolerance for p, q in zip(a, b))


# --- the page --------------------------------------------------------------------------------


def test_dragging_on_the_pad_moves_the_instruments_point_and_its_sound(page, rig):
    drag(page, (0.5, 0.5), (0.9, 0.1))  # top right: x and y near 0.9 * 127
    wait_until(page, lambda: near(status_cc(), (114, 114), 2), f"the service at CC (114, 114), not {status_cc()}")
    cc = status_cc()  # the position that plays: published after its decode
    assert_matches(hit(rig)[1], expected_snare(rig.rate, *cc), expected_snare(rig.rate, 127 - cc[0], 127 - cc[1]))


def test_a_knob_turned_over_jack_midi_moves_the_point_on_the_page(page, rig):
    set_knobs(rig, 20, 110)
    page.wait_for_function("document.body.dataset.cc === '20,110'")
    pad, dot = page.locator("#field").bounding_box(), page.locator("#dot").bounding_box()
    centre = (
        (dot["x"] + dot["width"] / 2 - pad["x"]) / pad["width"],
        (dot["y"] + dot["height"] / 2 - pad["y"]) / pad["height"],
    )
    assert np.allclose(centre, (20 / 127, 1 - 110 / 127), atol=0.02), f"the dot is at {centre} of the pad"
    assert page.locator("#r-cc").inner_text() == "20, 110"


def test_the_hit_button_plays_through_the_instruments_output(page, rig):
    set_knobs(rig, 0, 0)
    before = rig.last_frame
    page.click("#hit")
    heard = recorded_hit(rig, before, 1.0)
    assert heard is not None, "no sound after the page's hit button"
    assert_matches(
        heard[1], expected_snare(rig.rate, 0, 0, velocity=100), expected_snare(rig.rate, 127, 127, velocity=100)
    )
    page.wait_for_function("document.getElementById('r-velocity').textContent === '100'")


def test_dropping_a_wav_on_the_pad_moves_the_point_where_the_model_puts_it(page, tmp_path):
    model = load_model(None, CONFIG.model)
    source = tmp_path / "found snare.wav"
    sf.write(source, rendered(44100, model, model.knobs.cc_to_latent(110, 15)), 44100)
    expected = model.knobs.latent_to_cc_int(model.encode(load_snare(source, model.sample_rate, model.n_samples)))
    set_knobs_via_page(page, 64, 64)
    drop_file(page, source.name, source.read_bytes())
    page.wait_for_selector("#message.good")
    message = page.locator("#message").inner_text()
    assert "found snare.wav" in message and "spectral match" in message, message
    wait_until(page, lambda: near(page_cc(page), expected), f"the page's point at {expected}, not {page_cc(page)}")
    assert near(status_cc(), expected)


def set_knobs_via_page(page, x, y):
    page.evaluate("([x, y]) => ws.send(JSON.stringify({type: 'move', x, y}))", [x, y])
    wait_until(page, lambda: status_cc() == (x, y), f"the service at CC ({x}, {y})")


def test_a_broken_upload_shows_an_error_and_moves_nothing(page):
    set_knobs_via_page(page, 40, 41)
    drop_file(page, "notes.wav", b"RIFF\x00\x00\x00\x00WAVEthese are not samples" * 10)
    page.wait_for_selector("#message.bad")
    message = page.locator("#message").inner_text()
    assert "notes.wav" in message and "not a readable audio file" in message, message
    assert "/tmp" not in message  # the server's temporary path is never shown
    assert status_cc() == (40, 41)


def test_save_and_download_returns_a_valid_wav_listed_in_the_history(page, user_folders):
    set_knobs_via_page(page, 12, 100)
    with page.expect_download() as download:
        page.click("#save")
    name = download.value.suggested_filename
    assert re.fullmatch(rf"\d{{4}}-{CONFIG.model}-x012-y100\.wav", name), name
    path = download.value.path()
    data, rate = sf.read(path, dtype="float32")
    assert rate == 44100 and data.ndim == 1 and np.all(np.isfinite(data))
    assert 0.1 < np.max(np.abs(data)) <= 10 ** (CONFIG.audio.ceiling_db / 20) + 1e-3
    assert read_snare_metadata(path)["cc"] == [12, 100]
    assert (user_folders["save"] / name).read_bytes() == open(path, "rb").read()  # the same file as the save feature
    page.wait_for_function(f"[...document.querySelectorAll('#history a')].some((a) => a.textContent === '{name}')")


def test_recall_from_the_history_list_moves_the_point_back(page):
    set_knobs_via_page(page, 12, 100)
    with page.expect_download():
        page.click("#save")
    set_knobs_via_page(page, 90, 20)
    page.locator("#history li").first.locator("button").click()
    wait_until(page, lambda: status_cc() == (12, 100), f"recall at CC (12, 100), not {status_cc()}")
    page.wait_for_function("document.body.dataset.cc === '12,100'")


def test_two_open_pages_stay_in_sync(browser, service, page):
    other = open_page(browser, service)
    try:
        drag(page, (0.5, 0.5), (0.25, 0.75))  # x 0.25, y 0.25 of 127
        other.wait_for_function(
            "(() => { const [x, y] = document.body.dataset.cc.split(',').map(Number);"
            " return Math.abs(x - 32) <= 2 && Math.abs(y - 32) <= 2; })()"
        )
        other.screenshot(path=str(ARTIFACTS / "web-second-page.png"))
    finally:
        other.close()


def test_loop_toggle_and_tempo_from_the_page(page):
    page.fill("#bpm", "90")
    page.check("#loop")  # the tempo field's change (on blur) and the toggle arrive in order
    page.wait_for_function("document.getElementById('message').textContent === 'loop on at 90 bpm'")
    assert service_state()["loop"] and service_state()["bpm"] == 90
    page.uncheck("#loop")
    wait_until(page, lambda: not service_state()["loop"], "the loop off")


def test_the_model_picker_switches_models(page):
    names = page.eval_on_selector_all("#model option", "options => options.map((o) => o.value)")
    assert CONFIG.model in names and len(names) >= 2, names
    other = next(n for n in names if n != CONFIG.model)
    # Picked and checked in one script: the veil must be up before the new map could arrive.
    picked = page.evaluate(
        "(name) => { const s = document.getElementById('model'); s.value = name;"
        " s.dispatchEvent(new Event('change')); return document.getElementById('pad').classList.contains('loading'); }",
        other,
    )
    assert picked, "no loading state on a switch"
    assert other in page.locator("#loading").inner_text()
    wait_until(page, lambda: service_state()["model"] == other, f"model {other}", timeout_s=10)
    page.wait_for_function(
        f"document.querySelector('#map').src.endsWith('/map/{other}.png')"
        " && !document.getElementById('pad').classList.contains('loading')"
    )
    page.select_option("#model", CONFIG.model)
    wait_until(page, lambda: service_state()["model"] == CONFIG.model, f"model {CONFIG.model}", timeout_s=10)


# --- for a musician ---------------------------------------------------------------------------


def test_the_pad_shows_where_the_models_training_snares_are_and_names_the_nearest(page, rig):
    model = service_state()["model"]
    page.wait_for_function("document.querySelectorAll('.landmark').length > 0")
    pagechecks.assert_landmarks_drawn(page, model)
    for x, y in ((100, 30), (12, 120), (64, 2)):  # the last: the name goes above a point at the bottom
        set_knobs(rig, x, y)
        page.wait_for_function(f"document.body.dataset.cc === '{x},{y}'")
        pagechecks.assert_nearest_named(page, model, x, y)
    drag(page, (0.3, 0.3), (0.7, 0.6))  # the dots and the name never catch the pointer
    wait_until(page, lambda: near(status_cc(), (89, 51), 2), f"the service at CC (89, 51), not {status_cc()}")


def test_the_readout_speaks_of_the_sound_and_folds_the_engine_numbers(page, rig):
    pagechecks.assert_engine_numbers_folded(page, ["r-latent", "r-decode", "r-own-xruns", "r-voices"])
    for (x, y), words in (((120, 10), "bright, short"), ((10, 120), "dark, long"), ((64, 64), "mellow, medium decay")):
        set_knobs(rig, x, y)
        page.wait_for_function(f"document.body.dataset.cc === '{x},{y}'")
        pagechecks.assert_character(page, words)


def test_a_point_in_a_corner_shows_its_whole_ring(page):
    drag(page, (0.5, 0.5), (1.015, 1.015))  # onto the pad's frame, past the bottom right corner: CC (127, 0)
    wait_until(page, lambda: status_cc() == (127, 0), f"the service at CC (127, 0), not {status_cc()}")
    pagechecks.assert_ring_inside_the_pad(page)
    drag(page, (0.5, 0.5), (-0.015, -0.015))
    wait_until(page, lambda: status_cc() == (0, 127), f"the service at CC (0, 127), not {status_cc()}")
    pagechecks.assert_ring_inside_the_pad(page)


def test_the_page_uses_a_wide_window_and_fits_a_phone(page):
    page.set_viewport_size({"width": 1280, "height": 800})
    pagechecks.assert_uses_the_width(page)
    page.set_viewport_size({"width": 390, "height": 844})
    pagechecks.assert_fits_a_phone(page)


def test_an_empty_history_says_what_will_be_there(browser, service, user_folders):
    """Before the first save (a fresh save folder), a line in place of the empty list."""
    page = open_page(browser, service)
    try:
        empty = not (user_folders["save"] / "history.json").exists()
        page.wait_for_function("document.getElementById('history-empty').hidden !== undefined")
        page.wait_for_timeout(300)  # the history's answer
        shown = page.locator("#history-empty").is_visible()
        assert shown == (page.locator("#history li").count() == 0)
        if empty:
            assert shown and "Save" in page.locator("#history-empty").inner_text()
    finally:
        page.close()


# --- the protocol's guards -------------------------------------------------------------------


def run_async(coroutine_fn):
    """Run an aiohttp client on a thread of its own: Playwright's sync API owns this thread's event loop."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine_fn()).result()


def exchange(url, origin, messages, read_replies=True):
    """Open the page's WebSocket with `origin`, send `messages`, return the replies after hello."""
    import aiohttp

    async def talk():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(url + "ws", origin=origin) as ws:
                hello = await ws.receive_json(timeout=5)
                assert hello["type"] == "hello"
                replies = []
                for message in messages:
                    await ws.send_str(message if isinstance(message, str) else json.dumps(message))
                    if read_replies:
                        reply = await ws.receive_json(timeout=5)
                        while reply["type"] == "state":
                            reply = await ws.receive_json(timeout=5)
                        replies.append(reply)
                return replies

    return run_async(talk)


def http(url, path, method="GET", headers=None, body=None):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url + path.lstrip("/"), data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_other_sites_and_unknown_hosts_are_refused(service):
    import aiohttp

    origin = service.url.rstrip("/")
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        exchange(service.url, "http://evil.example", [])
    assert refused.value.status == 403
    assert http(service.url, "/save", "POST", {"Origin": "http://evil.example"})[0] == 403
    assert http(service.url, "/save", "POST")[0] == 403  # no Origin: not from the page either
    assert http(service.url, "/", headers={"Host": "rebound.example:80"})[0] == 403  # DNS rebinding
    assert http(service.url, "/", headers={"Origin": origin})[0] == 200
    assert http(service.url, "/static/favicon.svg")[1].startswith(b"<svg")


def test_malformed_messages_are_refused_and_playback_goes_on(service, rig):
    set_knobs(rig, 50, 60)
    bad = [
        "not json",
        "[1, 2]",
        {"type": "teleport"},
        {"type": "move", "x": "left", "y": 3},
        {"type": "move", "x": 1e308, "y": 0},
        {"type": "move", "x": float("nan"), "y": 0},
        {"type": "hit", "velocity": 0},
        {"type": "hit", "velocity": True},
        {"type": "loop", "on": "yes"},
        {"type": "model", "name": "../../etc/passwd"},
        {"type": "recall", "number": -1},
        "x" * 5000,
    ]
    replies = exchange(service.url, service.url.rstrip("/"), bad[:-1])
    assert all(r["type"] == "error" and r["text"] for r in replies), replies
    with pytest.raises(Exception):  # noqa: B017 (over the size cap the server closes the socket: the client's error type varies)
        exchange(service.url, service.url.rstrip("/"), bad[-1:])
    assert status_cc() == (50, 60)
    assert_matches(hit(rig)[1], expected_snare(rig.rate, 50, 60), expected_snare(rig.rate, 127, 127))


def test_a_flood_of_pad_moves_coalesces_and_ends_at_the_last_one(service):
    moves = [{"type": "move", "x": float(i % 128), "y": float((7 * i) % 128)} for i in range(3000)] + [
        {"type": "move", "x": 9, "y": 118}
    ]
    decodes_before = json.loads(send_snapshot(service))["decodes"]
    exchange(service.url, service.url.rstrip("/"), moves, read_replies=False)
    wait_state(lambda state: state["cc"] == [9, 118], "the last pad move playing")
    decoded = json.loads(send_snapshot(service))["decodes"] - decodes_before
    assert 1 <= decoded < len(moves) / 2, f"{decoded} decodes for {len(moves)} moves"


def send_snapshot(service) -> str:
    """The state the page sees, as JSON (read through a fresh WebSocket's hello)."""
    import aiohttp

    async def read():
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(service.url + "ws", origin=service.url.rstrip("/")) as ws:
                return json.dumps(await ws.receive_json(timeout=5))

    return run_async(read)


def test_uploads_are_capped_and_browser_names_never_become_paths(service, tmp_path):
    origin = {"Origin": service.url.rstrip("/")}
    status, body = http(
        service.url, "/upload", "POST", {**origin, "X-File-Name": "huge.wav"}, b"\0" * int((MAX_UPLOAD_MB + 0.1) * 1e6)
    )
    assert (
        status == 413 and "huge.wav" in json.loads(body)["error"] and f"{MAX_UPLOAD_MB} MB" in json.loads(body)["error"]
    )

    wave = io.BytesIO()
    sf.write(
        wave,
        np.sin(np.linspace(0, 600, 22050)).astype(np.float32) * np.exp(-np.linspace(0, 8, 22050)),
        44100,
        format="WAV",
    )
    status, body = http(
        service.url,
        "/upload",
        "POST",
        {**origin, "X-File-Name": "..%2F..%2F..%2Ftmp%2Fescaped%0A.wav"},
        wave.getvalue(),
    )
    reply = json.loads(body)
    assert status == 200 and reply["ok"] and "drop: escaped.wav ->" in reply["message"], reply
    status, body = http(service.url, "/upload", "POST", {**origin, "X-File-Name": "empty.wav"}, b"")
    assert "empty.wav: empty file" in json.loads(body)["error"]
