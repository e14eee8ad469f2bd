"""MIDI in: port selection by name, and messages turned into engine events and knob moves.

`MidiRouter` is pure logic (tested with plain mido messages, no ports).
`MidiPorts` owns the rtmidi ports: a virtual input a DAW sends to, plus every
hardware input whose name matches the config's patterns, rescanned every
`reconnect_s` so a replugged controller comes back by itself.
"""

from __future__ import annotations

import ctypes
import fnmatch
import logging
import platform
import threading
from pathlib import Path

import mido

from ..core.events import ALL_NOTES_OFF, ALL_SOUND_OFF, CONTINUE, LOOP_TOGGLE, START, STOP, Clock, Loop, NoteOff, NoteOn
from ..core.names import CLIENT_NAME
from ..errors import UserError
from ..rt import jack as rt_jack
from ..rt.structs import ROUTE_IGNORE, ROUTE_LOOP, ROUTE_MAIN, ROUTE_OMNI, ROUTE_PLAY, NoteRoutes

log = logging.getLogger(__name__)

CC_ALL_SOUND_OFF = 120
CC_ALL_NOTES_OFF = 123
RTMIDI_APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE"}
PLATFORM_APIS = {"Linux": ("alsa", "jack"), "Darwin": ("coremidi", "jack")}  # elsewhere only auto


# --- pure helpers ------------------------------------------------------------------------------


def match_ports(names: list[str], include: tuple, exclude: tuple) -> list[str]:
    """Port names matching any include pattern and no exclude pattern (case-insensitive wildcards)."""

    def hit(name, patterns):
        return any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns)

    return [n for n in names if hit(n, include) and not hit(n, exclude)]


HARDWARE_BRIDGES = ("a2j:*", "system:midi_capture*")  # JACK names of hardware ports that may lack the physical flag


def choose_jack_inputs(ports: list[tuple[str, bool]], config) -> list[str]:
    """The JACK MIDI outputs to connect, from (name, is_physical) pairs: hardware ports (physical,
    or bridged from ALSA) matching `config.inputs`, and any port matching `config.software_inputs`."""
    hardware = [name for name, physical in ports if physical or match_ports([name], HARDWARE_BRIDGES, ())]
    wanted = set(match_ports(hardware, config.inputs, config.exclude))
    wanted |= set(match_ports([name for name, _ in ports], config.software_inputs, config.exclude))
    return [name for name, _ in ports if name in wanted]


def check_api(api: str) -> None:
    """UserError for an API this platform lacks (coremidi on Linux), named before any port opens."""
    allowed = ("auto", *PLATFORM_APIS.get(platform.system(), ()))
    if api not in allowed:
        raise UserError(f"midi.api {api} is not available on {platform.system()}; use {', '.join(allowed)}")


def resolve_api(api: str) -> str:
    """Config api name -> a mido rtmidi backend API name. auto prefers a running JACK server on Linux
    without an ALSA sequencer, then the platform's native API."""
    check_api(api)
    if api in RTMIDI_APIS:
        return RTMIDI_APIS[api]
    system = platform.system()
    if system == "Darwin":
        return RTMIDI_APIS["coremidi"]
    if system == "Windows":
        return "WINDOWS_MM"
    if not Path("/dev/snd/seq").exists() and rt_jack.server_running():
        return RTMIDI_APIS["jack"]
    return RTMIDI_APIS["alsa"]


def open_scanner(rtmidi_api: str):
    """One rtmidi input used only to list ports. Keep it open: on JACK every client open/close
    rebuilds the graph and can stall the audio (mido's get_input_names() opens one per call)."""
    import rtmidi

    return rtmidi.MidiIn(getattr(rtmidi, f"API_{rtmidi_api}"), name=f"{CLIENT_NAME}-scan")


def input_names(api: str) -> list[str]:
    """MIDI input names for a config api name (for `latent-snare devices`)."""
    scanner = open_scanner(resolve_api(api))
    try:
        return scanner.get_ports()
    finally:
        scanner.delete()


