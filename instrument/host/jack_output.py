"""The JACK output (host/cycle_output.py).

The cycle owns the JACK client with the MIDI input and the audio outputs (rt/run.py), so notes
are read in the cycle they arrive in and started at their frame. This side keeps a JACK client
of its own without a process callback (it reads the server's rate and period, counts
the server's xruns, and connects hardware MIDI ports to the audio process's input), and its
`audio-watch` thread also hands the MIDI the cycle did not play to the router, and
notes the audio process's connections (a DAW's routing) to restore them after a crash.
"""

from __future__ import annotations

import logging
import time

from ..core.names import CLIENT_NAME
from ..errors import UserError
from ..rt import jack as rt_jack
from .cycle_output import CycleOutput, abandon_if_hung

log = logging.getLogger(__name__)

CONNECTIONS_EVERY_S = 0.25  # how often the audio process's connections are noted, to restore after a crash


class JackOutput(CycleOutput):
    backend = "jack"

    def __init__(self, channels: int, midi_port: str, separate_process: bool = True):
        try:
            self.client = rt_jack.open_client("ctl")
        except rt_jack.NoServer as err:
            raise UserError(str(err)) from err
        self.server_xruns = 0  # every xrun the server announced, whichever client was late
        # Counted here, on this process's notification thread (rt/run.py says why not in the cycle's).
        # JACK tells only active clients; one without a process callback has no real-time
        # thread, so the server never waits for it.
        self.client.set_xrun_callback(self._xrun)
        self.sample_rate = self.client.samplerate
        self.block_size = self.client.blocksize
        self.realtime = self.client.realtime
        self.channels, self.target = channels, midi_port
        self.midi_in = f"{CLIENT_NAME}:{midi_port or 'in'}"  # the audio process's port, by name
        self.connections: list[tuple[str, str]] = []  # (source, destination) of the audio process's ports
        self._noted_at, self._noted_at_frame = 0.0, -1
        super().__init__(separate_process)

    def _xrun(self, _delay_us: float) -> None:
        self.server_xruns += 1

    def attach(self, engine, router) -> None:
        super().attach(engine, router)
        if router is not None:
            router.share_routes(engine.shared.routes)

    def start(self) -> None:
        self.client.activate()
        super().start()

    def each_turn(self) -> None:
        self._drain_midi()
        if time.monotonic() - self._noted_at > CONNECTIONS_EVERY_S:
            # Only while cycles run: a server that went away without a word answers with no
            # connections, and that would overwrite the routing to restore.
            frames = self.frames()
            if frames != self._noted_at_frame:
                self._note_connections()
            self._noted_at, self._noted_at_frame = time.monotonic(), frames

    def after_restart(self) -> None:
        self.restore(self.connections)

    def restore(self, connections: list[tuple[str, str]]) -> None:
        """Connect again what the cycle's ports were connected to (a DAW's routing), where both
        ends exist: after a crash, and after its server came back (its peers come back by name)."""
        self.connections = list(connections)
        for source, destination in connections:
            try:
                self.client.connect(source, destination)
            except Exception as err:  # the other end went away meanwhile
                log.info("not reconnected %s -> %s: %s", source, destination, err)

    def _note_connections(self) -> None:
        """What the cycle's ports are connected to, to restore after a crash."""
        try:
            outs = [f"{CLIENT_NAME}:out_{i}" for i in range(self.channels)]
            connections = [(peer.name, self.midi_in) for peer in self.client.get_all_connections(self.midi_in)]
            connections += [(port, peer.name) for port in outs for peer in self.client.get_all_connections(port)]
            self.connections = connections
        except Exception as err:  # a port that vanished mid-look, or the server going away: keep the last
            log.debug("noting connections: %s", err)

    def _drain_midi(self) -> None:
        ring = self.engine.shared.midi
        while self.router is not None and (record := ring.pop()) is not None:
            self.router.handle_bytes(bytes(int(b) for b in record[1 : 1 + int(record[0])]))

    def close(self) -> None:
        if self._stop.is_set():
            return
        super().close()
        if self.cycles_stopped:
            abandon_if_hung(self.client.close, "the JACK control client")
        else:
            self.client.close()
