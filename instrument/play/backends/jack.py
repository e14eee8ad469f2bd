"""The JACK backend: the virtual MIDI input and the audio outputs as one JACK client.

With PortAudio, a note crosses rtmidi's thread and reaches the engine after the
audio cycle it arrived in has been rendered: it always sounds one period late.
Here the process callback reads the MIDI that arrived in this very cycle and
starts each note at its own frame offset in the block it renders, as FluidSynth
does. Only trigger notes and clock take this path (`MidiRouter.handle_in_cycle`,
lock-free); knobs, buttons and program changes are queued for the `midi-in`
thread, which runs the router's full logic off the audio thread.

The callback keeps the contract in `backends/__init__.py`: it only mixes; any
exception becomes a silent block and a counter. SysEx never enters it (longer than 3
bytes: skipped unread). The callback counts its own lateness (`underflows`); every
client's xruns (`server_xruns`) and the server going away are counted and flagged
from JACK's notification thread. `audio.separate_process: true` (the default) runs
this same cycle in a process of its own instead (jackproc.py).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from ...errors import UserError
from . import CLIENT_NAME, RendersHere, render_period

log = logging.getLogger(__name__)

INBOX_SIZE = 4096  # messages waiting for the MIDI thread; a flood beyond this drops the oldest, never blocks
INBOX_POLL_S = 0.002  # the MIDI thread's wake-up: knob moves reach the decoder within 2 ms


def jack_server_running() -> bool:
    try:
        import jack
    except OSError:  # no libjack
        return False
    # A missing server is an answer here, not an error: keep libjack's complaints off the terminal.
    jack.set_error_function(lambda _msg: None)
    jack.set_info_function(lambda _msg: None)
    try:
        jack.Client(f"{CLIENT_NAME}-probe", no_start_server=True).close()
        return True
    except jack.JackOpenError:
        return False
    finally:
        jack.set_error_function(None)  # back to libjack's defaults, for a server that is really there
        jack.set_info_function(None)


class JackOutput(RendersHere):
    """Opened first (the server's rate and period shape the engine), then `attach`ed, then started."""

    backend = "jack"

    def __init__(self, channels: int, midi_port: str):
        import jack

        self.engine = self.router = None
        self.underflows = 0  # our own xruns: cycles the callback finished after the period's end
        self.server_xruns = 0  # every xrun the server reported, whichever client was late
        self.callback_errors = 0
        self.server_lost = False  # set when jackd shuts down or kicks us out
        try:
            self.client = jack.Client(CLIENT_NAME, no_start_server=True)
        except jack.JackOpenError as err:
            raise UserError("no JACK server answers: start jackd (or choose audio.backend: portaudio)") from err
        self.realtime = self.client.realtime
        self.sample_rate = self.client.samplerate
        self.block_size = self.client.blocksize
        # One MIDI input for the DAW (the virtual port) and for hardware ports connected to it by JackPorts.
        self.midi_in = self.client.midi_inports.register(midi_port or "in")
        self.outs = [self.client.outports.register(f"out_{i}") for i in range(channels)]
        self.inbox: deque = deque(maxlen=INBOX_SIZE)  # raw messages for the router, written by the callback only
        self.client.set_process_callback(self._process)
        self.client.set_xrun_callback(self._xrun)
        self.client.set_shutdown_callback(self._shutdown)
        self._stop = threading.Event()
        self._midi_thread = threading.Thread(target=self._drain_inbox, name="midi-in", daemon=True)

    def attach(self, engine, router) -> None:
        self.engine, self.router = engine, router

    # --- JACK's real-time thread -------------------------------------------------------------------

    def _process(self, frames: int) -> None:
        try:
            for offset, data in self.midi_in.incoming_midi_events():
                if 0 < len(data) <= 3:  # SysEx is never copied on this thread
                    data = bytes(data)
                    if not self.router.handle_in_cycle(data, offset):
                        self.inbox.append(data)
            render_period(self.engine, [port.get_array() for port in self.outs], frames)
        except Exception:
            for port in self.outs:
                port.get_array().fill(0)
            self.callback_errors += 1
        if self.client.frames_since_cycle_start > frames:  # finished after the period's end: this xrun is ours
            self.underflows += 1

    # --- JACK's notification thread ------------------------------------------------------------

    def _xrun(self, _delay_us: float) -> None:
        self.server_xruns += 1

    def _shutdown(self, _status, _reason: str) -> None:
        self.server_lost = True

    # --- the MIDI thread ---------------------------------------------------------------------------

    def _drain_inbox(self) -> None:
        while not self._stop.wait(INBOX_POLL_S):
            while self.inbox:
                self.router.handle_bytes(self.inbox.popleft())

    # --- lifetime ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.client.activate()
        self._midi_thread.start()
        # Like PortAudio, play out of the machine's speakers; the first outputs go to the first speakers.
        speakers = self.client.get_ports(is_physical=True, is_input=True, is_audio=True)
        for i, speaker in enumerate(speakers[: max(2, len(self.outs))]):
            try:
                self.client.connect(self.outs[i % len(self.outs)], speaker)
            except Exception as err:
                log.warning("could not connect %s to %s: %s", self.outs[i % len(self.outs)].name, speaker.name, err)

    def close(self) -> None:
        """Idempotent: the service closes a client whose server died, and again at shutdown."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._midi_thread.is_alive():
            self._midi_thread.join(1.0)
        if not self.server_lost:
            self.client.deactivate()
        self.client.close()


class JackPorts:
    """Hardware MIDI inputs on the JACK backend: every hardware MIDI output (JACK's physical flag,
    or a2j's ALSA bridge) whose name matches `midi.inputs`, and every other program's output that
    `midi.software_inputs` names, is connected to the instrument's own MIDI input, so their notes
    are read in the audio cycle too. A DAW's other tracks and other synths are never connected
    unless named. Not rtmidi: its JACK calls hold the GIL while the server waits for our
    process callback, which needs the GIL (a deadlock that kicked the client out). JACK-Client's
    calls release it. Rescanned every `reconnect_s`; an unplugged port's connection goes with it."""

    def __init__(self, config, output: JackOutput):
        self.config = config
        self.output = output
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rescan_loop, name="midi-rescan", daemon=True)

    def open(self) -> JackPorts:
        self._thread.start()
        return self

    def rescan(self) -> None:
        from ..midi import choose_jack_inputs

        client, port = self.output.client, self.output.midi_in
        if self.output.server_lost or not (self.config.inputs or self.config.software_inputs):
            return
        try:
            ports = [
                (p.name, p.is_physical)
                for p in client.get_ports(is_midi=True, is_output=True)
                if not p.name.startswith(f"{client.name}:")
            ]
            connected = {p.name for p in client.get_all_connections(port)}
            for name in choose_jack_inputs(ports, self.config):
                if name not in connected:
                    client.connect(name, port)
                    log.info("MIDI input %r connected", name)
        except Exception as err:  # a port that vanished mid-scan, or the server going away
            log.warning("MIDI rescan: %s", err)

    def _rescan_loop(self) -> None:
        self.rescan()
        while not self._stop.wait(self.config.reconnect_s):
            self.rescan()

    def connected(self) -> list[str]:
        names = [self.config.virtual_port + " (virtual)"] if self.config.virtual_port else []
        try:
            return names + [p.name for p in self.output.client.get_all_connections(self.output.midi_in)]
        except Exception:
            return names

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
