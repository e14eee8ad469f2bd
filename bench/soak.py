"""Soak: minutes of scripted notes and knob sweeps through JACK, the instrument beside FluidSynth.

    .venv/bin/python -m bench.soak [--minutes 10] [--period 128] [--hog N] [--realtime] [--sweep-cc-per-s 20]

Notes (8/s, varied velocity) and slow sweeps of both knobs (20 CC/s each) go to
both instruments from one rig port. Every 10 s the resident memory, threads and
open file descriptors of the service and of its audio process are sampled from
/proc. Reported: xruns jackd attributes to each instrument, the service's own
count of its own xruns, and RSS, threads and fds after a 30 s warm-up
and at the end. `--hog N` runs
`stress-ng --cpu N` beside them (Debian's stress-ng) for the loaded variant;
`--realtime` runs jackd at SCHED_FIFO, as a stage machine should.
Targets: no xrun attributed to the service, RSS growth under 5 % after
warm-up, threads and fds stable.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import time

from tests.jackrig import service_state, stop_process

from .jackbench import (
    SOURCES,
    machine,
    process_sample,
    require_fluidsynth,
    side_by_side,
    stop_counts,
    xruns_by_client,
    xruns_by_state,
)

NOTES_PER_S, SWEEP_PERIOD_S = 8, 17.0
SAMPLE_EVERY_S, WARM_UP_S = 10.0, 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--period", type=int, default=128)
    parser.add_argument("--hog", type=int, default=0, metavar="N", help="stress-ng --cpu N beside the instruments")
    parser.add_argument(
        "--sweep-cc-per-s",
        type=float,
        default=20.0,
        help="CCs per second on each knob; 0 plays notes only (no decoding beside the audio)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the cycle in the service's own process (audio.separate_process: false)",
    )
    parser.add_argument(
        "--realtime", action="store_true", help="run jackd (and so every client's process thread) at SCHED_FIFO"
    )
    args = parser.parse_args()
    require_fluidsynth()
    if args.hog and shutil.which("stress-ng") is None:
        sys.exit("bench: --hog needs stress-ng: apt-get install -y stress-ng")
    from instrument.config import load_config

    midi = load_config().midi
    seconds = args.minutes * 60
    hog = (
        subprocess.Popen(["stress-ng", "--cpu", str(args.hog), "--quiet"], start_new_session=True) if args.hog else None
    )
    samples: list[tuple[float, dict[str, tuple[int, int, int]]]] = []  # (time, {process: (RSS kB, threads, fds)})
    state: dict = {}
    try:
        with side_by_side(args.period, record_seconds=10, realtime=args.realtime, audio_in_process=args.in_process) as (
            rig,
            jackd_log,
            service,
            _fluidsynth,
        ):
            start = time.monotonic()
            next_note = next_cc = next_sample = start
            notes_sent = 0
            while (now := time.monotonic()) - start < seconds:
                batch = []
                if args.sweep_cc_per_s and now >= next_cc:
                    phase = 2 * math.pi * (now - start) / SWEEP_PERIOD_S
                    batch += [
                        [0xB0, midi.cc_x, round(63.5 + 63.5 * math.sin(phase))],
                        [0xB0, midi.cc_y, round(63.5 + 63.5 * math.cos(phase * 0.7))],
                    ]
                    next_cc += 1 / args.sweep_cc_per_s
                if now >= next_note:
                    batch.append([0x99, 38, 40 + (notes_sent * 37) % 88])
                    notes_sent += 1
                    next_note += 1 / NOTES_PER_S
                if batch:
                    rig.send(*batch)
                if now >= next_sample:
                    samples.append((now - start, sample_processes(service)))
                    next_sample += SAMPLE_EVERY_S
                time.sleep(0.005)
            samples.append((time.monotonic() - start, sample_processes(service)))
            state = service_state()
        xruns, states = xruns_by_client(jackd_log), xruns_by_state(jackd_log)
    finally:
        if hog:
            stop_process(hog)
    stop = stop_counts(service)
    warm = next(s for t, s in samples if t >= WARM_UP_S) if seconds > WARM_UP_S else samples[0][1]
    end = samples[-1][1]
    load = f", beside stress-ng --cpu {args.hog}" if args.hog else ""
    load += ", mixing in the service's process" if args.in_process else ", mixing in the audio process"
    print(
        f"soak: {args.minutes:g} min, {NOTES_PER_S} notes/s + knob sweeps at {args.sweep_cc_per_s:g} CC/s per knob, period {args.period} at 48 kHz{load} ({machine()})\n"
    )
    print("| instrument | its xruns | caught running | never started | notes played / sent | own xruns |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in SOURCES:
        own = sum(count for client, count in xruns.items() if client.startswith(name))
        running = sum(n for (client, state), n in states.items() if client.startswith(name) and state == "Running")
        waiting = sum(n for (client, state), n in states.items() if client.startswith(name) and state == "Triggered")
        played = f"{stop[0]} / {notes_sent}" if name == "latent-snare" and stop else "n/a"
        under = stop[1] if name == "latent-snare" and stop else "n/a"
        print(f"| {name} | {own} | {running} | {waiting} | {played} | {under} |")
    print("\n| latent-snare | process | RSS MB | threads | fds |")
    print("|---|---|---:|---:|---:|")
    for label, sample in ((f"after {WARM_UP_S:.0f} s warm-up", warm), ("at the end", end)):
        for process, (rss, threads, fds) in sample.items():
            print(f"| {label} | {process} | {rss / 1024:.1f} | {threads} | {fds} |")
    growth = ", ".join(
        f"{process} {100 * (end[process][0] - warm[process][0]) / warm[process][0]:+.1f} %"
        for process in end
        if process in warm
    )
    print(
        f"\nRSS growth after warm-up: {growth}; own xruns counted by the service {state.get('own_xruns')} "
        f"(the machine's: late starts {state.get('late_starts')}, skipped cycles {state.get('skipped_cycles')}) "
        f"(server's xrun notifications {state.get('server_xruns')}, audio restarts {state.get('audio_restarts')}); "
        f"xruns by client and state: {dict(sorted(states.items())) or 'none'}"
    )
    if any(state.get("cycle_end_hist", [])):
        print(
            f"\nlatent-snare's JACK cycles ({state['mixer']} mixer) by where in the period they began and "
            "finished, in tenths of the period, the last column past its end:\n"
        )
        print("| cycles | " + " | ".join(f"{10 * k}-{10 * k + 10} %" for k in range(10)) + " | later |")
        print("|---|" + "---:|" * 11)
        for label in ("start", "end"):
            print(f"| {label} | " + " | ".join(str(n) for n in state[f"cycle_{label}_hist"]) + " |")


def sample_processes(service) -> dict[str, tuple[int, int, int]]:
    """(RSS kB, threads, fds) of the service's main process and, where it has one, its audio process."""
    sample = {"main": process_sample(service.proc.pid)}
    audio_pid = service_state().get("audio_pid")
    if audio_pid:
        sample["audio"] = process_sample(audio_pid)
    return sample


if __name__ == "__main__":
    main()
