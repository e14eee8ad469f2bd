"""Note-on -> first sample latency: the instrument beside FluidSynth, at 64, 128 and 256 frames.

    .venv/bin/python -m bench.latency [--notes 30] [--periods 64 128 256] [--backends jack portaudio]

For each period a private JACK dummy server runs `latent-snare run` and
FluidSynth (GM drum kit, reverb and chorus off). One rig port sends every
note-on (channel 10, note 38, velocity 127) to both in the same period; both
outputs are recorded on the server's frame clock. Latency is counted in frames
from the period the note was sent in to the first sample above -80 dBFS.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from tests.jackrig import first_sound

from .jackbench import SOURCES, machine, require_fluidsynth, side_by_side, xruns_by_client

GAP_S = 0.9  # longer than either snare, so every onset starts from silence
NOTE_ON = (0x99, 38, 127)  # channel 10: FluidSynth's drum kit; the instrument is omni


def measure(period: int, n_notes: int, backend: str) -> dict:
    with side_by_side(period, record_seconds=int(n_notes * GAP_S + 30), service_args=("--audio-backend", backend)) as (
        rig,
        jackd_log,
        _service,
        _fluidsynth,
    ):
        time.sleep(1.0)  # let both settle before the first note
        latencies: dict[str, list[int]] = {name: [] for name in SOURCES}
        missed = {name: 0 for name in SOURCES}
        for _ in range(n_notes):
            sent = rig.send(NOTE_ON)
            for index, name in enumerate(SOURCES):
                start = first_sound(rig.audio(sent, int(GAP_S * rig.rate), source=index))
                if start is None:
                    missed[name] += 1
                else:
                    latencies[name].append(start)
        xruns = xruns_by_client(jackd_log)
    return {name: (np.array(latencies[name]), missed[name], xruns) for name in SOURCES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=30)
    parser.add_argument("--periods", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--backends", nargs="+", choices=("jack", "portaudio"), default=["jack", "portaudio"])
    args = parser.parse_args()
    require_fluidsynth()
    print(f"note-on -> first sample, {args.notes} notes per row, 48 kHz ({machine()})\n")
    print(
        "| period | backend | instrument | median frames | p95 | max | max ms | missed | its xruns | xruns of the run |"
    )
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
    ratios = []
    for backend, period in itertools.product(args.backends, args.periods):
        results = measure(period, args.notes, backend)
        ours, theirs = (np.median(results[name][0]) if results[name][0].size else np.nan for name in SOURCES)
        ratios.append(
            f"{backend} {period}: {ours / theirs:.2f}×" if theirs else f"{backend} {period}: {ours:.0f} vs 0 frames"
        )
        for name, (lat, missed, xruns) in results.items():
            stats = (np.median(lat), np.percentile(lat, 95), lat.max()) if lat.size else (np.nan,) * 3
            own = sum(count for client, count in xruns.items() if client.startswith(name))
            runs = ", ".join(f"{client} {count}" for client, count in sorted(xruns.items())) or "none"
            print(
                f"| {period} | {backend} | {name} | {stats[0]:.0f} | {stats[1]:.0f} | {stats[2]:.0f} | {stats[2] / 48:.1f} | {missed} | {own} | {runs} |",
                flush=True,
            )
    print(f"\nmedian latency, latent-snare / fluidsynth, by period: {', '.join(ratios)}")


if __name__ == "__main__":
    main()
