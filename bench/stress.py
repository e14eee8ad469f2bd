"""Stress: 60 s of 1000 knob CCs/s and 30 notes/s into the instrument and FluidSynth side by side.

    .venv/bin/python -m bench.stress [--seconds 60] [--period 128]

Both instruments get the same MIDI stream from one rig port. Reported per
instrument: xruns that jackd attributes to its clients, the CPU it used, and
for the instrument its own underflow count and how many notes it played of
those sent (none may be lost: polyphony steals, it never drops a note-on).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from .jackbench import SOURCES, machine, require_fluidsynth, side_by_side, stop_counts, xruns_by_client

CC_PER_S, NOTES_PER_S = 1000, 30
TICK_S = 0.01  # the feeder sends one batch per 10 ms


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--period", type=int, default=128)
    args = parser.parse_args()
    require_fluidsynth()
    from instrument.config import load_config

    midi = load_config().midi
    rng = np.random.default_rng(0)
    notes_sent = 0
    with side_by_side(args.period, record_seconds=int(args.seconds + 10)) as (rig, jackd_log, service, fluidsynth):
        pids = {"latent-snare": service.proc.pid, "fluidsynth": fluidsynth.pid}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        start = time.monotonic()
        next_tick = start
        while (now := time.monotonic()) - start < args.seconds:
            batch = [
                [0xB0, int(rng.choice([midi.cc_x, midi.cc_y])), int(v)]
                for v in rng.integers(0, 128, int(CC_PER_S * TICK_S))
            ]
            due_notes = int((now - start) * NOTES_PER_S) - notes_sent
            batch += [[0x99, 38, int(v)] for v in rng.integers(1, 128, max(0, due_notes))]
            notes_sent += max(0, due_notes)
            rig.send(*batch)
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
        elapsed = time.monotonic() - start
        cpu = {name: (cpu_seconds(pid) - cpu_before[name]) / elapsed for name, pid in pids.items()}
        rig.wait_frames(int(1.0 * rig.rate))
    xruns = xruns_by_client(jackd_log)
    played, own_xruns = stop_counts(service) or (None, None)

    print(
        f"stress: {elapsed:.0f} s, {CC_PER_S} CC/s + {NOTES_PER_S} notes/s, period {args.period} at 48 kHz ({machine()})\n"
    )
    print("| instrument | its xruns | CPU (% of one core) | notes played / sent | own xruns |")
    print("|---|---:|---:|---:|---:|")
    for name in SOURCES:
        own = sum(count for client, count in xruns.items() if client.startswith(name))
        notes = f"{played} / {notes_sent}" if name == "latent-snare" else "n/a"
        under = own_xruns if name == "latent-snare" else "n/a"
        print(f"| {name} | {own} | {100 * cpu[name]:.0f} | {notes} | {under} |")
    print(f"\nxruns by client: {dict(sorted(xruns.items())) or 'none'}")


if __name__ == "__main__":
    main()
