"""A cycle on its host, opened, started and stopped: the same code whether the cycle runs in the
audio process (rt/child.py, the default) or in the main process (`audio.separate_process: false`).
"""

from __future__ import annotations

import json
import os
import select
import sys
from dataclasses import asdict, dataclass

from ..errors import UserError
from . import jack as rt_jack
from . import portaudio
from .clib import available
from .cmixer import CMixer
from .cycle import WAKE_SERVER_GONE, JackCycle, PortAudioCycle
from .layout import SharedAudio


class ServerGone(Exception):
    """No server or device, or it went away: the main process waits for it to return."""


class WrongRate(Exception):
    """The server runs at another rate than the shared layout's."""


@dataclass(frozen=True)
class AudioHost:
    """Where a cycle plays: `backend` (jack or portaudio), its output `channels`, `target` (the
    JACK MIDI port's name, or the PortAudio device asked for) and PortAudio's `block_size`."""

    backend: str
    channels: int
    target: str
    block_size: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> AudioHost:
        return cls(**json.loads(text))


def warn(message: str) -> None:
    """A line on stderr, outside the cycle (the main process's log carries it)."""
    print(f"latent-snare: {message}", file=sys.stderr)


def c_mixer(shared: SharedAudio) -> CMixer | None:
    """The C cycle on the shared settings, or None (engine.py mixes) where it was not built."""
    why_not = available()
    if why_not is not None:
        warn(f"{why_not}; mixing in Python")
        return None
    return CMixer(shared.settings, shared)


class JackRun:
    """The cycle as a JACK client named CLIENT_NAME, with the MIDI input and the audio outputs."""

    def __init__(self, host: AudioHost, shared: SharedAudio):
        try:
            self.client = client = rt_jack.open_client()
        except rt_jack.NoServer as err:
            raise ServerGone(str(err)) from err
        if client.samplerate != shared.sample_rate:
            client.close()
            raise WrongRate(f"the JACK server runs at {client.samplerate} Hz, not {shared.sample_rate} Hz")
        self.shared, self.lost = shared, False
        midi_in = client.midi_inports.register(host.target or "in")
        outs = [client.outports.register(f"out_{i}") for i in range(host.channels)]
        self.cycle = JackCycle(client, midi_in, outs, shared, c_mixer(shared))
        if self.cycle.mixer is not None:
            try:
                addresses = [rt_jack.address(port) for port in outs]
                self.cycle.mixer.attach_jack(
                    rt_jack.address(client), rt_jack.address(midi_in), addresses, rt_jack.libjack_name()
                )
            except RuntimeError as err:
                warn(f"{err}; mixing in Python")
                self.cycle.use_mixer(None)
        if self.cycle.mixer is None:
            client.set_process_callback(self.cycle.process)
        # No xrun callback: it would run Python on libjack's notification thread, which is not
        # real-time, and the process thread would wait for the GIL whenever a busy machine
        # preempted that thread while it held it, right as xruns come. The main process counts
        # the server's xruns (host/jack_output.py); only the shutdown callback runs here, once.
        client.set_shutdown_callback(self._shutdown)
        self.wake_r, self.wake_w = self.cycle.wake_r, self.cycle.wake_w

    def _shutdown(self, _status, _reason: str) -> None:
        self.lost = True
        os.write(self.wake_w, WAKE_SERVER_GONE)

    def start(self) -> None:
        self.client.activate()
        rt_jack.connect_speakers(self.client, self.cycle.outs, warn)
        self.shared.stats.realtime = int(self.client.realtime)

    def server_gone(self) -> bool:
        return self.lost

    def stop(self) -> None:
        """Idempotent; after the server went away only the client's memory is released."""
        if self.client is None:
            return
        if not self.lost:
            self.client.deactivate()
        self.client.close()
        self.client = None
        self.cycle.close()


class PortAudioRun:
    """The cycle as sounddevice's stream callback."""

    def __init__(self, host: AudioHost, shared: SharedAudio):
        portaudio.name_jack_client()
        self.shared = shared
        try:
            device = portaudio.find_output_device(host.target)
            if portaudio.device_rate(device) != shared.sample_rate:
                raise WrongRate(
                    f"the audio device runs at {portaudio.device_rate(device)} Hz, not {shared.sample_rate}"
                )
            self.cycle = PortAudioCycle(shared, c_mixer(shared))
            self.stream = portaudio.open_stream(
                device, shared.sample_rate, host.block_size, host.channels, self.cycle.callback
            )
        except UserError as err:
            raise ServerGone(str(err)) from err
        self.wake_r, self.wake_w = self.cycle.wake_r, self.cycle.wake_w

    def start(self) -> None:
        self.stream.start()

    def server_gone(self) -> bool:
        return not self.stream.active

    def stop(self) -> None:
        """Idempotent. A stream whose device went away is left as it is: stopping or closing it
        can wait forever (PortAudio 19.6's JACK host API waits for a callback that never comes)."""
        if self.stream is None:
            return
        if not self.server_gone():
            self.stream.stop()
            self.stream.close()
        self.stream = None


def open_run(host: AudioHost, shared: SharedAudio) -> JackRun | PortAudioRun:
    """The cycle for `host` on `shared`, not started yet. Raises ServerGone or WrongRate."""
    return (JackRun if host.backend == "jack" else PortAudioRun)(host, shared)


def wait(run: JackRun | PortAudioRun, pipe: int, poll_s: float) -> bytes | None:
    """Until `pipe` closes (the main process went away), a wake byte arrives, or the server goes:
    returns the wake byte, WAKE_SERVER_GONE, or None for the pipe."""
    while not (woken := select.select([pipe, run.wake_r], [], [], poll_s)[0]):
        if run.server_gone():
            return WAKE_SERVER_GONE
    return os.read(run.wake_r, 1) if run.wake_r in woken else None
