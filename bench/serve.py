"""`latent-snare serve` under load: /snare.wav at random knob points from concurrent clients.

For each worker count: requests per second, p50 and p99 latency, errors, and each worker's memory
(RSS, and PSS, which shares out what forked workers have in common). The clients run in this
process on the same machine, so they take CPU from the workers: the figures
are a floor for a server with its own cores. The load comes from wrk (apt-get install wrk), whose
C client costs the workers far less CPU than a Python client would. Then page load to first playable sound in headless
Chromium, and last a long run (default 2 minutes, 50 clients) counting errors.

    python -m bench.serve [--workers 1 2] [--clients 20] [--seconds 15] [--soak-seconds 120] [--soak-clients 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.chromium import launch
from tests.serveproc import Serve

PAGE_LOADS = 5
WRK_SCRIPT = Path(__file__).with_name("serve_points.lua")


def load(url: str, clients: int, seconds: float, seed: int = 1) -> dict:
    """wrk (C, one thread, keep-alive): `clients` connections, each asking for a random point as soon
    as its last answer came; every non-200 answer and socket error counts as an error."""
    done = subprocess.run(
        [
            "wrk",
            "--threads",
            "1",
            "--connections",
            str(clients),
            "--duration",
            f"{seconds:g}s",
            "--timeout",
            "10s",
            "--latency",
            "--script",
            str(WRK_SCRIPT),
            url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SEED": str(seed)},
        check=True,
    )
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "per_s": row["requests"] / row["seconds"]}


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value = line.split(":", 1)
        fields[key] = int(value.split()[0])
    return fields["Rss"] / 1024, fields["Pss"] / 1024


def page_load_ms(url: str) -> list[float]:
    """Navigation start to the first snare decoded into an AudioBuffer (a tap would play it), each in a
    fresh browser context (nothing cached)."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = launch(p, autoplay=True)
        for _ in range(PAGE_LOADS):
            context = browser.new_context()
            page = context.new_page()
            page.goto(url)
            deadline = time.monotonic() + 20
            while (ready := page.evaluate("window.latentSnare && latentSnare.firstReadyMs()")) is None:
                assert time.monotonic() < deadline, "no playable snare within 20 s"
                page.wait_for_timeout(10)
            times.append(ready)
            context.close()
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--soak-seconds", type=float, default=120.0, help="0: skip the long run")
    parser.add_argument("--soak-clients", type=int, default=50)
    args = parser.parse_args()
    log = Path(tempfile.gettempdir()) / "latent-snare-bench-serve.log"

    print(
        f"serve benchmark, {time.strftime('%Y-%m-%d')}, /snare.wav at random whole-CC points, {args.clients} clients, "
        f"{args.seconds:g} s per row\n"
    )
    print("| workers | requests/s | p50 ms | p99 ms | errors | RSS per worker MB | PSS per worker MB |")
    print("|---|---|---|---|---|---|---|")
    page_ms = None
    soak = None
    for n in args.workers:
        server = Serve(["--workers", str(n)], log)
        try:
            load(server.url, args.clients, 2.0, seed=99)  # warm-up: connections, caches, the map pictures
            row = load(server.url, args.clients, args.seconds)
            memory = [memory_mb(pid) for pid in server.workers()]
            print(
                f"| {n} | {row['per_s']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} | "
                f"{statistics.mean(m[0] for m in memory):.0f} | {statistics.mean(m[1] for m in memory):.0f} |",
                flush=True,
            )
            if n == max(args.workers):
                page_ms = page_load_ms(server.url)
                if args.soak_seconds > 0:
                    soak = load(server.url, args.soak_clients, args.soak_seconds, seed=7)
        finally:
            server.stop()
    print(
        f"\npage load to first playable snare, Chromium, {max(args.workers)} workers, {PAGE_LOADS} fresh loads: "
        f"median {statistics.median(page_ms):.0f} ms, max {max(page_ms):.0f} ms"
    )
    if soak:
        print(
            f"\nlong run: {args.soak_clients} clients for {args.soak_seconds:g} s, {max(args.workers)} workers: "
            f"{soak['requests']} requests, {soak['errors']} errors, {soak['per_s']:.0f}/s, "
            f"p50 {soak['p50_ms']:.1f} ms, p99 {soak['p99_ms']:.1f} ms"
        )


if __name__ == "__main__":
    main()
