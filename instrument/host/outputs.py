"""The output for the config: where the engine's blocks leave the instrument.

Two outputs, one interface (`jack_output.JackOutput`, `portaudio_output.PortAudioOutput`, both
`cycle_output.CycleOutput`s whose cycle runs in an audio process of its own, or in this one
with `audio.separate_process: false`):

- `backend` (its name), `sample_rate`, `block_size`, `own_xruns` (the xruns that were ours:
  with JACK, cycles that finished after the period's end or never ran; with PortAudio, the
  stream's underflows), `server_xruns` (every xrun the server announced, whichever client was
  late), `realtime` (whether the server runs real-time; None where unknown), `callback_errors`,
  `restarts`, `audio_pid` and `server_lost` (True once its server or device went away: the
  service then opens a new output when it is back);
- `attach(link, router)` with the EngineLink (host/link.py) built for its `sample_rate`, then
  `start()`, then `close()` (idempotent).

The MIDI inputs are `jack_ports.JackPorts` on JACK and the rtmidi `midi.MidiPorts` elsewhere.
"""

from __future__ import annotations

import subprocess
import sys

from ..errors import UserError
from ..rt import jack as rt_jack
from .jack_output import JackOutput
from .portaudio_output import PortAudioOutput


def open_output(audio, midi_port: str) -> JackOutput | PortAudioOutput:
    """The output for config `audio`: JACK (notes read in the audio cycle), or PortAudio.
    Opened before the engine's link exists, which takes its rate; `attach` it before `start`."""
    backend = audio.backend
    if backend == "auto":
        wants_jack = not audio.device or "jack" in audio.device.lower()
        backend = "jack" if wants_jack and rt_jack.server_running() else "portaudio"
        if backend == "portaudio" and wants_jack and rt_jack.pipewire_runs() and not rt_jack.pipewire_libjack():
            output = PortAudioOutput(audio.device, audio.block_size, audio.channels, audio.separate_process)
            output.advice = rt_jack.PORTAUDIO_ON_PIPEWIRE
            return output
    if backend == "jack":
        return JackOutput(audio.channels, midi_port, audio.separate_process)
    return PortAudioOutput(audio.device, audio.block_size, audio.channels, audio.separate_process)


# A server that stopped answering hangs any client that opens on it (libjack waits for its reply
# forever), so after a silent loss the question is asked in a child that is killed if it hangs.
PROBE_TIMEOUT_S = 2.0
PROBE = """import sys
from instrument.host.outputs import answers_here
sys.exit(0 if answers_here(sys.argv[1], sys.argv[2]) else 1)"""


def answers_here(backend: str, device: str) -> bool:
    """Whether a server (JACK) or the device (PortAudio) answers, asked from this process."""
    if backend == "jack":
        return rt_jack.server_running()
    from ..rt.portaudio import query_device

    try:
        query_device(device)
        return True
    except UserError:
        return False


def server_answers(backend: str, device: str) -> bool:
    """answers_here, asked from a child process that is killed after PROBE_TIMEOUT_S."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, backend, device],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0
