"""Listening helpers for the end-to-end tests: play a hit through the rig, and compare it with
what the model should have made, rendered offline."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from instrument.config import load_config
from instrument.core.dsp import finish_snare, velocity_to_gain
from instrument.core.kit import VELOCITY_LAYERS, layer_of_velocity
from instrument.model.architecture import ModelConfig
from instrument.model.file import load_model, save_model
from instrument.model.knobs import KnobMap

from ..jackrig import first_sound, service_state

CONFIG = load_config()
CC_X, CC_Y = CONFIG.midi.cc_x, CONFIG.midi.cc_y
RING_OUT_S = 1.6  # longer than any snare (1.49 s), so hits never overlap between checks
ATTACK_SAMPLES = 4096  # 85 ms: the part of a snare that tells snares apart, and most of its energy
ARRIVAL_S = 1.0  # state MIDI not shown by then is sent again (it is idempotent)
HANG_S = 30.0  # a guard against a hung service only: waits end on facts, not on time


def recorded_hit(rig, frame, seconds=RING_OUT_S):
    """(latency in frames, the recording from the first sample heard after server frame `frame` up
    to the first xrun the rig saw after it, if any), or None if nothing was heard. A missed cycle
    shifts what follows it, so that part is left out of every comparison."""
    n_frames = int(seconds * rig.rate)
    audio = rig.audio(frame, n_frames)
    start = first_sound(audio)
    if start is None:
        return None
    return start, audio[start : start + rig.xrun_free(frame + start, n_frames - start)]


def hit(rig, velocity=127, seconds=RING_OUT_S):
    """Play one note, return (latency in frames, the recorded hit aligned to its first sample, cut at any xrun)."""
    heard = recorded_hit(rig, rig.note(38, velocity), seconds)
    assert heard is not None, "no sound after note-on"
    return heard


def expected_snare(rate, cc_x, cc_y, velocity=127, model=None):
    model = model or load_model(None, CONFIG.model)
    return rendered(rate, model, model.knobs.cc_to_latent(cc_x, cc_y), velocity)


def rendered(rate, model, latent, velocity=127, variant=0):
    """What the instrument should play for `latent` of `model`, rendered offline at the device rate:
    the velocity layer nearest `velocity` (where the model has them), at `velocity`'s level."""
    layer = VELOCITY_LAYERS[layer_of_velocity()[velocity]] if model.plays_velocity else 127
    wave = finish_snare(model.decode(latent, layer, variant), model.sample_rate, rate)
    return wave * velocity_to_gain(velocity, CONFIG.voices.velocity_range_db)


def similarity(recorded, reference):
    n = min(recorded.size, reference.size, ATTACK_SAMPLES)
    a, b = recorded[:n], reference[:n]
    # Best normalized correlation over a few samples of onset misalignment (the threshold cuts the first sample).
    return max(float(np.dot(np.roll(a, k), b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)) for k in range(-4, 5))


def server_xruns() -> int:
    """The xruns the service has seen so far (its own_xruns)."""
    return service_state()["own_xruns"]


def wait_state(shown, what: str, timeout_s: float = HANG_S) -> dict:
    """Poll the service's JSON state until `shown(state)` holds; returns that state."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = service_state()
        if shown(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"the service never showed {what}; its state: {state}")
        time.sleep(0.02)


def send_state(rig, messages, arrived, attempts=3):
    """Send state-setting MIDI (idempotent: CCs, program changes) until the service's state shows
    it arrived. On the noisy 2-core machine the dummy driver xruns, and JACK MIDI sent in an xrun
    cycle can be lost for every client (docs/limitations.md); a DAW's chase resends state the same way."""
    for _ in range(attempts):
        rig.send(*messages)
        try:
            wait_state(arrived, f"{messages} arriving", ARRIVAL_S)
            return
        except AssertionError:
            continue
    wait_state(arrived, f"{messages} arriving")


def press(rig, message, counted: str):
    """Press a button once (each press acts: it is no state to resend) and wait until the service
    counted it in `counted`. Sent again only if the service never heard it and the rig saw an
    xrun meanwhile: JACK MIDI sent in an xrun cycle is lost for every client (docs/limitations.md)."""
    before, xruns = service_state()[counted], rig.xruns
    rig.send(message)
    try:
        wait_state(lambda s: s[counted] > before, f"a press counted in {counted}", ARRIVAL_S)
    except AssertionError:
        assert rig.xruns > xruns, f"the service did not count the press in {counted}, and no xrun lost it"
        rig.send(message)
        wait_state(lambda s: s[counted] > before, f"a press counted in {counted}")


def set_knobs(rig, x, y, kit=None):
    """Turn the knobs and wait until the service plays that position's snare: its state shows the
    knob position that sounds, published only after the decode (however long a loaded machine takes).
    `kit` (layers, round robins): wait for the whole kit too, not only the hard hit that comes first."""
    send_state(
        rig,
        [[0xB0, CC_X, x], [0xB0, CC_Y, y]],
        lambda state: state["cc"] == [x, y] and (kit is None or state["kit"] == list(kit)),
    )


def matches(recorded, right, wrong) -> bool:
    """Closer to the right snare than to the wrong one by a clear margin (an underflow dropout on
    a loaded machine lowers both similarities alike, so this stays meaningful under load)."""
    s_right, s_wrong = similarity(recorded, right), similarity(recorded, wrong)
    return s_right > 0.5 and s_right > s_wrong + 0.3


def assert_matches(recorded, right, wrong):
    assert matches(recorded, right, wrong), (
        f"similarity to the right snare {similarity(recorded, right):.2f}, to the wrong one {similarity(recorded, wrong):.2f}"
        f" over {min(recorded.size, ATTACK_SAMPLES)} xrun-free samples"
    )


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
    save_model(
        path,
        tensors,
        {"name": path.stem, "architecture": config.to_dict(), "sample_rate": 44100, "knobs": knobs.to_dict()},
    )
    return path.with_suffix(".safetensors")


def centroid_octaves(wave, rate, seconds=0.1) -> float:
    """The power spectral centroid of the first `seconds`, in octaves (log2 Hz): brightness."""
    power = np.abs(np.fft.rfft(wave[: int(seconds * rate)] * np.hanning(int(seconds * rate)))) ** 2
    freqs = np.fft.rfftfreq(int(seconds * rate), 1 / rate)
    return float(np.log2(np.sum(freqs * power) / np.sum(power)))
