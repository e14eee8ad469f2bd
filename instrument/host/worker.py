"""The decode worker: the one owner of the knob position, and the snare it plays.

The position (model, knob CCs, latent) has one owner, this worker. Every front end asks
to move it with a request that returns at once:

- `turn(axis, cc)`: one knob moved (MIDI);
- `move_cc(cc_x, cc_y)`: both knobs at once (the web pad);
- `move_to(model, latent)`: an exact point, a drop or a recall; the knobs continue from the
  nearest whole CCs;
- `switch_model(model)`: a program change, at the same knobs.

Each request builds the next target from the newest one, under a short lock that is never
held across work (and never touched by the audio thread), so MIDI x then y in quick
succession keep both. The target is one immutable `Position`, replaced whole: the newest
wins, and a flood of CCs never queues stale decodes. The thread takes the newest target,
decodes it (numpy), finishes the snare (DC block, resample to the device rate, fade,
normalize), checks it, publishes it to the engine (host/link.py copies it into a free slot
of the shared memory, so the cycle never holds this thread's arrays), and then publishes
`now_playing`, the Position that sounds, as one reference. A bad decode (NaN, Inf, silence,
an exception) is counted and dropped: the previous snare keeps playing.

The hard hit is published first, alone, so a knob answers within one decode. Then the rest of
the kit (core/kit.py): the model's velocity layers and `round_robins` variants of each, which
replace it as one kit unless a newer target arrived meanwhile (then it is abandoned: the newest
wins here too).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..core.dsp import finish_snare
from ..core.kit import VELOCITY_LAYERS, as_kit
from ..model.knobs import CC_CENTRE

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Position:
    """A point of the instrument: `model`, its knob position `cc` (0..127 each, fractions allowed),
    and `latent`, read-only. In a target `latent` is None until the worker maps `cc` through the
    model's knobs; in `now_playing` it is always the latent that sounds."""

    model: object
    cc: tuple[float, float]
    latent: np.ndarray | None = None
    kit: tuple[int, int] = (1, 1)  # in `now_playing`: the (velocity layers, round robins) that sound


def _frozen(latent) -> np.ndarray:
    latent = np.array(latent, dtype=np.float32)  # a copy: the caller's array may change later
    latent.setflags(write=False)
    return latent


