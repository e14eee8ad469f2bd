"""The audio process: the engine and the audio host's callback, with an interpreter nothing else uses.

Started by the output classes in backends/process.py as
`python -m instrument.play.audioproc HOST FD PIPE RATE CHANNELS TARGET BLOCK SETTINGS_JSON`:
HOST is `jack` or `portaudio`, FD the shared memory (play/shared.py), PIPE the read end of a
pipe the main process holds open, TARGET the JACK MIDI port's name (jack) or the audio device
asked for (portaudio), BLOCK PortAudio's block size. It has no Python thread but its main one,
which only waits for the main process to go away, a SIGTERM, or the stream's server or device
to go away. The host's real-time thread runs the cycle: it takes a newly published snare,
drains the event ring, (JACK) reads this cycle's MIDI (trigger notes and clock start at their
frame; the rest goes back to the main process's router through the MIDI ring), mixes, and
counts its own lateness. It keeps the callback contract in backends/__init__.py.

That cycle is the C mixer (mixer.c through cmixer.py): on JACK the real-time thread calls it
directly and never enters the interpreter; on PortAudio sounddevice's callback makes one call
into it. Where it was not built, the Python cycles below run engine.py instead.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import select
import signal
import sys

MCL_CURRENT = 1  # mlockall(2): lock the pages mapped now, not later allocations (those could fail under the limit)
EXIT_SERVER_GONE = 3  # no server or device, or it went away: the main process waits for it to return
EXIT_WRONG_RATE = 4  # the server runs at another rate than the shared layout's
WAKE_SERVER_GONE, WAKE_STOP = b"x", b"s"  # why the main thread woke (its self-pipe)
STREAM_CHECK_S = 0.05  # how often a PortAudio stream is checked for having stopped by itself


class SharedCycle:
    """What every host's cycle does with the shared memory: the snare swap, the event ring,
    mixing into the host's buffers, and the frame count that pins a playing slot."""

    def __init__(self, engine, shared, mixer=None):
        from .backends import render_period
        from .events import decode

        self.engine, self.shared = engine, shared
        self.render_period, self.decode = render_period, decode
        self.stats, self.table = shared.stats, shared.snares
        self.use_mixer(mixer)
        self.playing = -1
        self.frames = int(self.table.frames)  # a restarted process continues the frame count its slots refer to
        self.wake_r, self.wake_w = os.pipe()

    def use_mixer(self, mixer) -> None:
        """The C mixer runs the cycle (a CMixer), or engine.py does (None); status --json says which."""
        self.mixer = mixer
        self.stats.mixer = int(mixer is not None)

    def begin(self) -> None:
        """At the cycle's start: the reference swap to a newly published snare, then the events."""
        table = self.table
        published = table.published
        if published != self.playing and published >= 0:
            self.engine.current = self.shared.slots[published, : table.length[published]]
            self.playing = table.playing = published
        decode, events = self.decode, self.shared.events
        while (record := events.pop()) is not None:
            self.engine.post(decode(record[0], record[1], record[2]))

    def mix(self, channels, frames: int) -> None:
        started = self.stats.notes
        self.render_period(self.engine, channels, frames)
        if self.stats.notes != started:  # a note took this slot's snare: it stays pinned while that note sounds
            self.table.last_started[self.playing] = self.frames

    def end(self, frames: int) -> None:
        self.frames += frames
        self.table.frames = self.frames


class JackCycle(SharedCycle):
    """JACK's process callback: MIDI read in the cycle it arrives in, every output port filled.
    With `mixer` (a CMixer), JACK's thread calls the C mixer directly and `_process` never runs."""

    def __init__(self, client, engine, shared, channels: int, midi_port: str, mixer=None):
        from .midi import route_in_cycle

        super().__init__(engine, shared, mixer)
        self.client, self.route_in_cycle, self.routes = client, route_in_cycle, shared.routes
        self.midi_in = client.midi_inports.register(midi_port or "in")
        self.outs = [client.outports.register(f"out_{i}") for i in range(channels)]
        self.next_frame_time = -1  # where the next cycle starts on the server's clock, if none is missed
        if mixer is not None:
            try:
                mixer.attach_jack(client, self.midi_in, self.outs)
            except RuntimeError as err:
                print(f"latent-snare: {err}; mixing in Python", file=sys.stderr)
                self.use_mixer(None)
        if self.mixer is None:
            client.set_process_callback(self._process)
        # No xrun callback: it would run Python on libjack's notification thread, which is not
        # real-time, and the process thread would wait for the GIL whenever a busy machine
        # preempted that thread while it held it, right as xruns come. The main process counts
        # the server's xruns (jackproc.py); only the shutdown callback runs here, once.
        client.set_shutdown_callback(self._shutdown)

    def _process(self, frames: int) -> None:
        stats = self.stats
        try:
            self.begin()
            for offset, data in self.midi_in.incoming_midi_events():
                if 0 < len(data) <= 3:  # SysEx is never copied on this thread
                    data = bytes(data)
                    if not self.route_in_cycle(data, offset, self.routes, self.engine.post):
                        n = len(data)
                        self.shared.midi.push(n, data[0], data[1] if n > 1 else 0, data[2] if n > 2 else 0)
            self.mix([port.get_array() for port in self.outs], frames)
        except Exception:
            for port in self.outs:
                port.get_array().fill(0)
            stats.callback_errors += 1
        self.end(frames)
        # Our xruns, as far as this cycle can tell: it finished after the period's end, or the
        # cycle before it never ran here (our thread was not scheduled in time, so jackd skipped
        # us and this call belongs to a later cycle: the server's clock jumped).
        now = self.client.last_frame_time
        late = self.client.frames_since_cycle_start > frames
        if late or (self.next_frame_time >= 0 and now != self.next_frame_time):
            stats.own_xruns += 1
        self.next_frame_time = now + frames

    def _shutdown(self, _status, _reason: str) -> None:
        os.write(self.wake_w, WAKE_SERVER_GONE)


