"""`latent-snare run`: wires config, model, decode worker, engine, MIDI and audio together.

Threads and what each owns:
- audio (PortAudio/JACK's thread): the engine's voices and mixing buffers;
- decode-worker: decoding, and the lifetime of published samples;
- rtmidi's callback threads: nothing; they post events and knob requests;
- midi-rescan: the set of open hardware ports;
- main: start-up, the status line, and shutdown on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading

from threadpoolctl import threadpool_limits

from .audio import AudioOutput, find_output_device, name_jack_client
from .config import load_config
from .engine import Engine
from .midi import MidiPorts, MidiRouter
from .modelfile import load_model
from .worker import DecodeWorker

log = logging.getLogger(__name__)

# Python real-time hygiene (see README "Real-time notes" for the measurements behind these):
SWITCH_INTERVAL_S = 0.0005  # a thread holding the GIL yields within 0.5 ms, not the default 5 ms
GC_GEN0_THRESHOLD = 50_000  # rare, small collections; start-up garbage is frozen out of the way
STATUS_INTERVAL_S = 0.25
FIRST_DECODE_TIMEOUT_S = 5.0


def realtime_hygiene() -> None:
    threadpool_limits(1)  # BLAS stays on one core: the other is the audio thread's
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


class Instrument:
    """The running instrument: one object a front end (MIDI, terminal, web) talks to."""

    def __init__(self, config, model_arg=None):
        self.config = config
        self.model = load_model(model_arg, config.model)
        device = find_output_device(config.audio.device)
        name_jack_client()
        self.sample_rate = AudioOutput.device_rate(device)
        a, v = config.audio, config.voices
        self.engine = Engine(self.sample_rate, max_block=max(a.block_size, 4096), polyphony=v.polyphony, mode=v.mode,
                             steal_fade_ms=v.steal_fade_ms, velocity_range_db=v.velocity_range_db, gain_db=a.gain_db,
                             ceiling_db=a.ceiling_db, limiter_release_ms=a.limiter_release_ms)
        self.worker = DecodeWorker(self.model, self.engine, self.sample_rate)
        self.router = MidiRouter(config.midi, self.engine, on_knobs=self.worker.request_cc)
        self.audio = AudioOutput(self.engine, device, a.block_size, a.channels, self.sample_rate)
        self.midi = MidiPorts(config.midi, self.router.handle)

    def start(self) -> None:
        self.worker.start()
        self.worker.request_cc(*self.router.knobs)  # the first decode also warms the caches
        if not self.worker.wait_published(FIRST_DECODE_TIMEOUT_S):
            raise RuntimeError("the first decode did not finish")
        realtime_hygiene()
        self.midi.open()
        self.audio.start()

    def stop(self) -> None:
        for step in (self.audio.close, self.midi.close, self.worker.stop):
            try:
                step()
            except Exception:
                log.exception("error during shutdown")

    def status(self) -> str:
        latent = self.worker.latent if self.worker.latent is not None else (0.0, 0.0)
        cc = self.router.knobs
        return (f"x {latent[0]:+.3f} y {latent[1]:+.3f} (CC{self.config.midi.cc_x}={cc[0]:3d} CC{self.config.midi.cc_y}={cc[1]:3d})"
                f" | voices {self.engine.stats.voices:2d} | decode {self.worker.last_decode_ms:.1f} ms"
                f" | underflows {self.audio.underflows} | MIDI: {', '.join(self.midi.connected()) or 'none'}")


def run_service(args) -> int:
    config = load_config(args.config).with_overrides(**{
        "midi.api": args.midi_api, "midi.virtual_port": args.virtual_port,
        "audio.device": args.audio_device, "audio.block_size": args.blocksize,
    })
    instrument = Instrument(config, args.model)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        instrument.start()
        a = config.audio
        print(f"latent-snare: ready: model {instrument.model.name}, {instrument.sample_rate} Hz, block {a.block_size} "
              f"({a.block_size / instrument.sample_rate * 1e3:.1f} ms); MIDI in: {', '.join(instrument.midi.connected()) or 'none'}; "
              f"knobs CC{config.midi.cc_x}/CC{config.midi.cc_y}; Ctrl-C to stop", flush=True)
        live = sys.stdout.isatty() and not args.no_status
        while not stop.wait(STATUS_INTERVAL_S):
            if live:
                sys.stdout.write("\r\x1b[K" + instrument.status())
                sys.stdout.flush()
    finally:
        instrument.stop()
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    print(f"latent-snare: stopped ({instrument.engine.stats.notes} notes, {instrument.audio.underflows} underflows, "
          f"{instrument.audio.callback_errors} callback errors)", flush=True)
    return 0
