"""Shared fixtures: synthetic snare-like files written by the tests themselves."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from .jackrig import SERVER_NAME

# The suite runs its own JACK servers and never touches the user's. Set before any test module
# is collected: PortAudio, started by importing sounddevice, opens a JACK client on the default
# server, and libjack serves one server per process, so a developer's own running jackd would
# otherwise take this process's JACK clients (the rig's ports broke, and pytest crashed).
os.environ["JACK_DEFAULT_SERVER"] = SERVER_NAME


def synth_snare(
    rate: int, seconds: float, tone_hz: float, decay_s: float, noise: float, seed: int, lead_s: float = 0.02
) -> np.ndarray:
    """A drum-like hit: a decaying tone plus decaying noise, after a stretch of silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    env = np.exp(-t / decay_s)
    hit = (1 - noise) * np.sin(2 * np.pi * tone_hz * t) * env + noise * rng.standard_normal(t.size) * env**1.5
    return np.concatenate([np.zeros(int(lead_s * rate)), hit]).astype(np.float32)


@pytest.fixture
def snare_folder(tmp_path):
    """Three 'kits' of four snares each, at mixed rates, channel counts and formats."""
    root = tmp_path / "snares"
    formats = [("WAV", "PCM_16", ".wav"), ("FLAC", "PCM_24", ".flac"), ("AIFF", "PCM_16", ".aiff")]
    for k, (fmt, subtype, suffix) in enumerate(formats):
        kit = root / f"kit{k}"
        kit.mkdir(parents=True)
        for i in range(4):
            rate = (22050, 44100, 48000)[(i + k) % 3]
            wave = synth_snare(rate, 0.5, 150 + 60 * i + 20 * k, 0.05 + 0.04 * i, 0.3 + 0.15 * k, seed=10 * k + i)
            data = np.stack([wave, wave * 0.5], axis=1) if i % 2 else wave
            sf.write(kit / f"hit{i}{suffix}", data, rate, format=fmt, subtype=subtype)
    return root


@pytest.fixture(autouse=True, scope="session")
def isolated_user_files(tmp_path_factory):
    """No test reads or writes the real user's learned config, saved snares or control socket
    (the e2e services inherit this environment)."""
    import os

    home = tmp_path_factory.mktemp("user")
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")}
    os.environ["XDG_CONFIG_HOME"] = str(home / "config")
    os.environ["XDG_RUNTIME_DIR"] = str(home / "run")
    (home / "run").mkdir()
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
