"""Audio-callback cost: engine.render() with N voices sounding, as a fraction of the period.

    .venv/bin/python -m bench.callback

Runs the real engine offline at 48 kHz for 64/128/256-frame blocks, first idle,
then with the decode worker decoding continuously in another thread (the GIL
and memory-bandwidth contention the service sees under a knob flood). Each row
runs twice: with the engine in this process (`separate_process: false`), and in
an audio process of its own fed through shared memory, as the JACK backend's
default runs it (the knob flood then decodes in this process only), with engine.py and with
the C mixer (rt/mixer.c) that the audio process runs by default.
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
from datetime import date

import numpy as np

from instrument.app.service import realtime_hygiene
from instrument.config import load_config
from instrument.core.events import NoteOn, to_record
from instrument.host.link import EngineLink
from instrument.host.worker import DecodeWorker
from instrument.model.file import load_model
from instrument.rt.cmixer import CMixer
from instrument.rt.engine import Engine, engine_settings
from instrument.rt.layout import SharedAudio

RATE, VOICES, SECONDS = 48000, 32, 5.0


PLACES = ("this process", "audio process", "audio process, C mixer")


def measure(block: int, model, flood: bool, place: str) -> np.ndarray:
    """Render times as fractions of the period, in one of PLACES."""
    blocks = int(SECONDS * RATE / block)
    separate = place != PLACES[0]
    if separate:
        engine = EngineLink(engine_settings(RATE, block, polyphony=VOICES))
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.callback",
                "--audio-process",
                str(engine.shared.fd),
                str(block),
                "c" if place == PLACES[2] else "python",
            ],
            pass_fds=(engine.shared.fd,),
            stdout=subprocess.PIPE,
            text=True,
        )
    else:
        engine = Engine(engine_settings(RATE, block, polyphony=VOICES))
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
    if separate:
        times = np.array(json.loads(child.communicate()[0]))
    else:
        times = render_blocks(engine, block, blocks)
    stop.set()
    worker.stop()
    return times / (block / RATE)


def render_blocks(engine, block: int, blocks: int, take_snare=lambda: None) -> np.ndarray:
    times = np.empty(blocks)
    for i in range(blocks):
        t0 = time.perf_counter()
        take_snare()
        if engine.stats.voices < VOICES:
            engine.post(NoteOn(100))  # keep 32 voices sounding
        engine.render(block)
        times[i] = time.perf_counter() - t0
    return times


def audio_process(fd: int, block: int, mixer: str) -> None:
    """The audio process's side of a separate row: the engine on shared memory, taking each
    published snare at the start of a block as rt/cycle.py does, or the C mixer's whole
    cycle (`mixer` "c"); prints the times."""
    shared = SharedAudio.attach(fd)
    engine = Engine(shared.settings, stats=shared.stats)
    table = shared.snares

    def take_snare():
        if table.published != table.playing and table.published >= 0:
            engine.current = shared.slots[table.published, : table.length[table.published]]
            table.playing = table.published

    while table.published < 0:  # the first decode
        time.sleep(0.001)
    gc.collect()
    gc.freeze()
    if mixer == "c":
        times = c_cycles(CMixer(shared.settings, shared), shared, block, int(SECONDS * RATE / block))
    else:
        times = render_blocks(engine, block, int(SECONDS * RATE / block), take_snare)
    print(json.dumps(times.tolist()))


def c_cycles(mixer, shared, block: int, blocks: int) -> np.ndarray:
    """The C mixer's cycles into a stereo buffer, 32 voices kept sounding through the event ring."""
    out = np.zeros((block, 2), dtype=np.float32)
    note = to_record(NoteOn(100))
    times = np.empty(blocks)
    for i in range(blocks):
        t0 = time.perf_counter()
        if shared.stats.voices < VOICES:
            shared.events.push(*note)
        mixer.cycle(out)
        times[i] = time.perf_counter() - t0
    return times


def main() -> None:
    if sys.argv[1:2] == ["--audio-process"]:
        audio_process(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return
    model = load_model(None, load_config().model)
    realtime_hygiene()
    gc.collect()
    print(f"callback benchmark, {date.today()}, model {model.name}, {VOICES} voices, {SECONDS:.0f} s per row\n")
    print("| block | load | engine runs in | p50 % of period | p99.9 % | max % |")
    print("|---|---|---|---|---|---|")
    for block in (64, 128, 256):
        for flood in (False, True):
            for place in PLACES:
                frac = measure(block, model, flood, place) * 100
                print(
                    f"| {block} | {'knob flood 1000/s' if flood else 'idle'} | {place} "
                    f"| {np.median(frac):.1f} | {np.percentile(frac, 99.9):.1f} | {frac.max():.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
