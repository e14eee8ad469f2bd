"""Encode time per model: the screened search (`encode`) against the search through real renders
only (`encode_by_renders`, what encode was before), side by side in one run, and where each lands.

    .venv/bin/python -m bench.encode [--data DIR] [--renders N] [--files N] [MODEL ...]
        (default: every model in models/; DIR: data/corpus, skipped when absent)

Prints a Markdown table. Single-threaded BLAS, as the service and `serve`'s workers run it. The
inputs are what a player drops:
- hard hits rendered at random whole-CC points: the round trip, the largest knob error between
  where a snare was rendered and where it is found again;
- softer hits and other round robins at random points and velocities: snares the model almost
  makes (encode matches a hard hit, so these land near, not on, where they were rendered);
- real files from the corpus, evenly spread over its sorted list.
"landing" is the larger of the two knobs' differences, in CC, between the two searches' answers;
"distance" is the new answer's multi-resolution log-spectral distance to the input minus the
old one's (negative: the new search found a closer snare).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from instrument.files.audio import load_snare
from instrument.model.file import load_model
from instrument.model.knobs import CC_MAX
from instrument.paths import MODELS_DIR, REPO_DIR


def inputs(model, n_renders: int, files: list[Path], rng) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(kind, wave, where it was rendered or None) for every input."""
    out = []
    for cc in rng.integers(0, CC_MAX + 1, (n_renders, 2)).astype(float):
        out.append(("render, hard hit", model.decode_cc(*cc), cc))
    for cc in rng.integers(0, CC_MAX + 1, (n_renders, 2)).astype(float):
        velocity, variant = int(rng.integers(20, 128)), int(rng.integers(0, model.n_variants))
        out.append(("render, any velocity and round robin", model.decode_cc(*cc, velocity, variant), None))
    for path in files:
        out.append(("corpus file", load_snare(path, model.sample_rate, model.n_samples), None))
    return out


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - t0) * 1e3


def distance(model, cc, wave) -> float:
    return model.net.render_distance(model.knobs.cc_to_latent(*cc), model.net._log_power(wave))


def bench(model, cases) -> None:
    rows: dict[str, list] = {}
    model.encode(cases[0][1])  # the cached geometry is built once per model, not per encode
    for kind, wave, truth in cases:
        new, new_ms = timed(lambda: model.encode(wave))
        old, old_ms = timed(lambda: model.net.encode_by_renders(wave, model.knobs))
        new_cc, old_cc = np.array(model.knobs.latent_to_cc(new)), np.array(model.knobs.latent_to_cc(old))
        round_trip = (np.inf, np.inf) if truth is None else (np.abs(old_cc - truth).max(), np.abs(new_cc - truth).max())
        rows.setdefault(kind, []).append(
            (
                old_ms,
                new_ms,
                np.abs(new_cc - old_cc).max(),
                distance(model, new_cc, wave) - distance(model, old_cc, wave),
                *round_trip,
            )
        )
    for kind, r in rows.items():
        old_ms, new_ms, landing, dist, trip_old, trip_new = np.array(r).T
        trip = f"{trip_old.max():.2f} / {trip_new.max():.2f}" if np.isfinite(trip_old).all() else "–"
        print(
            f"| `{model.name}` | {kind} | {len(r)} | {np.median(old_ms):.0f} | {np.percentile(old_ms, 99):.0f} "
            f"| {np.median(new_ms):.0f} | {np.percentile(new_ms, 99):.0f} | {np.median(old_ms / new_ms):.1f}× "
            f"| {np.median(landing):.2f} / {landing.max():.2f} | {np.mean(landing <= 3.0):.0%} | {trip} "
            f"| {np.median(dist):+.4f} / {dist.max():+.4f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="model files (default: every model in models/)")
    parser.add_argument("--data", type=Path, default=REPO_DIR / "data" / "corpus", help="the corpus's audio files")
    parser.add_argument("--renders", type=int, default=12, help="rendered inputs of each kind per model")
    parser.add_argument("--files", type=int, default=12, help="corpus files per model")
    args = parser.parse_args()
    paths = [Path(p) for p in args.models] or sorted(MODELS_DIR.glob("*.safetensors"))
    corpus = sorted(args.data.rglob("*.wav")) if args.data.is_dir() else []
    files = (
        [corpus[i] for i in np.linspace(0, len(corpus) - 1, min(args.files, len(corpus))).astype(int)] if corpus else []
    )
    print(
        f"encode benchmark, {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"BLAS threads 1, {len(files)} corpus files\n"
    )
    print(
        "| model | input | n | old p50 ms | old p99 ms | new p50 ms | new p99 ms | speed-up "
        "| landing CC median / max | landing ≤ 3 CC | round trip CC old / new | distance new − old median / max |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for path in paths:
            model = load_model(path)
            if model.family != "envelope":
                continue  # the dense family's encoder is one matrix product, not a search
            bench(model, inputs(model, args.renders, files, np.random.default_rng(0)))


if __name__ == "__main__":
    main()
