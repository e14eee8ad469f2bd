"""`latent-snare devices`: what can be chosen, by name."""

from __future__ import annotations

from .audio import output_devices
from .errors import UserError
from .midi import MidiPorts, resolve_api


def print_devices(midi_api: str) -> None:
    print("Audio outputs (choose with --audio-device NAME or audio.device):")
    for index, name, api in output_devices() or []:
        print(f"  {name}  [{api}]")
    if not output_devices():
        print("  (none found)")
    print(f"MIDI inputs via {resolve_api(midi_api)} (choose with midi.inputs patterns):")
    try:
        names = MidiPorts(_NoVirtual(midi_api), handler=None).available()
    except UserError as err:
        print(f"  ({err})")
        return
    for name in names:
        print(f"  {name}")
    if not names:
        print("  (none found)")


class _NoVirtual:
    """The bits of MidiConfig that listing needs."""

    def __init__(self, api: str):
        self.api = api
