"""Hardware MIDI inputs on the JACK output: connected to the cycle's own MIDI input by name."""

from __future__ import annotations

import logging
import threading

from .jack_output import JackOutput
from .midi import choose_jack_inputs

log = logging.getLogger(__name__)


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