LEARN_TARGETS = {  # what MIDI learn can assign -> (config key for a CC, config key for a note or None)
    "x": ("midi.cc_x", None),
    "y": ("midi.cc_y", None),
    "loop": ("loop.toggle_cc", "loop.toggle_note"),
    "save": ("save.cc", "save.note"),
}
TRANSPORT = {"start": START, "stop": STOP, "continue": CONTINUE}  # mido's type -> the engine's event
BUTTON_ON = 64  # a CC button counts as pressed at this value or above


class MidiRouter:
    """Turns MIDI messages into engine events, knob turns and actions. Never raises on odd input.

    Runs on rtmidi's threads: it only posts events and calls the callbacks, which must return
    at once (saving and model loading are handed to other threads by the service). It keeps no
    knob position: each turn goes to `on_turn`, whose owner (the decode worker) merges it."""

    def __init__(self, config, engine, on_turn, on_save=None, on_program=None):
        midi = config.midi
        self.engine = engine
        self.on_turn = on_turn  # called with (axis, cc): axis 0 is x, 1 is y
        self.on_save = on_save or (lambda: None)
        self.on_program = on_program or (lambda program: None)
        self.channel = None if midi.channel == "omni" else midi.channel - 1  # mido counts from 0
        # The assignable controls, by config key; MIDI learn rewrites them while playing.
        self.controls = {
            "midi.cc_x": midi.cc_x,
            "midi.cc_y": midi.cc_y,
            "loop.toggle_cc": config.loop.toggle_cc,
            "loop.toggle_note": config.loop.toggle_note,
            "save.cc": config.save.cc,
            "save.note": config.save.note,
        }
        self.triggers = frozenset(midi.trigger_notes)
        self._button_down: dict[int, bool] = {}
        self._learning = None  # (target, callback) while waiting for the control to move
        self.routes = NoteRoutes()  # what the audio thread does with each note it reads in the cycle
        self._update_routes()

    def handle_bytes(self, data: bytes) -> None:
        """Raw MIDI the JACK cycle handed back (host/jack_output.py): a malformed message from a device is
        dropped, and a bug is logged, never raised into the thread that keeps draining."""
        try:
            self.handle(mido.Message.from_bytes(data))
        except ValueError:
            pass
        except Exception:
            log.exception("MIDI message %s could not be handled", data.hex(" "))

    def handle(self, msg: mido.Message) -> None:
        kind = msg.type
        if kind == "clock":  # clock and transport: no channel
            self.engine.post(Clock())
            return
        if kind in TRANSPORT:
            self.engine.post(TRANSPORT[kind])
            return
        if kind not in ("note_on", "note_off", "control_change", "program_change"):
            return  # sysex, active sensing, aftertouch...: never disturb playback
        if self.channel is not None and msg.channel != self.channel:
            return
        if self._learning and self._learn(msg):
            return
        if kind == "control_change":
            self._control(msg.control, msg.value)
        elif kind == "program_change":
            self.on_program(msg.program)
        else:
            self._note(msg.note, msg.velocity if kind == "note_on" else 0)

    def share_routes(self, routes: NoteRoutes) -> None:
        """Keep the note routes in `routes` from now on (the audio process reads them in its cycle)."""
        ctypes.memmove(ctypes.addressof(routes), ctypes.addressof(self.routes), ctypes.sizeof(NoteRoutes))
        self.routes = routes

    def assign(self, key: str, number: int) -> None:
        """Give control `key` (a key of `controls`) the CC or note `number` (-1: none)."""
        self.controls[key] = number
        self._update_routes()

    def _update_routes(self) -> None:
        """Rewrite the note routes after the assignments or learning changed. Each byte is one store,
        so the audio thread reads every note either before or after, never torn."""
        c = self.controls
        for note in range(128):
            if self._learning or note == c["save.note"]:
                route = ROUTE_MAIN  # saving writes files, learning changes the assignments: not in the cycle
            else:
                route = (ROUTE_PLAY if not self.triggers or note in self.triggers else 0) | (
                    ROUTE_LOOP if note == c["loop.toggle_note"] else 0
                )
                route = route or ROUTE_IGNORE
            self.routes.note[note] = route
        self.routes.channel = ROUTE_OMNI if self.channel is None else self.channel

    def _note(self, note: int, velocity: int, offset: int = 0) -> None:
        """velocity 0 is a note-off (a note_on with velocity 0 is running status's note-off)."""
        if velocity > 0 and note == self.controls["loop.toggle_note"]:
            self.engine.post(LOOP_TOGGLE)
        elif velocity > 0 and note == self.controls["save.note"]:
            self.on_save()
        elif self.triggers and note not in self.triggers:
            return
        elif velocity > 0:
            self.engine.post(NoteOn(velocity, offset))
        else:
            self.engine.post(NoteOff(offset))

    def _control(self, control: int, value: int) -> None:
        c = self.controls
        if control == CC_ALL_SOUND_OFF:
            self.engine.post(ALL_SOUND_OFF)
        elif control == CC_ALL_NOTES_OFF:
            self.engine.post(ALL_NOTES_OFF)
        elif control in (c["midi.cc_x"], c["midi.cc_y"]):
            self.on_turn(0 if control == c["midi.cc_x"] else 1, value)
        elif control == c["loop.toggle_cc"]:
            self.engine.post(Loop(value >= BUTTON_ON))
        elif control == c["save.cc"] and self._pressed(control, value):
            self.on_save()

    def _pressed(self, control: int, value: int) -> bool:
        """True once per press of a CC button (it sends 127 then 0; a held button repeats)."""
        down, self._button_down[control] = self._button_down.get(control, False), value >= BUTTON_ON
        return value >= BUTTON_ON and not down

    def learn(self, target: str, callback) -> None:
        """The next free CC (or, for loop and save, a note-on) is assigned to `target`, and
        `callback(key, number)` hears which. Controls that already have another job are
        played as usual and listed in `learn_skipped` (the knob just learned is often still
        turning when the next one is asked for)."""
        if target not in LEARN_TARGETS:
            raise UserError(f"cannot learn {target!r}; allowed: {', '.join(LEARN_TARGETS)}")
        self.learn_skipped: dict[str, str] = {}
        self._learning = (target, callback)
        self._update_routes()

    def cancel_learning(self) -> None:
        self._learning = None
        self._update_routes()

    def _learn(self, msg) -> bool:
        target, callback = self._learning
        cc_key, note_key = LEARN_TARGETS[target]
        if msg.type == "control_change" and msg.control not in (CC_ALL_SOUND_OFF, CC_ALL_NOTES_OFF):
            key, number = cc_key, msg.control
        elif msg.type == "note_on" and msg.velocity > 0 and note_key:
            key, number = note_key, msg.note
        else:
            return False  # not something this target can learn: play it as usual
        is_note = key == note_key
        taken = [
            k
            for k, v in self.controls.items()
            if v == number and k.endswith("note") == is_note and k not in (cc_key, note_key)
        ]
        if taken:
            self.learn_skipped[f"{'note' if is_note else 'CC'} {number}"] = taken[0]
            return False
        self._learning = None
        self.assign(key, number)
        if note_key:  # a trigger is either a CC or a note: the other one is unassigned
            self.assign(note_key if key == cc_key else cc_key, -1)
        callback(key, number)
        return True