class DecodeWorker:
    def __init__(
        self, model, engine, out_rate: int, cc: tuple[float, float] = (CC_CENTRE, CC_CENTRE), round_robins: int = 1
    ):
        """Starts at knob position `cc` of `model`; `start()` decodes it. `round_robins`: variants
        per velocity layer, at most the model's (1: every hit alike)."""
        self.engine = engine
        self.out_rate = out_rate
        self.round_robins = round_robins
        self.decodes = 0
        self.rejected = 0
        self.last_decode_ms = 0.0  # knob -> the hard hit playable
        self.last_kit_ms = 0.0  # knob -> every layer and round robin playable
        self.now_playing: Position | None = None  # what sounds; replaced whole after each decode
        self._target = Position(model, (float(cc[0]), float(cc[1])))  # the newest request; replaced whole under _lock
        self._taken: Position | None = None  # the last target the thread took (decoded or rejected)
        self._lock = threading.Lock()  # merges concurrent requests; held only to build one small value
        self._wake = threading.Event()
        self._published = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="decode-worker", daemon=True)

    def start(self) -> DecodeWorker:
        self._thread.start()
        self._wake.set()
        return self

    @property
    def target(self) -> Position:
        """The newest requested position (decoded soon, or already playing)."""
        return self._target

    # --- requests: any thread but the audio thread; each returns at once ---------------------

    def turn(self, axis: int, cc: float) -> None:
        """One knob (axis 0: x, 1: y) moved to `cc`; the other stays where the newest target has it."""
        with self._lock:
            old = self._target
            both = (float(cc), old.cc[1]) if axis == 0 else (old.cc[0], float(cc))
            if both == old.cc:
                return  # a controller re-sending its value (a DAW chasing CCs): the kit stays whole
            self._target = Position(old.model, both)
        self._wake.set()

    def move_cc(self, cc_x: float, cc_y: float) -> None:
        """Both knobs at once (the web pad)."""
        with self._lock:
            old = self._target
            if old.cc == (float(cc_x), float(cc_y)):
                return
            self._target = Position(old.model, (float(cc_x), float(cc_y)))
        self._wake.set()

    def move_to(self, model, latent) -> tuple[int, int]:
        """Play exactly `latent` of `model`, which becomes the current model; returns the knob
        position (whole CCs) the next turn continues from."""
        cc = model.knobs.latent_to_cc_int(latent)
        with self._lock:
            self._target = Position(model, (float(cc[0]), float(cc[1])), _frozen(latent))
        self._wake.set()
        return cc

    def switch_model(self, model) -> None:
        """Play `model` from now on at the same knob position; sounding voices finish with the old snare."""
        with self._lock:
            self._target = Position(model, self._target.cc)
        self._wake.set()

    def wait_published(self, timeout_s: float) -> bool:
        return self._published.wait(timeout_s)

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        warm_up(self._target.model, self.out_rate, self._target.cc)
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            target = self._target  # the newest; older ones were replaced, never queued
            if self._stop or target is self._taken:
                continue
            self._taken = target
            self._decode(target)

    def _decode(self, target: Position) -> None:
        model = target.model
        started = time.perf_counter()
        try:
            latent = target.latent if target.latent is not None else _frozen(model.knobs.cc_to_latent(*target.cc))
            hard = finish_snare(model.decode(latent), model.sample_rate, self.out_rate)
        except Exception as err:  # a bad decode must never stop the instrument: keep the last good snare
            self._reject(target, err)
            return
        self.engine.publish(trimmed(as_kit(hard)))
        self.now_playing = Position(model, target.cc, latent)
        self.last_decode_ms = (time.perf_counter() - started) * 1e3
        self.decodes += 1
        self._published.set()
        layers = VELOCITY_LAYERS if getattr(model, "plays_velocity", False) else VELOCITY_LAYERS[-1:]
        variants = max(1, min(self.round_robins, getattr(model, "n_variants", 1)))
        if len(layers) * variants == 1:
            self.last_kit_ms = self.last_decode_ms
            return
        hits = []
        try:
            for velocity in layers:
                for variant in range(variants):
                    if self._target is not target and not self._stop:
                        return  # a newer target: decoding the rest of this kit would only delay it
                    if velocity == VELOCITY_LAYERS[-1] and variant == 0:
                        hits.append(hard)
                    else:
                        wave = model.decode(latent, velocity=velocity, variant=variant)
                        hits.append(finish_snare(wave, model.sample_rate, self.out_rate))
        except Exception as err:  # the hard hit keeps playing alone
            self._reject(target, err)
            return
        self.engine.publish(trimmed(np.stack(hits).reshape(len(layers), variants, -1)))
        self.now_playing = Position(model, target.cc, latent, (len(layers), variants))
        self.last_kit_ms = (time.perf_counter() - started) * 1e3

    def _reject(self, target: Position, err: Exception) -> None:
        self.rejected += 1
        log.warning(
            "decode of %s at CC %s rejected: %s",
            getattr(target.model, "name", target.model),
            np.round(target.cc, 2).tolist(),
            err,
        )


def warm_up(model, out_rate: int, cc: tuple[float, float] = (CC_CENTRE, CC_CENTRE)) -> None:
    """Decode once and throw it away, as RAVE's export does before its stream opens: the first real
    decode then finds the weights faulted in and the lazily built tables made, so the first knob
    turn answers, and the first figure reported is, what every later one takes (100 ms cold, not 2)."""
    try:
        latent = model.knobs.cc_to_latent(*cc)
        finish_snare(model.decode(latent), model.sample_rate, out_rate)
        if getattr(model, "plays_velocity", False) or getattr(model, "n_variants", 1) > 1:
            finish_snare(model.decode(latent, velocity=VELOCITY_LAYERS[0], variant=0), model.sample_rate, out_rate)
    except Exception as err:  # the worker's real decode meets the same fault, and rejects it with its reason
        log.debug("warm-up decode of %s failed: %s", getattr(model, "name", model), err)


SILENT = 1e-5  # -100 dBFS, 94 dB under a finished snare's peak


def trimmed(kit: np.ndarray) -> np.ndarray:
    """The kit without the samples after its last audible one, in every hit: less to copy and mix."""
    audible = np.flatnonzero(np.max(np.abs(kit), axis=(0, 1)) > SILENT)
    return kit[:, :, : audible[-1] + 1] if audible.size else kit
