"""`latent-snare run`: wires config, model, decode worker, engine, MIDI and audio together.

Threads and what each owns:
- audio (JACK's process thread or PortAudio's callback, in a separate audio process by default,
  rt/child.py; with `audio.separate_process: false`, the same cycle here): the engine's voices and
  mixing buffers; on JACK it also reads the virtual port's MIDI and starts trigger notes itself;
- audio-watch: restarts the audio process if it dies, flags its server or device gone; on JACK
  also hands the cycle's other MIDI to the router;
- decode-worker: the knob position (model, CCs, latent: one immutable value it publishes as
  `now_playing`), decoding, and the lifetime of published samples;
- rtmidi's callback threads: nothing; they post events and knob turns;
- web: the control page's event loop; jobs: saves, uploads and model loads, one at a time;
- midi-rescan: the set of open hardware ports;
- main: start-up, the status line, reopening the audio output after its server or device comes
  back, and shutdown on Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile
from threadpoolctl import threadpool_limits

from ..config import LOOP_BPM_RANGE, load_config, save_user_settings
from ..core.dsp import spectral_match
from ..core.events import ALL_SOUND_OFF, Loop, NoteOn, Tempo
from ..errors import UserError
from ..files.saving import History, Saved, save_snare
from ..files.untrusted import load_snare_isolated
from ..host.jack_ports import JackPorts
from ..host.link import EngineLink, settings_for
from ..host.midi import MidiPorts, MidiRouter, check_api
from ..host.outputs import open_output, server_answers
from ..host.worker import DecodeWorker, warm_up
from ..model.file import available_models, load_model
from ..rt.engine import ALL_SOUND_OFF_FADE_MS
from .control import ControlServer, socket_path
from .dropfolder import DropFolder
from .instance import InstanceClaim
from .terminal import KEYS_HELP, Terminal

log = logging.getLogger(__name__)

# Python real-time hygiene (see README "Real-time notes" for the measurements behind these):
SWITCH_INTERVAL_S = 0.0005  # a thread holding the GIL yields within 0.5 ms, not the default 5 ms
GC_GEN0_THRESHOLD = 50_000  # rare, small collections; start-up garbage is frozen out of the way
STATUS_INTERVAL_S = 0.25
FIRST_DECODE_TIMEOUT_S = 5.0
EVENT_TAKEN_TIMEOUT_S = 2.0
NOT_REALTIME_WARNING = (
    "audio: the JACK server is not running real-time, so any busy program can make it click; "
    "fix: start jackd with -R (and add your user to the audio group)"
)
# Said once, at the first dropout of our own: what the status line's "own xruns" counts, and the fix.
OWN_XRUN_ADVICE = {
    "jack": "start jackd with a bigger period (-p 256) and real-time (-R, with your user in the audio group)",
    "portaudio": "use a bigger block (--blocksize 256, or audio.block_size), or a real-time JACK server "
    "(jackd -R, then --audio-backend jack)",
}
STOP_FADE_S = ALL_SOUND_OFF_FADE_MS / 1e3 + 0.03  # the fade, plus a few blocks for the audio thread to play it


def realtime_hygiene() -> None:
    threadpool_limits(1)  # BLAS stays on one core: the other is the audio thread's
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 100)


class Instrument:
    """The running instrument: one object every front end (MIDI, terminal, control socket, web) talks to.

    Its methods may be called from any thread except the audio thread; the slow ones
    (saving, loading a model, encoding a dropped file) run on the caller's thread, so the
    MIDI thread hands them to the `jobs` thread instead of calling them itself."""

    def __init__(self, config, model_arg=None, say=print, socket_file=None):
        self.config = config
        check_api(config.midi.api)  # even where JACK's own MIDI port makes it moot: a wrong setting is told
        self.say = say  # one line for the performer (the terminal clears its status line first)
        self.save_folder = Path(config.save.folder).expanduser()
        model = load_model(model_arg, config.model)
        self._models = {model.name: model}  # loaded once, kept: a program change is instant the second time
        self.audio = open_output(config.audio, config.midi.virtual_port)
        self.sample_rate = self.audio.sample_rate
        self.engine = EngineLink(settings_for(config, self.sample_rate, self.audio.block_size))
        # The one owner of the knob position.
        self.worker = DecodeWorker(model, self.engine, self.sample_rate, round_robins=config.voices.round_robins)
        self.jobs = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="jobs"
        )  # saves and model loads asked for by MIDI
        self.save_presses = 0  # save buttons heard (MIDI thread only)
        self.saved = 0  # snares saved (jobs thread only)
        self.router = MidiRouter(
            config,
            self.engine,
            on_turn=self.worker.turn,
            on_save=self._save_pressed,
            on_program=lambda n: self.background(self.switch_model, n),
        )
        self.audio.attach(self.engine, self.router)
        self.midi = self._midi_ports()
        # Saves run on the jobs thread whoever asks: one writer of the save folder and its history.
        self.control = ControlServer(
            {
                "save": lambda: self.jobs.submit(self.save).result(),
                "recall": self.recall,
                "drop": self.load_sample,
                "loop": self.set_loop,
                "model": self.switch_model,
                "learn": self.learn,
                "status": self.status,
                "state": self.state,
            },
            socket_file,
        )
        self.loop_bpm = config.loop.bpm  # the loop's own tempo; written only by set_loop
        self._audio_lost_at = None  # when the audio server or device went away, until it is back
        self._xrun_explained = False
        self.web = _web_page(self) if config.web.enabled else None
        folder = config.save.drop_folder
        # Named by the file alone: the player knows where they dropped it (the full path twice was noise).
        self.drop = (
            DropFolder(Path(folder), lambda path: self._report(self.load_sample, path, path.name), say)
            if folder
            else None
        )

    def start(self) -> None:
        log.info("libsndfile %s parses dropped files", soundfile.__libsndfile_version__)
        self.worker.start()  # the first decode, at the centre, also warms the caches
        if not self.worker.wait_published(FIRST_DECODE_TIMEOUT_S):
            raise RuntimeError("the first decode did not finish")
        if self.config.loop.enabled:
            self.engine.post(Loop(True))
        realtime_hygiene()
        # Audio first: on JACK the ports scanner connects controllers to the audio side's MIDI input,
        # which exists only once the audio process runs (and its client is active).
        self.audio.start()
        self.midi.open()
        if self.audio.realtime is False:
            self.say(NOT_REALTIME_WARNING)
        if self.audio.advice:
            self.say(self.audio.advice)
        self.control.start()
        if self.web:
            try:
                self.web.start()
            except UserError as err:
                self.say(f"{err}; playing on without it")
                self.web = None
        if self.drop:
            try:
                self.drop.start()
            except OSError as err:
                self.say(f"drop folder {self.drop.folder}: cannot use it ({err.strerror}); dropping files is off")
                self.drop = None

    def stopping(self) -> None:
        """A stop is coming (safe in a signal handler): the audio process ending now is part of it."""
        self.audio.stopping()

    def stop(self) -> None:
        self.stopping()
        # The front ends go first, so nothing new reaches the engine while it closes.
        # MIDI before audio: on JACK the port scanner uses the audio client, which must outlive it.
        steps = [
            self.drop.stop if self.drop else None,
            self.web.close if self.web else None,
            self.control.close,
            self.midi.close,
            self._fade_out,
            self.audio.close,
            self.worker.stop,
            lambda: self.jobs.shutdown(wait=False),
        ]
        for step in filter(None, steps):
            try:
                step()
            except Exception:
                log.exception("error during shutdown")

    def _midi_ports(self):
        """JACK: hardware ports are connected to the audio client's own MIDI input; else rtmidi ports."""
        if self.audio.backend == "jack":
            return JackPorts(self.config.midi, self.audio)
        return MidiPorts(self.config.midi, self.router.handle)

    def keep_audio_alive(self) -> None:
        """Called by the main loop: when the audio server or device goes away, wait for it and reopen,
        keeping the knobs, the model and every setting (the engine and its snare never went away)."""
        if not self.audio.server_lost:
            return
        server = "JACK server" if self.audio.backend == "jack" else "audio device"
        silent = self.audio.cycles_stopped  # it may hang whatever asks it: ask from a child first
        if self._audio_lost_at is None:
            self._audio_lost_at = time.monotonic()
            if silent:
                self.say(
                    f"audio: {self.audio.lost_why}: the {server} went away or hangs; playing again once one answers"
                )
            else:
                self.say(f"audio: the {server} went away; playing again as soon as it is back")
            self.audio.close()
        if silent and not server_answers(self.audio.backend, self.config.audio.device):
            return  # not back yet
        try:
            audio = open_output(
                dataclasses.replace(self.config.audio, backend=self.audio.backend), self.config.midi.virtual_port
            )
        except UserError:
            return  # not back yet
        if audio.sample_rate != self.sample_rate:
            audio.close()
            raise UserError(
                f"the {server} came back at {audio.sample_rate} Hz instead of {self.sample_rate} Hz; restart latent-snare"
            )
        audio.attach(self.engine, self.router)
        try:
            audio.start()
        except UserError:
            audio.close()
            return  # listed, but not playing yet: the next turn tries again
        if self.audio.backend == "jack":
            audio.restore(self.audio.connections)  # the DAW's routing, where its peers are back
        self.audio = audio
        if self._midi_went_with_it():
            self.midi.close()
            self.midi = self._midi_ports().open()
        self.say(
            f"audio: the {server} is back; reopened {time.monotonic() - self._audio_lost_at:.1f} s after it went away"
        )
        self._audio_lost_at = None

    def explain_first_xrun(self) -> None:
        """Called by the main loop: at the first dropout that was ours, one line a player can act on."""
        if self._xrun_explained or not self.audio.own_xruns:
            return
        self._xrun_explained = True
        self.say(
            'audio: a dropout (the status line\'s "own xruns": the sound was not ready in time, a click '
            f"or a gap); if they keep coming, {OWN_XRUN_ADVICE[self.audio.backend]}"
        )

    def _midi_went_with_it(self) -> bool:
        """The MIDI ports live on the audio server (JACK's, or rtmidi's JACK API) and went away with it."""
        return self.audio.backend == "jack" or getattr(self.midi, "api", None) == "UNIX_JACK"

    def _fade_out(self) -> None:
        """Stop on silence, not mid-hit: a stream closed under a sounding voice clicks."""
        self.panic()
        time.sleep(STOP_FADE_S)

    # --- what the front ends ask for ------------------------------------------------------------

    def background(self, fn, *args) -> None:
        """Run `fn` on the jobs thread and say its result: the MIDI thread must never wait on disk."""
        self.jobs.submit(self._report, fn, *args)

    def _report(self, fn, *args) -> None:
        try:
            self.say(fn(*args))
        except UserError as err:
            self.say(f"{err}")
        except Exception:
            log.exception("%s failed", getattr(fn, "__name__", fn))

    def save(self) -> str:
        entry = self.save_entry()
        return f"saved #{entry.number}: {self.save_folder / entry.file}"

    def _save_pressed(self) -> None:
        """A save button or note (MIDI thread): counted, and saved on the jobs thread."""
        self.save_presses += 1
        self.background(self.save)

    def save_entry(self) -> Saved:
        """Save the snare that plays now (on the jobs thread)."""
        playing = self.worker.now_playing
        entry = save_snare(self.save_folder, playing.model, playing.latent, self.config.audio.ceiling_db)
        self.saved += 1
        return entry

    def history(self) -> list[Saved]:
        return History(self.save_folder).entries

    def recall(self, number: int) -> str:
        entry = History(self.save_folder).get(int(number))
        self.worker.move_to(self.model_named(entry.model), np.asarray(entry.latent, dtype=np.float32))
        return f"recalled #{entry.number}: {entry.model} at CC ({entry.cc[0]}, {entry.cc[1]})"

    def load_sample(self, path, shown_name: str | None = None) -> str:
        """Encode an audio file and move to the closest snare the model can make.
        `shown_name` replaces the path in messages (an upload's temporary file means nothing to its owner)."""
        model = self.worker.target.model  # the model the knobs play (a program change may not be decoded yet)
        try:
            wave = load_snare_isolated(Path(path), model.sample_rate, model.n_samples)
        except UserError as err:
            if shown_name:
                raise UserError(str(err).replace(str(path), shown_name)) from err
            raise
        latent = model.encode(wave)
        match = spectral_match(wave, model.decode(latent))
        cc = self.worker.move_to(model, latent)
        return (
            f"drop: {shown_name or Path(path).name} -> x {latent[0]:+.3f} y {latent[1]:+.3f} (CC {cc[0]}, {cc[1]}), "
            f"spectral match {match:.0%}"
        )

    def move(self, cc_x: float, cc_y: float) -> None:
        """The point moved as if by the knobs (the web pad); returns at once, the newest move wins."""
        self.worker.move_cc(cc_x, cc_y)

    def hit(self, velocity: int = 100) -> None:
        """Play the current snare, as a note-on would."""
        self.engine.post(NoteOn(int(velocity)))

    def panic(self) -> str:
        """All sound off: every voice fades out within a few ms."""
        self.engine.post(ALL_SOUND_OFF)
        return "panic: all sound off"

    def set_loop(self, on=None, bpm=None) -> str:
        """Loop on, off, or toggled (on=None); at `bpm` if given."""
        if bpm is not None:
            bpm = float(bpm)
            lo, hi = LOOP_BPM_RANGE
            if not lo <= bpm <= hi:
                raise UserError(f"loop tempo {bpm:g} bpm: allowed {lo:g}..{hi:g}")
            self.engine.post(Tempo(bpm, self.config.loop.steps_per_beat))
            self.loop_bpm = bpm
        self.engine.post(Loop(None if on is None else bool(on)))
        self._wait_rendered()  # so the reply says what is true
        state = "on" if self.engine.stats.loop_on else "off"
        return f"loop {state}" + (f" at {bpm:g} bpm" if bpm else "")

    def _wait_rendered(self) -> None:
        """Wait until the audio thread has taken every event posted so far: a block that starts after
        the post drains the queue, and two finished blocks include one that started after it. Bounded:
        with its server gone the audio thread renders nothing."""
        blocks, deadline = self.engine.stats.blocks, time.monotonic() + EVENT_TAKEN_TIMEOUT_S
        while self.engine.stats.blocks < blocks + 2 and time.monotonic() < deadline:
            time.sleep(0.002)

    def program_names(self) -> list[str]:
        return list(self.config.midi.programs) or available_models()

    def switch_model(self, which=None) -> str:
        """A program number (index into program_names, from 0) or a model name; knobs stay where they are.
        With neither, the programs, the one playing marked."""
        names = self.program_names()
        if which is None:
            playing = self.worker.target.model.name
            return "\n".join(f"{'>' if name == playing else ' '} program {n}: {name}" for n, name in enumerate(names))
        if isinstance(which, int):
            if not 0 <= which < len(names):
                raise UserError(f"program {which}: no model there (programs 0..{len(names) - 1}: {', '.join(names)})")
            which = names[which]
        model = self.model_named(str(which))
        self.worker.switch_model(model)
        return f"model {model.name}"

    def model_named(self, name: str):
        """A model by name or path, loaded once (under both, so a recall by name finds a model loaded by path)."""
        if name not in self._models:
            model = load_model(name, self.config.model)
            warm_up(model, self.sample_rate)  # here, on the caller's thread: the knobs never wait for a cold decoder
            self._models[name] = self._models.setdefault(model.name, model)
        return self._models[name]

    def learn(self, target: str, wait_s: float = 30.0) -> str:
        done = threading.Event()
        learned: list = []
        self.router.learn(target, lambda *key_number: (learned.extend(key_number), done.set()))
        if not done.wait(float(wait_s)):
            self.router.cancel_learning()
            skipped = "; ".join(f"{control} is {job}" for control, job in self.router.learn_skipped.items())
            raise UserError(
                f"learn {target}: no free control moved within {wait_s:g} s"
                + (f" (skipped, already assigned: {skipped})" if skipped else "")
            )
        key, number = learned
        path = save_user_settings({key: number})
        kind = "note" if key.endswith("note") else "CC"
        return f"learned {target} = {kind} {number} (saved in {path})"

    def snapshot(self) -> dict:
        """Everything the page shows, as plain values (read from several owners; each read is atomic)."""
        playing = self.worker.now_playing  # one value: model, knobs and latent always belong together
        stats = self.engine.stats
        return {
            "model": playing.model.name,
            "cc": [round(c) for c in playing.cc],
            "latent": [round(float(z), 4) for z in playing.latent],
            "voices": stats.voices,
            "velocity": stats.last_velocity,
            "notes": stats.notes,
            "decodes": self.worker.decodes,
            "own_xruns": self.audio.own_xruns,
            "loop": stats.loop_on,
            "bpm": self.loop_bpm,
            "decode_ms": round(self.worker.last_decode_ms, 2),
            "kit_ms": round(self.worker.last_kit_ms, 2),  # every velocity layer and round robin ready
            "kit": list(playing.kit),  # (velocity layers, round robins) of what sounds
        }

    def state(self) -> dict:
        """The control socket's JSON status (`latent-snare status --json`): the page's snapshot, plus the
        MIDI transport, the MIDI inputs and the save counts that tools and tests check."""
        return {
            **self.snapshot(),
            "transport": self.engine.stats.transport_running,
            "inputs": self.midi.connected(),
            "save_presses": self.save_presses,
            "saved": self.saved,
            # "own_xruns" are ours; the server announces every client's xruns to every client:
            "server_xruns": self.audio.server_xruns,
            # The machine's, beside "own_xruns": JACK cycles late because they began late, and
            # cycles that never reached us (the server skipped us, or changed its period).
            "late_starts": self.engine.stats.late_starts,
            "skipped_cycles": self.engine.stats.skipped_cycles,
            "callback_errors": self.audio.callback_errors,
            "audio_restarts": self.audio.restarts,
            "audio_pid": self.audio.audio_pid,
            "memory_locked": bool(self.engine.stats.memory_locked),
            "mixer": "c" if self.engine.stats.mixer else "python",
            # Where in its period each JACK cycle began and finished: tenths, then past its end (C mixer).
            "cycle_start_hist": list(self.engine.stats.cycle_start_hist),
            "cycle_end_hist": list(self.engine.stats.cycle_end_hist),
        }

    def status(self) -> str:
        """The terminal's status line (a person's view of `state`)."""
        s = self.snapshot()
        (x, y), (cc_x, cc_y) = s["latent"], s["cc"]
        loop = " | loop" if s["loop"] else ""
        return (
            f"{s['model']} x {x:+.3f} y {y:+.3f} (CC {cc_x:3d}, {cc_y:3d}) | voices {s['voices']:2d}{loop}"
            f" | decode {s['decode_ms']:.1f} ms | own xruns {s['own_xruns']} | MIDI: {', '.join(self.midi.connected()) or 'none'}"
        )


