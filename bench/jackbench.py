"""Shared set-up for the JACK benchmarks: a private dummy server with the instrument and FluidSynth side by side.

Both instruments get the same MIDI from one rig port in the same period and are
recorded on the server's frame clock, so every figure is a side-by-side ratio
from one run on one machine. xruns are attributed by client name from jackd's
own log (`JackEngine::XRun: client = NAME was not finished`).

The benchmarks are modules of the `bench` package, run from the repository root
(`.venv/bin/python -m bench.latency`), so they import `instrument` and the JACK
rig (`tests.jackrig`) like any package.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path

from tests.jackrig import Rig, ServiceProcess, start_jackd, stop_process

SERVER = "latent-snare-bench"
# FluidSynth's GM soundfont; Debian's smaller TimGM6mb where fluid-soundfont-gm is not installed.
SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/TimGM6mb.sf2"))
SOUNDFONT = next((font for font in SOUNDFONTS if font.exists()), SOUNDFONTS[0])
FLUID_AUDIO = "fluidsynth-midi:left"
SOURCES = ("latent-snare", "fluidsynth")  # recording index -> instrument name in the tables
# jackd names each client a late cycle caught, and its state: "Running" (its callback was still
# working), or "Triggered" (woken, but not yet given the CPU: the whole graph stalled).
XRUN_LINE = re.compile(r"client = (\S+) was not finished(?:, state = (\w+))?")
STOP_LINE = re.compile(r"stopped \((\d+) notes, (\d+) own xruns, (\d+) callback errors\)")


def require_fluidsynth() -> None:
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        sys.exit("bench: needs FluidSynth as the peer: apt-get install -y fluidsynth fluid-soundfont-gm")


def start_fluidsynth(rate: int, period: int) -> subprocess.Popen:
    # Reverb and chorus off: their tails would hide the next onset. Same rate and period as the server.
    env = dict(os.environ, JACK_DEFAULT_SERVER=SERVER)
    proc = subprocess.Popen(
        [
            "fluidsynth",
            "-a",
            "jack",
            "-m",
            "jack",
            "-i",
            "-s",
            "-R",
            "0",
            "-C",
            "0",
            "-r",
            str(rate),
            "-z",
            str(period),
            "-o",
            "midi.autoconnect=0",
            "-o",
            "audio.jack.autoconnect=0",
            str(SOUNDFONT),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    import jack

    probe = jack.Client("bench-probe", servername=SERVER, no_start_server=True)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if probe.get_ports(FLUID_AUDIO) and probe.get_ports("fluidsynth-midi:midi"):
                return proc
            time.sleep(0.1)
    finally:
        probe.close()
    stop_process(proc)
    raise RuntimeError("fluidsynth did not register its JACK ports within 15 s")


@contextlib.contextmanager
def side_by_side(
    period: int,
    rate: int = 48_000,
    record_seconds: int = 90,
    service_args: tuple[str, ...] = (),
    realtime: bool = False,
    audio_in_process: bool = False,
):
    """Yields (rig, jackd_log_path, service, fluidsynth_proc): both instruments driven by the rig."""
    workdir = Path(tempfile.mkdtemp(prefix="latent-snare-bench-"))
    os.environ["LATENT_SNARE_ARTIFACTS"] = str(workdir)
    config = workdir / "virtual-only.yaml"
    config.write_text("midi:\n  inputs: []\n" + ("audio:\n  separate_process: false\n" if audio_in_process else ""))
    jackd = start_jackd(period=period, rate=rate, name=SERVER, realtime=realtime)
    procs = [jackd]
    try:
        service = ServiceProcess(
            ["--config", str(config), "--blocksize", str(period), *service_args],
            server=SERVER,
            log_path=workdir / "service.log",
        )
        procs.insert(0, service.proc)
        fluidsynth = start_fluidsynth(rate, period)
        procs.insert(0, fluidsynth)
        rig = Rig(
            server=SERVER,
            midi_targets=("latent-snare:Latent Snare", "fluidsynth-midi:midi_00"),
            audio_sources=(service.audio_source, FLUID_AUDIO),
            record_seconds=record_seconds,
        )
        try:
            yield rig, workdir / f"jackd-{SERVER}.log", service, fluidsynth
        finally:
            rig.close()
    finally:
        for proc in procs:
            stop_process(proc)


def xruns_by_client(jackd_log: Path) -> Counter:
    return Counter(client for client, _state in XRUN_LINE.findall(jackd_log.read_text(errors="replace")))


def xruns_by_state(jackd_log: Path) -> Counter:
    """{(client, state): count}: whether each xrun caught the client's callback running."""
    return Counter(XRUN_LINE.findall(jackd_log.read_text(errors="replace")))


def stop_counts(service: ServiceProcess, timeout_s: float = 2.0) -> tuple[int, int] | None:
    """(notes played, own xruns) from the stopped service's last line, which arrives after it exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stop = next((m for m in map(STOP_LINE.search, service.lines) if m), None)
        if stop:
            return int(stop[1]), int(stop[2])
        time.sleep(0.05)
    return None


def process_sample(pid: int) -> tuple[int, int, int]:
    """(RSS in kB, threads, open file descriptors) of a running process."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    return rss_kb, len(list(Path(f"/proc/{pid}/task").iterdir())), len(list(Path(f"/proc/{pid}/fd").iterdir()))


def machine() -> str:
    return f"{date.today()}, {os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}, JACK dummy driver"
