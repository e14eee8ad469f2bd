"""Audio backends: where the engine's blocks leave the process.

Two backends, one contract. Each output class (`jackproc.JackProcessOutput`, the
default on JACK, and `process.PortAudioProcessOutput`, the default elsewhere, whose audio
cycles run in a process of their own; with `audio.separate_process: false`,
`jack.JackOutput` and `portaudio.AudioOutput`, the same in this process) has:

- `backend` (its name), `sample_rate`, `block_size`, `underflows` (the xruns that
  were ours: with JACK, cycles our callback finished after the period's end, or, in the
  audio process, never ran; with PortAudio, the stream's underflows),
  `server_xruns` (every xrun the server announced, whichever client was late),
  `realtime` (whether the server runs real-time; None where unknown),
  `callback_errors` and `server_lost` (True once its server or device went away: the
  service then opens a new output when it is back);
- `new_engine(**settings)`: the engine to `attach`, with Engine's keyword arguments
  (an `Engine` here, or its `EngineLink` when the cycle runs in the audio process);
- `attach(engine, router)`, then `start()`, then `close()` (idempotent);
- a ports object for MIDI inputs (`JackPorts`, or the rtmidi `MidiPorts`) with
  `open()`, `connected()` and `close()`.

The audio callback contract (every backend's callback keeps it, as
python-sounddevice asks of its stream callbacks):

- it only mixes: `render_period()` below, into buffers that already exist;
- it never allocates an array, does I/O, logs, waits on a lock, or imports
  anything, and never calls torch; it reads MIDI only where the backend hands it
  over in the same cycle (JACK);
- it never raises: any exception becomes a silent period and a counter
  (`callback_errors`), because one exception escaping a sounddevice callback
  stops the stream for good, and one escaping a JACK callback drops the client;
- it writes into the host's buffers in place (`outdata[:] = ...`), never
  rebinding them.

Each backend module is imported only when chosen: importing sounddevice starts
PortAudio, whose JACK host API would open a JACK client of its own for nothing.
"""

from __future__ import annotations

CLIENT_NAME = "latent-snare"  # the JACK client name of everything this instrument opens (suffixed per role)


class RendersHere:
    """For a backend whose callback runs in this process: its engine is a plain Engine."""

    def new_engine(self, **settings):
        from ..engine import Engine

        return Engine(self.sample_rate, **settings)


def render_period(engine, channels, frames: int) -> None:
    """Fill `frames` samples of each array in `channels` (one per output channel) from the engine.
    A host period may be longer than the engine's largest block: render it in pieces."""
    done = 0
    while done < frames:
        n = min(frames - done, engine.max_block)
        block = engine.render(n)
        for out in channels:
            out[done : done + n] = block
        done += n


def open_output(audio, midi_port: str):
    """The output for config `audio`: JACK's own client (notes read in the audio cycle), or PortAudio;
    by default each runs its audio cycle in a process of its own (process.py).
    Opened before the engine exists, which takes its rate; `attach` the engine before `start`."""
    from .jack import JackOutput, jack_server_running

    backend = audio.backend
    if backend == "auto":
        wants_jack = not audio.device or "jack" in audio.device.lower()
        backend = "jack" if wants_jack and jack_server_running() else "portaudio"
    if backend == "jack" and audio.separate_process:
        from .jackproc import JackProcessOutput

        return JackProcessOutput(audio.channels, midi_port)
    if backend == "jack":
        return JackOutput(audio.channels, midi_port)
    if audio.separate_process:
        from .process import PortAudioProcessOutput

        return PortAudioProcessOutput(audio.device, audio.block_size, audio.channels)
    from .portaudio import AudioOutput, find_output_device, name_jack_client

    device = find_output_device(audio.device)
    name_jack_client()
    return AudioOutput(device, audio.block_size, audio.channels)