class RtInput:
    """One rtmidi input (virtual, or connected to the port at `source`) that hands mido messages
    to `callback`. mido's own open_input() turns every port opened with a client name into a
    virtual one, so ports are opened here with python-rtmidi directly; mido only parses."""

    def __init__(self, rtmidi_api: str, callback, name: str, source: str | None = None):
        import rtmidi

        self._callback = callback
        self._rt = rtmidi.MidiIn(getattr(rtmidi, f"API_{rtmidi_api}"), name=CLIENT_NAME)
        self._rt.ignore_types(sysex=True, timing=False, active_sense=True)  # clock stays: the loop may follow it
        try:
            if source is None:
                self._rt.open_virtual_port(name)
            else:
                # Look the index up on this very client: indices shift whenever a port comes or goes.
                self._rt.open_port(self._rt.get_ports().index(source), name=name)
        except Exception:
            self._rt.delete()
            raise
        self._rt.set_callback(self._on_bytes)

    def _on_bytes(self, event, _data) -> None:
        try:
            msg = mido.Message.from_bytes(event[0])
        except (ValueError, TypeError):
            return  # a malformed message from a device is not ours to report on every byte
        try:
            self._callback(msg)
        except Exception:  # rtmidi's thread must survive anything a message does
            log.exception("MIDI message %r could not be handled", msg)

    def close(self) -> None:
        self._rt.cancel_callback()
        self._rt.close_port()
        self._rt.delete()


