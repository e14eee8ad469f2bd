"""JACK for both processes: is a server there, a client opened under the instrument's name, the
speaker wiring, and the raw addresses the C cycle needs.

`import jack` loads libjack; this module is imported only where JACK is the backend, or to ask
whether a server runs. The raw addresses come from JACK-Client's private `_ffi`, `_ptr` and
`_libname` (there is no public way to them): pyproject.toml bounds its version for that.
"""

from __future__ import annotations

try:
    import jack
except OSError:  # no libjack on this machine: no JACK server either
    jack = None

import contextlib
import os
from pathlib import Path

from ..core.names import CLIENT_NAME

# What a PipeWire desktop runs instead of jackd: its JACK library stands in for jackd's only
# where `pw-jack` puts it first on the linker's path (Debian and Ubuntu keep jackd2's libjack).
PW_JACK_ADVICE = (
    "PipeWire runs here: start the instrument as `pw-jack latent-snare run` (Debian/Ubuntu package "
    "pipewire-jack) for notes at their exact frame, or play through PortAudio and pipewire-alsa "
    "(--audio-backend portaudio)"
)
PORTAUDIO_ON_PIPEWIRE = (
    "audio: PipeWire runs here and no JACK server answers, so PortAudio plays through pipewire-alsa "
    "(a note sounds one block late); `pw-jack latent-snare run` plays each note at its exact frame "
    "(Debian/Ubuntu package pipewire-jack)"
)


@contextlib.contextmanager
def libjack_quiet():
    """A missing server is an answer, not an error: keep libjack's own lines off the terminal."""
    jack.set_error_function(lambda _msg: None)
    jack.set_info_function(lambda _msg: None)
    try:
        yield
    finally:
        jack.set_error_function(None)  # back to libjack's defaults, for a server that is really there
        jack.set_info_function(None)


def server_running() -> bool:
    if jack is None:
        return False
    with libjack_quiet():
        try:
            jack.Client(f"{CLIENT_NAME}-probe", no_start_server=True).close()
            return True
        except jack.JackOpenError:
            return False


def pipewire_runs() -> bool:
    """A PipeWire server's socket is there (where its clients look for it)."""
    runtime = os.environ.get("PIPEWIRE_RUNTIME_DIR") or os.environ.get("XDG_RUNTIME_DIR")
    remote = os.environ.get("PIPEWIRE_REMOTE", "pipewire-0")
    return bool(runtime) and (Path(runtime) / remote).is_socket()


def pipewire_libjack() -> bool:
    """The libjack this process loaded is PipeWire's (run under `pw-jack`)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    return any("libjack.so" in line and "pipewire" in line for line in maps.splitlines())


def no_server_advice() -> str:
    """What to do when no JACK server answers, for the machine at hand."""
    if pipewire_runs() and not pipewire_libjack():
        return f"no JACK server answers; {PW_JACK_ADVICE}"
    return "no JACK server answers: start jackd (or choose audio.backend: portaudio)"


class NoServer(Exception):
    """No JACK server answers (or no libjack on this machine)."""


def open_client(role: str = ""):
    """A client of the running server named CLIENT_NAME (suffixed by `role`); never starts a server."""
    if jack is None:
        raise NoServer("libjack is not installed")
    try:
        with libjack_quiet():
            return jack.Client(f"{CLIENT_NAME}-{role}" if role else CLIENT_NAME, no_start_server=True)
    except jack.JackOpenError as err:
        raise NoServer(no_server_advice()) from err


def connect_speakers(client, outs: list, warn) -> None:
    """Like PortAudio, play out of the machine's speakers: the first outputs to the first speakers;
    `warn(message)` hears what could not be connected."""
    speakers = client.get_ports(is_physical=True, is_input=True, is_audio=True)
    for i, speaker in enumerate(speakers[: max(2, len(outs))]):
        out = outs[i % len(outs)]
        try:
            client.connect(out, speaker)
        except jack.JackError as err:
            warn(f"could not connect {out.name} to {speaker.name}: {err}")


def address(client_or_port) -> int:
    """The C pointer of a JACK-Client client or port."""
    return int(jack._ffi.cast("uintptr_t", client_or_port._ptr))


def libjack_name() -> str:
    """The name JACK-Client loaded libjack by."""
    return jack._libname
