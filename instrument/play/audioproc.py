"""The audio process: one JACK client (the MIDI input and the audio outputs) and the engine,
with an interpreter nothing else uses.

Started by the JACK backend (backends/jackproc.py) as
`python -m instrument.play.audioproc FD PIPE RATE CHANNELS MIDI_PORT SETTINGS_JSON`: FD is
the shared memory (play/shared.py), PIPE the read end of a pipe the main process holds
open. It has no Python thread but its main one, which only waits (without the GIL) for the
main process to go away, a SIGTERM, or the server to shut down. JACK's process thread runs
`_process`: it takes a newly published snare, drains the event ring, reads this cycle's MIDI
(trigger notes and clock start at their frame, as before; the rest goes back to the main
process's router through the MIDI ring), mixes, and counts its own lateness. It keeps the
callback contract in backends/__init__.py.
"""

from __future__ import annotations

import gc
import json
import os
import select
import signal
import sys

EXIT_SERVER_GONE = 3  # no JACK server, or it went away: the main process waits for it to return
EXIT_WRONG_RATE = 4  # the server runs at another rate than the shared layout's
WAKE_SERVER_GONE, WAKE_STOP = b"x", b"s"  # why the main thread woke (its self-pipe)


class AudioCycle:
    def __init__(self, client, engine, shared, channels: int, midi_port: str):
        from .backends import render_period
        from .events import decode
        from .midi import route_in_cycle

        self.client, self.engine, self.shared = client, engine, shared
        self.route_in_cycle, self.render_period, self.decode = route_in_cycle, render_period, decode
        self.stats, self.table, self.routes = shared.stats, shared.snares, shared.routes
        self.midi_in = client.midi_inports.register(midi_port or "in")
        self.outs = [client.outports.register(f"out_{i}") for i in range(channels)]
        self.playing = -1
        self.frames = int(self.table.frames)  # a restarted process continues the frame count its slots refer to
        self.wake_r, self.wake_w = os.pipe()
        client.set_process_callback(self._process)
        client.set_xrun_callback(self._xrun)
        client.set_shutdown_callback(self._shutdown)

    # --- JACK's real-time thread -------------------------------------------------------------------

    def _process(self, frames: int) -> None:
        stats, table = self.stats, self.table
        try:
            published = table.published
            if published != self.playing and published >= 0:  # the reference swap, at the cycle's start
                self.engine.current = self.shared.slots[published, : table.length[published]]
                self.playing = table.playing = published
            decode, events = self.decode, self.shared.events
            while (record := events.pop()) is not None:
                self.engine.post(decode(record[0], record[1], record[2]))
            for offset, data in self.midi_in.incoming_midi_events():
                if 0 < len(data) <= 3:  # SysEx is never copied on this thread
                    data = bytes(data)
                    if not self.route_in_cycle(data, offset, self.routes, self.engine.post):
                        n = len(data)
                        self.shared.midi.push(n, data[0], data[1] if n > 1 else 0, data[2] if n > 2 else 0)
            started = stats.notes
            self.render_period(self.engine, [port.get_array() for port in self.outs], frames)
            if stats.notes != started:  # a note took this slot's snare: it stays pinned while that note sounds
                table.last_started[self.playing] = self.frames
        except Exception:
            for port in self.outs:
                port.get_array().fill(0)
            stats.callback_errors += 1
        self.frames += frames
        table.frames = self.frames
        if self.client.frames_since_cycle_start > frames:  # finished after the period's end: this xrun is ours
            stats.own_xruns += 1

    # --- JACK's notification thread ------------------------------------------------------------

    def _xrun(self, _delay_us: float) -> None:
        self.stats.server_xruns += 1

    def _shutdown(self, _status, _reason: str) -> None:
        os.write(self.wake_w, WAKE_SERVER_GONE)


def main(argv: list[str]) -> int:
    fd, pipe, rate, channels = (int(a) for a in argv[:4])
    midi_port, settings = argv[4], json.loads(argv[5])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it fades out, then stops this one

    import jack

    from .backends import CLIENT_NAME
    from .engine import Engine
    from .shared import SharedAudio

    shared = SharedAudio.attach(fd, rate)
    engine = Engine(rate, stats=shared.stats, **settings)
    try:
        client = jack.Client(CLIENT_NAME, no_start_server=True)
    except jack.JackOpenError:
        return EXIT_SERVER_GONE
    if client.samplerate != rate:
        return EXIT_WRONG_RATE
    cycle = AudioCycle(client, engine, shared, channels, midi_port)
    signal.signal(signal.SIGTERM, lambda *_: os.write(cycle.wake_w, WAKE_STOP))
    gc.collect()
    gc.freeze()  # nothing allocated so far is ever collected: a collection on the audio thread stays small
    client.activate()
    speakers = client.get_ports(is_physical=True, is_input=True, is_audio=True)
    for i, speaker in enumerate(speakers[: max(2, len(cycle.outs))]):
        try:
            client.connect(cycle.outs[i % len(cycle.outs)], speaker)
        except jack.JackError as err:
            print(f"latent-snare: could not connect {cycle.outs[i % len(cycle.outs)].name} to {speaker.name}: {err}", file=sys.stderr)
    shared.stats.realtime = int(client.realtime)
    shared.stats.ready_pid = os.getpid()
    woken = select.select([pipe, cycle.wake_r], [], [])[0]  # the main process went away, a SIGTERM, or the server
    if cycle.wake_r in woken and os.read(cycle.wake_r, 1) == WAKE_SERVER_GONE:
        client.close()
        return EXIT_SERVER_GONE
    client.deactivate()
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