class MidiPorts:
    """Opens the virtual port and the matching hardware inputs; reconnects by name."""

    def __init__(self, config, handler):
        self.config = config
        self.handler = handler
        self.api = resolve_api(config.api)
        try:
            self._scanner = open_scanner(self.api)
        except Exception as err:
            raise UserError(
                f"MIDI api {config.api!r} ({self.api}) is not available here: {err}; "
                f"try --midi-api with one of {', '.join(RTMIDI_APIS)}"
            ) from err
        self.virtual = None
        self.inputs: dict[str, object] = {}
        self._lock = threading.Lock()  # guards `inputs` between the rescan thread and close()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rescan_loop, name="midi-rescan", daemon=True)

    def open(self) -> MidiPorts:
        if self.config.virtual_port:
            if self.api == "WINDOWS_MM":
                raise UserError(
                    'Windows MIDI has no virtual ports: set midi.virtual_port to "" and '
                    "use a loopback driver such as loopMIDI, listed under midi.inputs"
                )
            try:
                self.virtual = RtInput(self.api, self.handler, self.config.virtual_port)
            except Exception as err:
                raise UserError(f"cannot open virtual MIDI port {self.config.virtual_port!r}: {err}") from err
        self.rescan()
        self._thread.start()
        return self

    def available(self) -> list[str]:
        try:
            return self._scanner.get_ports()
        except Exception:
            return []

    def rescan(self) -> None:
        names = self.available()
        # rtmidi cannot tell hardware from software ports: both lists open whatever they match.
        wanted = match_ports(names, self.config.inputs + self.config.software_inputs, self.config.exclude)
        with self._lock:
            for name in list(self.inputs):
                if name not in names:  # unplugged: close it, it will be reopened when it comes back
                    self._close_port(self.inputs.pop(name))
                    log.warning("MIDI input %r disappeared", name)
            for name in wanted:
                if name not in self.inputs:
                    try:
                        self.inputs[name] = RtInput(self.api, self.handler, "in", source=name)
                        log.info("MIDI input %r connected", name)
                    except Exception as err:
                        log.warning("MIDI input %r could not be opened: %s", name, err)

    def _rescan_loop(self) -> None:
        while not self._stop.wait(self.config.reconnect_s):
            self.rescan()

    def connected(self) -> list[str]:
        names = [self.config.virtual_port + " (virtual)"] if self.virtual else []
        with self._lock:
            return names + list(self.inputs)

    @staticmethod
    def _close_port(port) -> None:
        try:
            port.close()
        except Exception:
            pass  # a vanished device may refuse to close cleanly; nothing more to release

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        with self._lock:
            for port in self.inputs.values():
                self._close_port(port)
            self.inputs.clear()
        if self.virtual is not None:
            self._close_port(self.virtual)
            self.virtual = None
        self._scanner.delete()
