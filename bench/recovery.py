"""Recovery: how soon the instrument plays again after its audio process or its JACK server dies.

    .venv/bin/python -m bench.recovery [--trials 5] [--backends jack portaudio] [--no-stress]

Each trial plays a hit, then either kills the audio process (SIGKILL, mid-play) and sends a note
every 20 ms until one is heard, or kills the JACK server, notes when the service says it went
away, starts a new server and notes when the service says it reopened. The same trials run on
an idle machine and beside `stress-ng --cpu 1` in one run, so the two columns compare. The e2e
tests (tests/e2e/test_faults.py) check that it comes back, at the same knobs; how soon is
measured here, because a timed assertion fails on a loaded machine for reasons of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from instrument.host.jack_output import CONNECTIONS_EVERY_S
from tests.jackrig import Rig, ServiceProcess, first_sound, service_state, start_jackd, stop_process

from .jackbench import SERVER, machine

GIVE_UP_S = 10.0


def seconds_until(condition, start: float) -> float | None:
    while time.monotonic() - start < GIVE_UP_S:
        if condition():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def heard_again(rig, source: str, start: float) -> float | None:
    """Notes every 20 ms until one sounds (a PortAudio stream restarted connects only to its
    device, so the recorder reconnects each turn, as a user would)."""
    import jack

    while time.monotonic() - start < GIVE_UP_S:
        with contextlib.suppress(jack.JackError):
            rig.rec_client.connect(source, rig.audio_ins[0])
        if first_sound(rig.audio(rig.note(), rig.period * 4)) is not None:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def said(service, text: str, after: int) -> bool:
    return any(text in line for line in service.lines[after:])


def trials(backend: str, n: int, workdir: Path) -> dict:
    config = workdir / "recovery.yaml"
    config.write_text("midi:\n  inputs: []\nsave:\n  drop_folder: ''\n")
    jackd = start_jackd(name=SERVER, realtime=False)
    service = ServiceProcess(
        ["--config", str(config), "--audio-backend", backend], server=SERVER, log_path=workdir / f"{backend}.log"
    )
    out = {"restart": [], "noticed": [], "reopened": []}
    try:
        with Rig(server=SERVER, audio_sources=(service.audio_source,)) as rig:
            time.sleep(2 * CONNECTIONS_EVERY_S)  # the routing is older than the crash: the service has noted it
            for _ in range(n):
                rig.note()  # mid-play: the hit still rings when its process dies
                time.sleep(0.1)
                os.kill(service_state()["audio_pid"], signal.SIGKILL)
                out["restart"].append(heard_again(rig, service.audio_source, time.monotonic()))
                time.sleep(1.6)  # the notes that found it ring out
        for _ in range(n):
            seen = len(service.lines)
            jackd.kill()
            killed = time.monotonic()
            jackd.wait()
            out["noticed"].append(seconds_until(lambda: said(service, "went away", seen), killed))
            jackd = start_jackd(name=SERVER, realtime=False)
            out["reopened"].append(seconds_until(lambda: said(service, "is back; reopened", seen), time.monotonic()))
    finally:
        service.stop()
        stop_process(jackd)
    return out


def cell(values: list[float | None]) -> str:
    done = [v for v in values if v is not None]
    missed = len(values) - len(done)
    text = f"{np.median(done):.2f} / {max(done):.2f}" if done else "–"
    return text + (f" ({missed} never)" if missed else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--backends", nargs="+", choices=["jack", "portaudio"], default=["jack", "portaudio"])
    parser.add_argument("--no-stress", action="store_true", help="only the idle machine")
    args = parser.parse_args()
    loads = ["idle"] if args.no_stress or shutil.which("stress-ng") is None else ["idle", "stress-ng --cpu 1"]
    workdir = Path(tempfile.mkdtemp(prefix="latent-snare-recovery-"))
    os.environ["LATENT_SNARE_ARTIFACTS"] = str(workdir)
    rows = []
    for load in loads:
        stress = None if load == "idle" else subprocess.Popen(["stress-ng", "--cpu", "1", "--quiet"])
        try:
            for backend in args.backends:
                print(f"{backend}, {load}: {args.trials} trials", file=sys.stderr)
                rows.append((backend, load, trials(backend, args.trials, workdir)))
        finally:
            if stress:
                stop_process(stress)
    print(f"recovery: {args.trials} trials each ({machine()})\n")
    print(
        "| backend | load | audio process killed → heard again, s | server died → noticed, s | server back → reopened, s |"
    )
    print("|---|---|---:|---:|---:|")
    for backend, load, r in rows:
        print(f"| {backend} | {load} | {cell(r['restart'])} | {cell(r['noticed'])} | {cell(r['reopened'])} |")
    print(f"\nMedian / max over the trials. Logs in {workdir}")


if __name__ == "__main__":
    main()
