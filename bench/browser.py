"""The page's own decoder in headless Chromium, beside the server's WAVs in the same run.

    python -m bench.browser [--moves 100] [--points 200]

- knob move -> playable snare, p50 and p99, with the tab decoding and with `?decoder=server`
  (the same `serve`, one worker, on loopback), and the requests each move made;
- page load -> first playable snare, cold (a new browser profile) and warm (a reload);
- the bytes a first visit downloads, from the static site (`latent-snare site`);
- the tab's samples against `render_snare` (what `render` writes) at random points, velocities
  and round robins: the largest difference, in dB re full scale;
- a dropped sample searched in the tab: seconds to the answer.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf

from instrument.config import load_config
from instrument.files.saving import render_snare
from instrument.model.file import load_model
from tests.chromium import launch
from tests.e2e.test_web import drop_file
from tests.serveproc import Serve


def wait_js(page, expression: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        page.wait_for_timeout(5)


READY = "!!document.body.dataset.ready && document.querySelector('#map').naturalWidth > 0"


def moves(page, n: int, seed: int = 0) -> tuple[list[float], int]:
    """ms from each knob move to its snare being playable, and the requests the moves made."""
    page.wait_for_timeout(1000)  # as a player would: the page settles (its round robins decoded)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    model = page.evaluate("latentSnare.state.model")
    rng = np.random.default_rng(seed)
    times = []
    for x, y in rng.integers(0, 128, (n, 2)):
        page.evaluate(f"latentSnare.midi([0xB0, 74, {x}]); latentSnare.midi([0xB0, 75, {y}])")
        wait_js(page, f"document.body.dataset.ready === '{model} {x} {y}'")
        times.append(page.evaluate("latentSnare.readyMs()"))
        page.wait_for_timeout(20)  # a player's next move: the round robins may still be decoding
    return times, len([url for url in asked if not url.endswith("favicon.svg")])  # the browser's own ask


def first_visit(browser, url: str) -> tuple[float, float, int]:
    """(ms to the first playable snare cold, then warm on a reload; bytes the cold load downloaded)."""
    context = browser.new_context()
    page = context.new_page()
    sizes = []
    page.on("response", lambda r: sizes.append(len(r.body()) if r.ok else 0))
    page.goto(url)
    wait_js(page, READY)
    cold = page.evaluate("latentSnare.firstReadyMs()")
    downloaded = sum(sizes)
    page.wait_for_timeout(1500)  # a visit, not a reflex: the tab keeps the snare its knobs rest on
    page.reload()
    wait_js(page, READY)
    warm = page.evaluate("latentSnare.firstReadyMs()")
    context.close()
    return cold, warm, downloaded


def render_match_db(page, points: int, seed: int = 1) -> tuple[float, list[float]]:
    """The largest difference from render_snare, in dB re full scale, and each decode's ms in the Worker."""
    config = load_config()
    model = load_model(None, config.model)
    rng = np.random.default_rng(seed)
    worst, decode_ms = -np.inf, []
    for _ in range(points):
        x, y = rng.integers(0, 128, 2)
        velocity, variant = int(rng.integers(1, 128)), int(rng.integers(0, model.n_variants))
        reply = page.evaluate(f"latentSnare.render({x}, {y}, {velocity}, {variant})")
        decode_ms.append(reply["ms"])
        got = np.asarray(reply["wave"], np.float32)
        expected = render_snare(
            model,
            model.knobs.cc_to_latent(x, y),
            velocity,
            config.voices.velocity_range_db,
            config.audio.ceiling_db,
            variant,
        )
        worst = max(worst, 20 * np.log10(np.max(np.abs(got - expected)) + 1e-12))
    return worst, decode_ms


def drop_s(page, drops: int = 3) -> list[float]:
    """Seconds from dropping a rendered snare on the pad to the page's answer."""
    model = load_model(None, load_config().model)
    seconds = []
    for i, (x, y) in enumerate(np.random.default_rng(2).integers(0, 128, (drops, 2))):
        data = io.BytesIO()
        sf.write(data, model.decode(model.knobs.cc_to_latent(x, y)), model.sample_rate, format="WAV")
        started = time.monotonic()
        drop_file(page, f"drop{i}.wav", data.getvalue())
        page.wait_for_selector("#message.good", timeout=120_000)
        seconds.append(time.monotonic() - started)
        page.evaluate("document.getElementById('message').className = ''")
    return seconds


def pct(values, q) -> str:
    return f"{np.percentile(values, q):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=100)
    parser.add_argument("--points", type=int, default=200)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        site_dir = Path(tmp) / "www"
        subprocess.run([sys.executable, "-m", "instrument.app.cli", "site", str(site_dir)], check=True)
        port = 8790
        http = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "-d", str(site_dir), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        serve = Serve(["--workers", "1"], Path(tmp) / "serve.log")
        try:
            time.sleep(0.5)
            with sync_playwright() as p:
                browser = launch(p, autoplay=True)
                rows = []
                for label, url in [("in the tab", serve.url), ("from the server", serve.url + "?decoder=server")]:
                    page = browser.new_page()
                    page.goto(url)
                    wait_js(page, READY)
                    times, requests = moves(page, args.moves)
                    rows.append((label, times, requests))
                    page.close()
                cold, warm, site_bytes = first_visit(browser, f"http://127.0.0.1:{port}/")
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                wait_js(page, READY)
                worst_db, decode_ms = render_match_db(page, args.points)
                drops = drop_s(page)
                browser.close()
        finally:
            serve.stop()
            http.terminate()
    print(
        f"browser benchmark, {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"headless Chromium, `serve --workers 1` and the static site on loopback\n"
    )
    print("| decoding | knob → playable p50 ms | p99 ms | requests per move |")
    print("|---|---|---|---|")
    for label, times, requests in rows:
        print(f"| {label} | {pct(times, 50)} | {pct(times, 99)} | {requests / len(times):.1f} |")
    print(f"\n{args.moves} random knob moves each, 20 ms apart once playable.\n")
    print("| static site | value |")
    print("|---|---|")
    print(f"| page load → first playable, cold (new profile) | {cold:.0f} ms |")
    print(f"| page load → first playable, warm (reload) | {warm:.0f} ms |")
    print(f"| bytes of a first visit | {site_bytes / 1e6:.2f} MB |")
    print(f"| one decode in the Worker, p50 / p99 | {pct(decode_ms, 50)} / {pct(decode_ms, 99)} ms |")
    print(f"| tab against `render`, max difference over {args.points} points | {worst_db:.1f} dB re full scale |")
    print(f"| a drop searched in the tab, median of {len(drops)} | {np.median(drops):.1f} s |")


if __name__ == "__main__":
    main()
