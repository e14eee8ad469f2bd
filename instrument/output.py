"""Choosing the audio output: JACK's own client, or PortAudio.

Each backend is imported only when chosen: importing sounddevice starts PortAudio,
whose JACK host API would open a JACK client of its own for nothing.
"""

from __future__ import annotations


def open_output(audio, midi_port: str):
    """The output for config `audio`: JACK's own client (notes read in the audio cycle), or PortAudio.
    Opened before the engine exists, which takes its rate; `attach` the engine before `start`."""
    from .jackio import JackOutput, jack_server_running

    backend = audio.backend
    if backend == "auto":
        wants_jack = not audio.device or "jack" in audio.device.lower()
        backend = "jack" if wants_jack and jack_server_running() else "portaudio"
    if backend == "jack":
        return JackOutput(audio.channels, midi_port)
    from .audio import AudioOutput, find_output_device, name_jack_client

    device = find_output_device(audio.device)
    name_jack_client()
    return AudioOutput(device, audio.block_size, audio.channels)
