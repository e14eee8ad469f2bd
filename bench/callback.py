"""Audio-callback cost: engine.render() with N voices sounding, as a fraction of the period.

    .venv/bin/python -m bench.callback

Runs the real engine offline at 48 kHz for 64/128/256-frame blocks, first idle,
then with the decode worker decoding continuously in another thread (the GIL
and memory-bandwidth contention the service sees under a knob flood).
"""

from __future__ import annotations

import gc
import threading
import time
from datetime import date

import numpy as np

from instrument.config import load_config
from instrument.play.engine import Engine
from instrument.play.events import NoteOn
from instrument.model.file import load_model
from instrument.app.service import realtime_hygiene
from instrument.play.worker import DecodeWorker

RATE, VOICES, SECONDS = 48000, 32, 5.0


def measure(block: int, model, flood: bool) -> np.ndarray:
    engine = Engine(RATE, block, polyphony=VOICES)
    worker = DecodeWorker(model, engine, RATE).start()  # decodes the centre first
    worker.wait_published(5)
    stop = threading.Event()

    def knob_flood():
        i = 0
        while not stop.is_set():
            worker.move_cc(i % 128, (i * 7) % 128)
            i += 1
            time.sleep(0.001)

    if flood:
        threading.Thread(target=knob_flood, daemon=True).start()
    blocks = int(SECONDS * RATE / block)
    times = np.empty(blocks)
    for i in range(blocks):
        if engine.stats.voices < VOICES:
            engine.post(NoteOn(100))  # keep 32 voices sounding
        t0 = time.perf_counter()
        engine.render(block)
        times[i] = time.perf_counter() - t0
    stop.set()
    worker.stop()
    return times / (block / RATE)


def main() -> None:
    model = load_model(None, load_config().model)
    realtime_hygiene()
    gc.collect()
    print(f"callback benchmark, {date.today()}, model {model.name}, {VOICES} voices, {SECONDS:.0f} s per row\n")
    print("| block | load | p50 % of period | p99.9 % | max % |")
    print("|---|---|---|---|---|")
    for block in (64, 128, 256):
        for flood in (False, True):
            frac = measure(block, model, flood) * 100
            print(f"| {block} | {'knob flood 1000/s' if flood else 'idle'} | {np.median(frac):.1f} | {np.percentile(frac, 99.9):.1f} | {frac.max():.1f} |")


if __name__ == "__main__":
    main()
