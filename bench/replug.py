"""Replug: a MIDI controller plugged in, played and unplugged 100 times. Does anything leak?

    .venv/bin/python -m bench.replug [--cycles 100] [--backends jack portaudio] [--rescan-s 0.25]

The controller is a JACK MIDI client named `rig-midi`; the service (no virtual
port, `midi.software_inputs: ["rig-midi:*"]`) must find it, play its note, and notice
it is gone, every cycle. `--rescan-s` shortens the service's rescan interval
(`midi.reconnect_s`, 1 s by default) so 100 cycles take minutes, not many;
the code path is the same. The service's resident memory, threads and open
file descriptors, and the JACK ports it holds, are sampled after the first
cycle and at the end. Targets: every cycle found, heard and noticed within
2 s; threads, fds and ports unchanged; RSS growth under 5 %.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.jackrig import Rig, ServiceProcess, first_sound, service_inputs, start_jackd, stop_process

from .jackbench import SERVER, machine, process_sample, stop_counts

FIND_TIMEOUT_S = NOTICE_TIMEOUT_S = 5.0
SILENT = 1e-4


def wait_until(condition, timeout_s: float, start: float | None = None) -> float | None:
    """Seconds from `start` (default: now) until condition() holds, or None if it never did in time."""
    start = time.monotonic() if start is None else start
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(0.01)
    return None


def service_ports(probe) -> int:
    """JACK ports owned by the service's clients (its own, PortAudio's and rtmidi's)."""
    return len([p for p in probe.get_ports() if p.name.startswith("latent-snare")])


def replug_cycles(backend: str, cycles: int, rescan_s: float, workdir: Path) -> dict:
    import jack

    config = workdir / f"hardware-only-{backend}.yaml"
    config.write_text(
        f'midi:\n  virtual_port: ""\n  inputs: []\n  software_inputs: ["rig-midi:*"]\n  exclude: []\n  reconnect_s: {rescan_s}\n'
        'save:\n  drop_folder: ""\n'
    )
    service = ServiceProcess(
        ["--config", str(config), "--audio-backend", backend],
        server=SERVER,
        log_path=workdir / f"service-{backend}.log",
    )
    probe = jack.Client("bench-probe", servername=SERVER, no_start_server=True)
    found, heard, noticed, samples = [], 0, [], []
    try:
        for cycle in range(cycles):
            plugged_in = time.monotonic()
            rig = Rig(server=SERVER, midi_targets=(), audio_sources=(service.audio_source,), record_seconds=3)
            try:
                found_s = wait_until(
                    lambda: rig.midi_client.get_all_connections(rig.midi_out), FIND_TIMEOUT_S, plugged_in
                )
                if found_s is not None:
                    found.append(found_s)
                    sent = rig.note(38, 127)
                    audio = rig.audio(sent, int(0.2 * rig.rate))
                    before = rig.audio(sent - rig.period, rig.period)  # the last cycle's snare was silenced
                    heard += first_sound(audio) is not None and np.max(np.abs(before)) < SILENT
                    rig.audio(rig.cc(120, 0), 4 * rig.period)  # all sound off, so the next cycle starts silent
            finally:
                rig.close()
            noticed_s = wait_until(lambda: not service_inputs(), NOTICE_TIMEOUT_S)
            if noticed_s is not None:
                noticed.append(noticed_s)
            if cycle == 0 or cycle == cycles - 1:
                samples.append((*process_sample(service.proc.pid), service_ports(probe)))
            print(f"\r{backend}: cycle {cycle + 1}/{cycles}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    finally:
        probe.close()
        exit_code = service.stop()
    stop = stop_counts(service)
    return {
        "found": found,
        "heard": heard,
        "noticed": noticed,
        "first": samples[0],
        "last": samples[-1],
        "own_xruns": stop[1] if stop else "n/a",
        "exit": exit_code,
    }


def seconds(values: list[float]) -> str:
    return f"{np.median(values):.2f} / {max(values):.2f}" if values else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--backends", nargs="+", choices=["jack", "portaudio"], default=["jack", "portaudio"])
    parser.add_argument("--rescan-s", type=float, default=0.25, help="the service's midi.reconnect_s (0.1 to 60)")
    parser.add_argument("--period", type=int, default=128)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="latent-snare-replug-"))
    os.environ["LATENT_SNARE_ARTIFACTS"] = str(workdir)
    jackd = start_jackd(period=args.period, name=SERVER, realtime=False)  # as measured for bench/README.md
    try:
        results = {backend: replug_cycles(backend, args.cycles, args.rescan_s, workdir) for backend in args.backends}
    finally:
        stop_process(jackd)
    print(f"replug: {args.cycles} cycles, rescan every {args.rescan_s:g} s ({machine()})\n")
    print(
        "| backend | found | heard | unplug noticed | find s, median / max | notice s, median / max "
        "| threads | fds | JACK ports | RSS MB | own xruns | exit |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for backend, r in results.items():
        (rss0, threads0, fds0, ports0), (rss1, threads1, fds1, ports1) = r["first"], r["last"]
        print(
            f"| {backend} | {len(r['found'])} | {r['heard']} | {len(r['noticed'])} | {seconds(r['found'])} "
            f"| {seconds(r['noticed'])} | {threads0} → {threads1} | {fds0} → {fds1} | {ports0} → {ports1} "
            f"| {rss0 / 1024:.1f} → {rss1 / 1024:.1f} ({100 * (rss1 - rss0) / rss0:+.1f} %) | {r['own_xruns']} | {r['exit']} |"
        )
    print(f"\nAfter the first cycle → after the last. Logs in {workdir}")


if __name__ == "__main__":
    main()
