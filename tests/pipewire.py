"""A PipeWire server for the end-to-end tests, headless, as a desktop session runs it: a session
bus (`dbus-daemon --session`), `pipewire`, `wireplumber` and a null sink, all in a runtime
folder private to the test (its own `XDG_RUNTIME_DIR`), so no user's session is touched.

JACK clients reach it through `pw-jack`, which puts PipeWire's libjack first on the linker's
path: a process loads one libjack for good, so anything that talks JACK to this server (the
instrument, the listener in tests/pwlisten.py) runs as a child under `pw-jack`. ALSA programs
(PortAudio's ALSA host API) reach it through pipewire-alsa's `default` device.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .jackrig import stop_process

BINARIES = {"dbus-daemon": "dbus", "pipewire": "pipewire", "wireplumber": "wireplumber", "pw-cli": "pipewire-bin"}
BINARIES |= {"pw-jack": "pipewire-jack"}
# Not "null": PipeWire's parser reads `node.name=null` as JSON null.
SINK = "rig-sink"
SINK_PROPS = (
    f"{{ factory.name=support.null-audio-sink node.name={SINK} media.class=Audio/Sink "
    "object.linger=true audio.position=[FL FR] }"
)
START_TIMEOUT_S = 15.0
REPO = Path(__file__).resolve().parents[1]


def missing() -> list[tuple[str, str]]:
    """(binary, Debian package) of what this rig needs and the machine lacks."""
    return [(binary, package) for binary, package in BINARIES.items() if shutil.which(binary) is None]


class PipeWireServer:
    """Start with `start()`, restart the server side with `stop_audio()` then `start_audio()`,
    end with `stop()`. `env` is the environment a client of this server runs with."""

    def __init__(self, runtime_dir: Path, log_dir: Path):
        self.runtime_dir, self.log_dir = runtime_dir, log_dir
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPEWIRE_", "JACK_", "DBUS_", "PULSE_"))}
        self.env = env | {
            "XDG_RUNTIME_DIR": str(runtime_dir),
            "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime_dir / 'bus'}",
            "PYTHONPATH": str(REPO),
        }
        self.bus = self.pipewire = self.wireplumber = None

    def _spawn(self, name: str, *command: str) -> subprocess.Popen:
        log = open(self.log_dir / f"pipewire-rig-{name}.log", "a")
        return subprocess.Popen(
            command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start(self) -> PipeWireServer:
        self.bus = self._spawn(
            "dbus", "dbus-daemon", "--session", "--nofork", f"--address=unix:path={self.runtime_dir / 'bus'}"
        )
        self._wait(lambda: (self.runtime_dir / "bus").is_socket(), "the session bus")
        self.start_audio()
        return self

    def start_audio(self) -> None:
        """PipeWire, then WirePlumber, then the null sink; returns once the sink's JACK ports show."""
        self.pipewire = self._spawn("pipewire", "pipewire")
        self._wait(lambda: (self.runtime_dir / "pipewire-0").is_socket(), "pipewire's socket")
        self.wireplumber = self._spawn("wireplumber", "wireplumber")
        self._wait(self._make_sink, f"the null sink {SINK}")

    def stop_audio(self) -> None:
        """PipeWire and WirePlumber killed, as a crash (or `systemctl --user restart pipewire`) would."""
        for proc in (self.wireplumber, self.pipewire):
            if proc is not None:
                stop_process(proc, sig=9)
        self.wireplumber = self.pipewire = None
        for leftover in ("pipewire-0", "pipewire-0.lock"):
            (self.runtime_dir / leftover).unlink(missing_ok=True)

    def stop(self) -> None:
        self.stop_audio()
        if self.bus is not None:
            stop_process(self.bus)
            self.bus = None

    def _make_sink(self) -> bool:
        if SINK in self.jack_ports():
            return True
        subprocess.run(["pw-cli", "create-node", "adapter", SINK_PROPS], env=self.env, capture_output=True, timeout=10)
        return SINK in self.jack_ports()

    def jack_ports(self) -> str:
        """The JACK port names the server shows, one a line (empty while it does not answer)."""
        script = (
            "import jack; print('\\n'.join(p.name for p in jack.Client('rig-lsp', no_start_server=True).get_ports()))"
        )
        done = subprocess.run(
            ["pw-jack", sys.executable, "-c", script], env=self.env, capture_output=True, text=True, timeout=20
        )
        return done.stdout if done.returncode == 0 else ""

    def listen(self, *args: str, timeout_s: float = 60.0) -> dict:
        """tests/pwlisten.py under pw-jack: its JSON answer."""
        done = subprocess.run(
            ["pw-jack", sys.executable, "-m", "tests.pwlisten", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=REPO,
        )
        assert done.returncode == 0, f"the listener failed: {done.stderr[-2000:]}"
        return json.loads(done.stdout.strip().splitlines()[-1])

    def _wait(self, predicate, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not predicate():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up within {START_TIMEOUT_S:.0f} s (logs in {self.log_dir})")
            time.sleep(0.05)