def _web_page(instrument):
    from .web.server import WebPage  # aiohttp is imported only when the page is on

    return WebPage(instrument, instrument.config.web)


def run_service(args) -> int:
    config = load_config(args.config).with_overrides(
        **{
            "midi.api": args.midi_api,
            "midi.virtual_port": args.virtual_port,
            "audio.backend": args.audio_backend,
            "audio.device": args.audio_device,
            "audio.block_size": args.blocksize,
            "web.port": args.web_port,
            "loop.enabled": True if args.loop is not None else None,
            "loop.bpm": args.loop or None,
        }
    )
    socket_file = args.socket or socket_path()
    claim = InstanceClaim(
        socket_file, config.midi.virtual_port
    )  # before any port opens: one instrument per port and socket
    terminal = Terminal(live_status=not args.no_status)
    instrument = Instrument(config, args.model, say=terminal.say, socket_file=socket_file)
    stop = threading.Event()
    # SIGHUP does not reload the config (engine sizes, ports and the model are fixed at start); like
    # a closed terminal, it stops cleanly. systemd's restart is the reload (see the README).
    # A stop signal often reaches the whole process group, the audio process too: the instrument
    # is told at once, so the audio process ending first is not taken for a crash.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: (instrument.stopping(), stop.set()))
        # Restart what the signal interrupts: libjack's requests made on this thread complain of EINTR.
        signal.siginterrupt(sig, False)
    try:
        instrument.start()
        block = instrument.audio.block_size
        print(
            f"latent-snare: ready: model {instrument.worker.now_playing.model.name}, {instrument.sample_rate} Hz, block {block} "
            f"({block / instrument.sample_rate * 1e3:.1f} ms, {instrument.audio.backend}); MIDI in: {', '.join(instrument.midi.connected()) or 'none'}; "
            f"knobs CC{instrument.router.controls['midi.cc_x']}/CC{instrument.router.controls['midi.cc_y']}; "
            + (f"page: {instrument.web.url}; " if instrument.web else "")
            + "Ctrl-C to stop",
            flush=True,
        )
        if terminal.keys:
            terminal.say(KEYS_HELP)
        with terminal.raw_keys():
            while not stop.is_set():
                key = terminal.read_key(STATUS_INTERVAL_S, stop)
                if key is not None and not terminal.handle_key(key, instrument):
                    break
                instrument.keep_audio_alive()
                instrument.explain_first_xrun()
                terminal.status(instrument.status())
    finally:
        instrument.stop()
        claim.release()
    if terminal.live:
        sys.stdout.write("\n")
    print(
        f"latent-snare: stopped ({instrument.engine.stats.notes} notes, {instrument.audio.own_xruns} own xruns, "
        f"{instrument.audio.callback_errors} callback errors)",
        flush=True,
    )
    return 0
