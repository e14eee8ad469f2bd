"""The README's pictures of both pages, taken again: `make screenshots`, or

    .venv/bin/python -m scripts.screenshots [--out docs]

Starts a private JACK dummy server and `latent-snare run` on it (the instrument's page), and
`latent-snare serve` (the web application's page), opens each in Debian's Chromium (Playwright,
headless, at 1280 x 800), and writes docs/page-instrument.jpg and docs/page-web.jpg. Nothing of
the user's is touched: saves, the control socket and the MIDI port's lock live in a temporary
folder, and the JACK server has its own name. Needs jackd (jackd2), chromium and the test extras.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.chromium import CHROMIUM, launch
from tests.jackrig import start_jackd, stop_process

REPO = Path(__file__).resolve().parents[1]
VIEWPORT = {"width": 1280, "height": 800}
JPEG_QUALITY = 70  # the map is a noisy spectrogram mosaic: this keeps each picture well under 200 kB
JACK_SERVER = "latent-snare-screenshots"
POINT = (98, 36)  # a bright, short snare, clear of the pad's edges
READY_S = 60


def start(cmd: list[str], env: dict, log: Path, ready: re.Pattern) -> tuple[subprocess.Popen, str]:
    """Start `cmd` and wait for the stdout line matching `ready`; returns the process and the
    match's first group (the page's address)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True, env=env, cwd=REPO, start_new_session=True
    )
    deadline = time.monotonic() + READY_S
    for line in proc.stdout:
        match = ready.search(line)
        if match:
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    stop(proc)
    sys.exit(f"{' '.join(cmd[2:5])}: no page address within {READY_S} s; its log: {log}\n{log.read_text()[-1500:]}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None:
        stop_process(proc, timeout_s=20)


def wait_js(page, expression: str, timeout_s: float = 30.0) -> None:
    """Poll a JavaScript expression until true (the pages' Content-Security-Policy refuses the
    eval that Playwright's wait_for_function uses)."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{expression} not true within {timeout_s} s")
        page.wait_for_timeout(100)


def click_point(page, x: int, y: int) -> None:
    """Press and release on the pad at knob position (x, y)."""
    box = page.locator("#field").bounding_box()
    page.mouse.click(box["x"] + x / 127 * box["width"], box["y"] + (1 - y / 127) * box["height"])


def shoot(page, out: Path) -> None:
    page.wait_for_timeout(300)  # the last state message and the dots' paint
    page.screenshot(path=str(out), type="jpeg", quality=JPEG_QUALITY)
    print(f"{out.relative_to(REPO) if out.is_relative_to(REPO) else out}: {out.stat().st_size // 1000} kB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the pictures go (default: docs)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).is_file():
        sys.exit(f"{CHROMIUM} not found (Debian package chromium)")
    if shutil.which("jackd") is None:
        sys.exit("jackd not found: the instrument's page needs an audio server (Debian package jackd2)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    python = [sys.executable, "-m", "instrument.app.cli"]
    jackd = run = serve = None
    with tempfile.TemporaryDirectory(prefix="latent-snare-screenshots-") as tmp:
        tmp = Path(tmp)
        config = tmp / "config.yaml"
        config.write_text(f"midi:\n  inputs: []\nsave:\n  folder: {tmp / 'saved'}\n  drop_folder: ''\n")
        base = {k: v for k, v in os.environ.items() if not k.startswith("JACK")}
        base.update(PYTHONUNBUFFERED="1", XDG_RUNTIME_DIR=str(tmp), XDG_CONFIG_HOME=str(tmp))
        try:
            jackd = start_jackd(name=JACK_SERVER, realtime=False)
            run, run_url = start(
                [*python, "run", "--midi-api", "jack", "--audio-device", "JACK", "--no-status", "--web-port", "0"]
                + ["--config", str(config)],
                dict(base, JACK_DEFAULT_SERVER=JACK_SERVER),
                tmp / "run.log",
                re.compile(r"ready:.*page: (\S+);"),
            )
            serve, serve_url = start(
                [*python, "serve", "--port", "0", "--workers", "1"],
                base,
                tmp / "serve.log",
                re.compile(r"(http://\S+/)"),
            )
            with sync_playwright() as p:
                browser = launch(p, autoplay=True)
                page = browser.new_page(viewport=VIEWPORT)
                page.goto(run_url)
                wait_js(page, "document.querySelector('#link.on') && document.querySelector('#map').naturalWidth > 0")
                wait_js(page, "document.querySelectorAll('.landmark').length > 0")
                click_point(page, *POINT)
                wait_js(page, f"document.body.dataset.cc === '{POINT[0]},{POINT[1]}'")
                shoot(page, args.out / "page-instrument.jpg")
                page.close()

                page = browser.new_page(viewport=VIEWPORT)
                page.goto(f"{serve_url}?x={POINT[0]}&y={POINT[1]}")
                wait_js(page, "!!document.body.dataset.ready && document.querySelector('#map').naturalWidth > 0")
                wait_js(
                    page, "document.querySelectorAll('.landmark').length > 0 && !!document.querySelector('#share span')"
                )
                shoot(page, args.out / "page-web.jpg")
                browser.close()
        finally:
            for proc in (serve, run, jackd):
                stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