class PortAudioCycle(SharedCycle):
    """sounddevice's stream callback: a note posted from rtmidi's thread sounds one block later.
    With `mixer` (a CMixer), the cycle is one call into C."""

    def callback(self, outdata, frames, _time_info, status) -> None:
        try:
            if status.output_underflow:
                self.stats.own_xruns += 1
            if self.mixer is not None:
                self.mixer.cycle(outdata)  # the snare swap, the events, mixing, and the frame count
            else:
                self.begin()
                self.mix(outdata.T, frames)  # outdata.T: one view per channel, written in place
        except Exception:
            outdata.fill(0)
            self.stats.callback_errors += 1
        if self.mixer is None:
            self.end(frames)


def c_mixer(engine, shared):
    """The C mixer on `engine`'s settings, or None (engine.py mixes) where it was not built."""
    from .cmixer import CMixer, available

    why_not = available()
    if why_not is not None:
        print(f"latent-snare: {why_not}; mixing in Python", file=sys.stderr)
        return None
    return CMixer(engine, shared)


def settle(shared) -> None:
    """Make the real-time thread's world still before it starts: start-up garbage frozen out of the
    collector's way, and every page mapped so far (code, the engine's buffers, the shared snare
    slots) faulted in and locked, so a cycle never waits on a page fault. Where the lock is refused
    (`ulimit -l`; JACK's real-time set-up raises it for the audio group) it plays on unlocked."""
    gc.collect()
    gc.freeze()
    mlockall = getattr(ctypes.CDLL(None), "mlockall", None)  # Linux and macOS; MCL_CURRENT is 1 on both
    shared.stats.memory_locked = int(mlockall is not None and mlockall(MCL_CURRENT) == 0)


def run_jack(shared, engine, channels: int, midi_port: str, pipe: int) -> int:
    import jack

    from .backends import CLIENT_NAME

    try:
        client = jack.Client(CLIENT_NAME, no_start_server=True)
    except jack.JackOpenError:
        return EXIT_SERVER_GONE
    if client.samplerate != shared.sample_rate:
        return EXIT_WRONG_RATE
    cycle = JackCycle(client, engine, shared, channels, midi_port, c_mixer(engine, shared))
    signal.signal(signal.SIGTERM, lambda *_: os.write(cycle.wake_w, WAKE_STOP))
    settle(shared)
    client.activate()
    speakers = client.get_ports(is_physical=True, is_input=True, is_audio=True)
    for i, speaker in enumerate(speakers[: max(2, len(cycle.outs))]):
        try:
            client.connect(cycle.outs[i % len(cycle.outs)], speaker)
        except jack.JackError as err:
            print(
                f"latent-snare: could not connect {cycle.outs[i % len(cycle.outs)].name} to {speaker.name}: {err}",
                file=sys.stderr,
            )
    shared.stats.realtime = int(client.realtime)
    shared.stats.ready_pid = os.getpid()
    woken = select.select([pipe, cycle.wake_r], [], [])[0]  # the main process went away, a SIGTERM, or the server
    if cycle.wake_r in woken and os.read(cycle.wake_r, 1) == WAKE_SERVER_GONE:
        client.close()
        return EXIT_SERVER_GONE
    client.deactivate()
    client.close()
    return 0


def run_portaudio(shared, engine, channels: int, device_name: str, block_size: int, pipe: int) -> int:
    from ..errors import UserError
    from .backends.portaudio import name_jack_client

    name_jack_client()
    import sounddevice as sd

    from .backends.portaudio import device_rate, find_output_device

    try:
        device = find_output_device(device_name)
        if device_rate(device) != shared.sample_rate:
            return EXIT_WRONG_RATE
        cycle = PortAudioCycle(engine, shared, c_mixer(engine, shared))
        stream = sd.OutputStream(
            device=device,
            samplerate=shared.sample_rate,
            blocksize=block_size,
            channels=channels,
            dtype="float32",
            latency="low",
            callback=cycle.callback,
        )
    except (UserError, sd.PortAudioError) as err:
        print(f"latent-snare: audio device: {err}", file=sys.stderr)
        return EXIT_SERVER_GONE
    signal.signal(signal.SIGTERM, lambda *_: os.write(cycle.wake_w, WAKE_STOP))
    settle(shared)
    stream.start()
    shared.stats.ready_pid = os.getpid()
    while not select.select([pipe, cycle.wake_r], [], [], STREAM_CHECK_S)[0]:
        if not stream.active:
            # The device or its server went away. Stopping or closing such a stream can wait
            # forever (PortAudio 19.6's JACK host API waits for a process callback that never
            # comes), and so would PortAudio's clean-up at exit: leave without either.
            os._exit(EXIT_SERVER_GONE)
    stream.stop()
    stream.close()
    return 0


def main(argv: list[str]) -> int:
    host = argv[0]
    fd, pipe, rate, channels = (int(a) for a in argv[1:5])
    target, block_size, settings = argv[5], int(argv[6]), json.loads(argv[7])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's: it fades out, then stops this one

    from .engine import Engine
    from .shared import SharedAudio

    shared = SharedAudio.attach(fd, rate)
    engine = Engine(rate, stats=shared.stats, **settings)
    if host == "jack":
        return run_jack(shared, engine, channels, target, pipe)
    return run_portaudio(shared, engine, channels, target, block_size, pipe)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
