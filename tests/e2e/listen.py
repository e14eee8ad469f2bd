"""Listening helpers for the end-to-end tests: play a hit through the rig, and compare it with
what the model should have made, rendered offline."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

import numpy as np

from instrument.model.architecture import ModelConfig
from instrument.config import load_config
from instrument.app.control import send_command
from instrument.play.dsp import finish_snare, velocity_to_gain
from instrument.model.knobs import KnobMap
from instrument.model.file import load_model, save_model

from .rig import first_sound

CONFIG = load_config()
CC_X, CC_Y = CONFIG.midi.cc_x, CONFIG.midi.cc_y
RING_OUT_S = 0.9  # longer than any snare (0.75 s), so hits never overlap between checks
DECODE_SETTLE_S = 0.3  # a decode takes under 1 ms idle; this leaves room for a loaded CI machine
ATTACK_SAMPLES = 4096  # 85 ms: the part of a snare that tells snares apart, and most of its energy


def hit(rig, velocity=127, seconds=RING_OUT_S):
    """Play one note, return (latency in frames, the recorded hit aligned to its first sample)."""
    sent = rig.note(38, velocity)
    audio = rig.audio(sent, int(seconds * rig.rate))
    start = first_sound(audio)
    assert start is not None, "no sound after note-on"
    return start, audio[start:]


def expected_snare(rate, cc_x, cc_y, velocity=127, model=None):
    model = model or load_model(None, CONFIG.model)
    return rendered(rate, model, model.knobs.cc_to_latent(cc_x, cc_y), velocity)


def rendered(rate, model, latent, velocity=127):
    """What the instrument should play for `latent` of `model`, rendered offline at the device rate."""
    wave = finish_snare(model.decode(latent), model.sample_rate, rate)
    return wave * velocity_to_gain(velocity, CONFIG.voices.velocity_range_db)


def similarity(recorded, reference):
    n = min(recorded.size, reference.size, ATTACK_SAMPLES)
    a, b = recorded[:n], reference[:n]
    # Best normalized correlation over a few samples of onset misalignment (the threshold cuts the first sample).
    return max(float(np.dot(np.roll(a, k), b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)) for k in range(-4, 5))


def server_xruns() -> int:
    """The xruns the service has seen so far (its status calls them underflows; on JACK, the server's)."""
    return int(re.search(r"underflows (\d+)", send_command("status")).group(1))


def service_inputs() -> list[str]:
    """The MIDI inputs the service reports connected (its virtual port included, when it has one)."""
    inputs = send_command("status").rsplit("MIDI: ", 1)[1]
    return [] if inputs == "none" else inputs.split(", ")


def send_state(rig, messages, arrived, attempts=3):
    """Send state-setting MIDI (idempotent: CCs, program changes) until the service's own status
    shows it arrived. On the noisy 2-core machine the dummy driver xruns, and JACK MIDI sent in an
    xrun cycle can be lost for every client (see the README); a DAW's chase resends state the same way."""
    for _ in range(attempts):
        rig.send(*messages)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if arrived(send_command("status")):
                return
            time.sleep(0.02)
    raise AssertionError(f"the service never showed {messages} arriving; status: {send_command('status')}")


def set_knobs(rig, x, y):
    """Turn the knobs and wait until the service plays that position's snare: with the default model
    its status shows the decoded point (on a loaded CI machine a decode can take longer than any
    fixed wait); with another model, a settle time."""
    send_state(rig, [[0xB0, CC_X, x], [0xB0, CC_Y, y]], lambda status: f"(CC {x:3d}, {y:3d})" in status)
    latent = _default_model().knobs.cc_to_latent(x, y)
    decoded = f"{CONFIG.model} x {latent[0]:+.3f} y {latent[1]:+.3f} "
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        status = send_command("status")
        if status.startswith(decoded) or not status.startswith(CONFIG.model + " "):
            break
        time.sleep(0.02)
    rig.wait_frames(int(DECODE_SETTLE_S * rig.rate))


@functools.cache
def _default_model():
    return load_model(None, CONFIG.model)


def matches(recorded, right, wrong) -> bool:
    """Closer to the right snare than to the wrong one by a clear margin (an underflow dropout on
    a loaded machine lowers both similarities alike, so this stays meaningful under load)."""
    s_right, s_wrong = similarity(recorded, right), similarity(recorded, wrong)
    return s_right > 0.5 and s_right > s_wrong + 0.3


def assert_matches(recorded, right, wrong):
    assert matches(recorded, right, wrong), \
        f"similarity to the right snare {similarity(recorded, right):.2f}, to the wrong one {similarity(recorded, wrong):.2f}"

def random_model(path: Path, seed: int) -> Path:
    """A small model with random weights: a second, clearly different model to switch to."""
    config = ModelConfig("small", "tanh", load_model(None, CONFIG.model).n_samples)
    rng = np.random.default_rng(seed)
    tensors = {}
    for part, widths in (("encoder", config.encoder_widths), ("decoder", config.decoder_widths)):
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            tensors[f"{part}.{i}.weight"] = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
            tensors[f"{part}.{i}.bias"] = np.zeros(n_out)
    knobs = KnobMap(np.eye(2), np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    save_model(path, tensors, {"name": path.stem, "architecture": config.to_dict(), "sample_rate": 44100, "knobs": knobs.to_dict()})
    return path.with_suffix(".safetensors")
