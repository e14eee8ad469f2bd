"""PortAudio for both processes: the output devices, and the JACK client name PortAudio opens.

Importing sounddevice starts PortAudio, whose JACK host API opens a JACK client of its own, so
`sounddevice()` imports it on first use, not with this module: a JACK instrument never starts
PortAudio. `sd._terminate`,
`sd._initialize`, `sd._initialized` and `sd._libname` are sounddevice's private names (there is
no public way to restart PortAudio): pyproject.toml bounds its version for that.
"""

from __future__ import annotations

import ctypes

from ..core.names import CLIENT_NAME
from ..errors import UserError

JACK_CLIENT_NAME = f"{CLIENT_NAME}-audio".encode()  # PortAudio keeps the pointer: module-level, lives forever


def sounddevice():
    """The sounddevice module, imported (and PortAudio started) on first use."""
    import sounddevice

    return sounddevice


def name_jack_client() -> None:
    """Give PortAudio's JACK client our name (so jackd's xrun log names us); must precede its init."""
    sd = sounddevice()
    try:
        lib = ctypes.CDLL(sd._libname)
        setter = lib.PaJack_SetClientName
    except (OSError, AttributeError):
        return  # a PortAudio without JACK support: nothing to name
    while sd._initialized:  # the name is read when PortAudio starts: stop every start there was
        sd._terminate()
    setter.argtypes = [ctypes.c_char_p]
    setter(ctypes.c_char_p(JACK_CLIENT_NAME))
    sd._initialize()


def output_devices() -> list[tuple[int, str, str]]:
    """(index, device name, host API name) of every device with outputs."""
    sd = sounddevice()
    apis = sd.query_hostapis()
    return [
        (d["index"], d["name"], apis[d["hostapi"]]["name"]) for d in sd.query_devices() if d["max_output_channels"] > 0
    ]


def device_rate(device: int | None) -> int:
    sd = sounddevice()
    info = sd.query_devices(device if device is not None else sd.default.device[1], "output")
    return int(info["default_samplerate"])


def query_device(name: str) -> tuple[int | None, int]:
    """(index, sample rate) of the output `name` picks, asked of a PortAudio started for the
    question and terminated after it: one left running here would keep a JACK client that,
    once its server dies, PortAudio can neither close nor replace (the audio process has its own)."""
    sd = sounddevice()
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


def open_stream(device: int | None, sample_rate: int, block_size: int, channels: int, callback):
    """A float32 output stream with `callback`; UserError when the device refuses."""
    sd = sounddevice()
    try:
        return sd.OutputStream(
            device=device,
            samplerate=sample_rate,
            blocksize=block_size,
            channels=channels,
            dtype="float32",
            latency="low",
            callback=callback,
        )
    except sd.PortAudioError as err:
        raise UserError(f"cannot open audio device {device if device is not None else 'default'}: {err}") from err
