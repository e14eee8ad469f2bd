"""The PortAudio output (host/cycle_output.py).

In the audio process, its server or device going away ends that process (a stream PortAudio
cannot stop is left behind with it), and the service reopens once the device is back;
PortAudio is initialised afresh in each audio process, which is what lets it see a restarted
JACK server. MIDI stays rtmidi's, in this process (host/midi.py `MidiPorts`): a note sounds
one block after it arrives.
"""

from __future__ import annotations

from ..rt.portaudio import query_device
from .cycle_output import CycleOutput


class PortAudioOutput(CycleOutput):
    backend = "portaudio"
    realtime = None  # PortAudio does not say

    def __init__(self, device_name: str, block_size: int, channels: int, separate_process: bool = True):
        _device, self.sample_rate = query_device(device_name)
        self.target, self.block_size, self.channels = device_name, block_size, channels
        super().__init__(separate_process)

    @property
    def server_xruns(self) -> int:
        return self.own_xruns  # the stream's underflows are all PortAudio tells
