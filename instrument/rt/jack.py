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

from ..core.names import CLIENT_NAME


def server_running() -> bool:
    if jack is None:
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


class NoServer(Exception):
    """No JACK server answers (or no libjack on this machine)."""


def open_client(role: str = ""):
    """A client of the running server named CLIENT_NAME (suffixed by `role`); never starts a server."""
    if jack is None:
        raise NoServer("libjack is not installed")
    try:
        return jack.Client(f"{CLIENT_NAME}-{role}" if role else CLIENT_NAME, no_start_server=True)
    except jack.JackOpenError as err:
        raise NoServer("no JACK server answers") from err


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
