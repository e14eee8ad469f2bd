"""`latent-snare devices`: what can be chosen, by name."""

from __future__ import annotations

from ..play.backends.portaudio import output_devices
from ..play.midi import input_names, resolve_api


def print_devices(midi_api: str) -> None:
    import soundfile

    # The file parser's version matters when a crafted file is reported against it.
    print(f"libsndfile {soundfile.__libsndfile_version__} (reads dropped and uploaded files, in a child process)")
    outputs = output_devices()
    print("Audio outputs (choose with --audio-device NAME or audio.device):")
    for _, name, api in outputs:
        print(f"  {name}  [{api}]")
    if not outputs:
        print("  (none found)")
    print(f"MIDI inputs via {resolve_api(midi_api)} (choose with midi.inputs patterns):")
    try:
        names = input_names(midi_api)
    except Exception as err:  # the MIDI API is missing here: say so instead of listing
        print(f"  (not available: {err})")
        return
    for name in names:
        print(f"  {name}")
    if not names:
        print("  (none found)")
