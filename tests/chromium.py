"""Debian's Chromium driven by Playwright, as every page test, benchmark and screenshot runs it.
Never `playwright install`: it downloads a browser, which this project must not need."""

from __future__ import annotations

import contextlib

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"  # headless Chromium has no user to tap Hit


def launch(playwright, autoplay: bool = False):
    """A headless browser; `autoplay`: the pages' AudioContexts run without a gesture."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + ([AUTOPLAY] if autoplay else []))


@contextlib.contextmanager
def browser(autoplay: bool = False):
    """A headless browser for the length of a `with` block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        opened = launch(p, autoplay)
        try:
            yield opened
        finally:
            opened.close()
