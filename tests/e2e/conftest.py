"""Fixtures for the end-to-end tests: a private JACK dummy server, the running service, the rig."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from .. import chromium
from ..jackrig import Rig, ServiceProcess, start_jackd, stop_leftovers, stop_process

ARTIFACTS = Path(os.environ.get("LATENT_SNARE_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def _require(binary: str, package: str) -> None:
    if shutil.which(binary) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is missing in CI: .ci/run must install {package}")
        pytest.skip(f"{binary} not installed (apt-get install {package})")


@pytest.fixture(scope="session")
def jack_server():
    _require("jackd", "jackd2")
    pytest.importorskip("jack", reason="JACK-Client (pip install -e .[test])")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    os.environ["LATENT_SNARE_ARTIFACTS"] = str(ARTIFACTS)
    stop_leftovers()  # an earlier run that crashed may have left its servers and instruments behind
    proc = start_jackd()
    yield proc
    stop_process(proc)


@pytest.fixture(scope="module")
def user_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    return {"save": root / "saved", "drop": root / "drop"}


def start_service(tmp_path_factory, user_folders, backend: str) -> ServiceProcess:
    # Only the virtual port: the rig's own MIDI output must not also arrive as a "hardware" input.
    # Saves and drops go to this test's folders, never the user's ~/Music.
    config = tmp_path_factory.mktemp("config") / "virtual-only.yaml"
    config.write_text(
        f"midi:\n  inputs: []\nsave:\n  folder: {user_folders['save']}\n  drop_folder: {user_folders['drop']}\n"
    )
    return ServiceProcess(
        ["--config", str(config), "--audio-backend", backend], log_path=ARTIFACTS / f"service-{backend}.log"
    )


@pytest.fixture(scope="module")
def service(jack_server, tmp_path_factory, user_folders):
    svc = start_service(tmp_path_factory, user_folders, "jack")
    yield svc
    assert svc.stop() == 0, f"service did not stop cleanly: {svc.log_path.read_text()[-1000:]}"


@pytest.fixture(scope="module")
def rig(service):
    r = Rig(audio_sources=(service.audio_source,))
    yield r
    r.close()


def autoplay_browser():
    """Chromium whose pages play sound without a tap, for a module fixture to `yield from`."""
    _require("chromium", "chromium")
    pytest.importorskip("playwright.sync_api", reason="playwright (pip install -e .[test])")
    with chromium.browser(autoplay=True) as opened:
        yield opened
