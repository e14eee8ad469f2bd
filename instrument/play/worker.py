"""The decode worker: knob position in, playable snare published to the engine.

The newest request always wins: `request()` overwrites a single pending slot
and wakes the thread, so a flood of CCs never queues stale decodes and never
blocks the caller. The thread decodes (numpy), finishes the snare (DC block,
resample to the device rate, fade, normalize), checks it, and publishes it by
reference swap. A bad decode (NaN, Inf, silence, an exception) is counted and
dropped: the previous snare keeps playing.

Samples the engine may still hold are kept alive here and released by this
thread once no voice references them, so no large buffer is ever freed on
the audio thread.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import numpy as np

from .dsp import finish_snare

log = logging.getLogger(__name__)


class DecodeWorker:
    def __init__(self, model, engine, out_rate: int):
        self.model = model
        self.engine = engine
        self.out_rate = out_rate
        self.decodes = 0
        self.rejected = 0
        self.last_decode_ms = 0.0
        self.now_playing = (None, None)  # (model, latent) of the published snare, swapped as one reference
        self._pending = None  # ("cc", (x, y)) or ("latent", z, model); written by request*(), taken by the thread
        self._wake = threading.Event()
        self._published = threading.Event()
        self._stop = False
        self._alive: list[np.ndarray] = []  # published samples not yet known to be unreferenced
        self._thread = threading.Thread(target=self._run, name="decode-worker", daemon=True)

    def start(self) -> "DecodeWorker":
        self._thread.start()
        return self

    def request(self, latent, model=None) -> None:
        """Ask for the snare at `latent` of `model`, which becomes the current model if given;
        returns at once. Only the newest request is decoded."""
        if model is not None:
            self.model = model
        self._pending = ("latent", np.asarray(latent, dtype=np.float32), model)
        self._wake.set()

    def request_cc(self, cc_x: float, cc_y: float) -> None:
        """Knob positions: turned into a latent on the worker thread, with whichever model is current then."""
        self._pending = ("cc", (cc_x, cc_y), None)
        self._wake.set()

    def switch_model(self, model, cc: tuple[float, float]) -> None:
        """Play `model` from now on, at knob position `cc`; sounding voices finish with the old snare."""
        self.model = model
        self.request_cc(*cc)

    def wait_published(self, timeout_s: float) -> bool:
        return self._published.wait(timeout_s)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            job, self._pending = self._pending, None  # take the newest; older ones are already overwritten
            if job is None or self._stop:
                continue
            kind, where, model = job
            model = model or self.model
            started = time.perf_counter()
            try:
                latent = model.knobs.cc_to_latent(*where) if kind == "cc" else where
                sample = finish_snare(model.decode(latent), model.sample_rate, self.out_rate)
            except Exception as err:  # a bad decode must never stop the instrument: keep the last good snare
                self.rejected += 1
                log.warning("decode at %s %s rejected: %s", kind, np.round(where, 4).tolist(), err)
                continue
            self.engine.publish(sample)
            self.now_playing = (model, latent)
            self.last_decode_ms = (time.perf_counter() - started) * 1e3
            self.decodes += 1
            self._published.set()
            self._retire(sample)

    def _retire(self, newest: np.ndarray) -> None:
        self._alive.append(newest)
        # getrefcount counts: the list slot, the loop variable and its own argument -> 3 means nobody else.
        self._alive = [s for s in self._alive if s is newest or sys.getrefcount(s) > 3]
