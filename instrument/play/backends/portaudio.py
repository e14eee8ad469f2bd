"""The PortAudio backend: a sounddevice output stream that asks the engine for each block.

By default the stream runs in the audio process (`process.PortAudioProcessOutput`,
play/audioproc.py); `AudioOutput` here runs it in this process (`audio.separate_process:
false`). Either callback keeps the contract in `backends/__init__.py`; it also counts the
stream's underflows. MIDI reaches the engine from rtmidi's threads
(`play.midi.MidiPorts`), so a note sounds one block after it arrives.
"""

from __future__ import annotations

import ctypes

import sounddevice as sd

from ...errors import UserError
from . import CLIENT_NAME, RendersHere, render_period

JACK_CLIENT_NAME = f"{CLIENT_NAME}-audio".encode()  # PortAudio keeps the pointer: module-level, lives forever


def name_jack_client() -> None:
    """Give PortAudio's JACK client our name (so jackd's xrun log names us); must precede its init."""
    try:
        lib = ctypes.CDLL(sd._libname)
        setter = lib.PaJack_SetClientName
    except (OSError, AttributeError):
        return  # a PortAudio without JACK support: nothing to name
    sd._terminate()
    setter.argtypes = [ctypes.c_char_p]
    setter(ctypes.c_char_p(JACK_CLIENT_NAME))  # PortAudio keeps the pointer: the constant lives forever
    sd._initialize()


def output_devices() -> list[tuple[int, str, str]]:
    """(index, device name, host API name) of every device with outputs."""
    apis = sd.query_hostapis()
    return [
        (d["index"], d["name"], apis[d["hostapi"]]["name"]) for d in sd.query_devices() if d["max_output_channels"] > 0
    ]


def device_rate(device: int | None) -> int:
    info = sd.query_devices(device if device is not None else sd.default.device[1], "output")
    return int(info["default_samplerate"])


def query_device(name: str) -> tuple[int | None, int]:
    """(index, sample rate) of the output `name` picks, asked of a PortAudio started for the
    question and terminated after it: one left running here would keep a JACK client that,
    once its server dies, PortAudio can neither close nor replace (the audio process has its own)."""
    while sd._initialized:  # one started earlier (importing sounddevice starts one) may predate the server
        sd._terminate()
    sd._initialize()
    try:
        device = find_output_device(name)
        return device, device_rate(device)
    finally:
        sd._terminate()


def find_output_device(name: str) -> int | None:
    """Device index whose name (or 'host API' name) contains `name`; None for the default."""
    devices = output_devices()
    if not devices:
        raise UserError(
            "no audio output device found (on Linux, start JACK or PulseAudio/PipeWire); "
            "`latent-snare devices` lists what exists"
        )
    if not name:
        return None
    matches = [i for i, dev, api in devices if name.lower() in dev.lower() or name.lower() in api.lower()]
    if not matches:
        known = "; ".join(f"{dev!r} ({api})" for _, dev, api in devices)
        raise UserError(f"audio device {name!r} not found; outputs: {known}")
    return matches[0]


class AudioOutput(RendersHere):
    backend = "portaudio"
    server_lost = False  # PortAudio reports no server loss; the JACK backend sets its own
    realtime = None  # PortAudio does not say

    @property
    def server_xruns(self) -> int:
        return self.underflows  # the stream's underflows are all PortAudio tells

    def __init__(self, device: int | None, block_size: int, channels: int):
        self.engine = None
        self.underflows = 0
        self.callback_errors = 0
        self.channels = channels
        self.block_size = block_size
        self.sample_rate = sample_rate = device_rate(device)
        try:
            self.stream = sd.OutputStream(
                device=device,
                samplerate=sample_rate,
                blocksize=block_size,
                channels=channels,
                dtype="float32",
                latency="low",
                callback=self._callback,
            )
        except sd.PortAudioError as err:
            raise UserError(f"cannot open audio device {device if device is not None else 'default'}: {err}") from err

    def attach(self, engine, _router) -> None:
        self.engine = engine

    def _callback(self, outdata, frames, time_info, status) -> None:
        try:
            if status.output_underflow:
                self.underflows += 1
            render_period(self.engine, outdata.T, frames)  # outdata.T: one view per channel, written in place
        except Exception:
            outdata.fill(0)
            self.callback_errors += 1

    def start(self) -> None:
        self.stream.start()

    def close(self) -> None:
        try:
            self.stream.stop()
        finally:
            self.stream.close()
