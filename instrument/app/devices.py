"""`latent-snare devices`: what can be chosen, by name."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from ..host.midi import input_names, resolve_api
from ..rt.portaudio import output_devices


@contextmanager
def c_stderr_silenced():
    """Mute what C libraries print on fd 2 (libjack's "cannot connect to server", ALSA's missing
    /dev/snd/seq) while probing: the listing below says what is missing, in one line each."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def print_devices(midi_api: str) -> None:
    with c_stderr_silenced():
        api = resolve_api(midi_api)  # a wrong --midi-api is told before anything is listed
    with c_stderr_silenced():
        outputs = output_devices()
    print("Audio outputs (choose with --audio-device NAME or audio.device):")
    for _, name, api in outputs:
        print(f"  {name}  [{api}]")
    if not outputs:
        print("  (none found: no sound card, and no JACK or PulseAudio/PipeWire server running)")
    print(f"MIDI inputs via {api} (choose with midi.inputs patterns):")
    try:
        with c_stderr_silenced():
            names = input_names(midi_api)
    except Exception as err:  # the MIDI API is missing here: say so instead of listing
        hint = "; no ALSA sequencer (/dev/snd/seq): start JACK and use --midi-api jack" if "ALSA" in api else ""
        print(f"  (not available: {str(err).strip().rstrip('.')}{hint})")
        return
    for name in names:
        print(f"  {name}")
    if not names:
        print("  (none found)")
