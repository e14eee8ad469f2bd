"""One worker's snares: its models, loaded once, and renders as the exact bytes `render` writes.

A render is a pure function of (model file, x, y, velocity), so the WAV bytes are cached in a
small LRU and the ETag is a hash of those four: any worker, on any machine with the same model
files, answers the same query with the same bytes and the same ETag.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import OrderedDict
from dataclasses import dataclass

from ...files.browser import browser_spec
from ...files.saving import render_snare, write_snare_to
from ...model.file import available_models, load_model

LRU_SNARES = 256  # about 100 kB each (0.75 s, 24-bit): 25 MB per worker at most


@dataclass(frozen=True)
class Served:
    model: object  # SnareModel
    identity: str  # hash of the model's weights and description: changes when the files change
    weights: bytes  # the safetensors file, for the page's own decoder
    spec: bytes | None  # files/browser.py's description as JSON; None: the page asks the server

    @property
    def name(self) -> str:
        return self.model.name

    @classmethod
    def of(cls, model) -> Served:
        weights, meta = model.path.read_bytes(), model.path.with_suffix(".json").read_bytes()
        spec = browser_spec(model)
        return cls(
            model,
            hashlib.sha256(weights + meta).hexdigest()[:16],
            weights,
            None if spec is None else json.dumps(spec).encode(),
        )


class Snares:
    """The models a worker serves (the config's programs, or every model in models/) and their renders."""

    def __init__(self, config):
        self.config = config
        default = load_model(None, config.model)
        self.default = default.name
        self.served: dict[str, Served] = {default.name: Served.of(default)}
        self.programs: list[str] = []  # program change N plays programs[N], as in the instrument
        for entry in list(config.midi.programs) or available_models():
            model = load_model(entry, config.model)
            if model.name not in self.served:
                self.served[model.name] = Served.of(model)
            self.programs.append(model.name)
        self._wavs: OrderedDict[tuple, bytes] = OrderedDict()
        self.hits = self.misses = 0

    @property
    def names(self) -> list[str]:
        return list(self.served)

    def etag(self, name: str, x: float, y: float, velocity: int, variant: int = 0) -> str:
        key = f"{self.served[name].identity}|{x!r}|{y!r}|{velocity}|{variant}"
        return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'

    def wav(self, name: str, x: float, y: float, velocity: int, variant: int = 0) -> bytes:
        """The 24-bit WAV `latent-snare render --model NAME --cc X Y --velocity V --variant K` writes,
        byte for byte."""
        key = (name, x, y, velocity, variant)
        data = self._wavs.get(key)
        if data is not None:
            self._wavs.move_to_end(key)
            self.hits += 1
            return data
        self.misses += 1
        model = self.served[name].model
        latent = model.knobs.cc_to_latent(x, y)
        c = self.config
        wave = render_snare(model, latent, velocity, c.voices.velocity_range_db, c.audio.ceiling_db, variant)
        buffer = io.BytesIO()
        write_snare_to(buffer, wave, model.sample_rate, model, latent)
        data = buffer.getvalue()
        self._wavs[key] = data
        if len(self._wavs) > LRU_SNARES:
            self._wavs.popitem(last=False)
        return data

    def file_name(self, name: str, x: float, y: float) -> str:
        return f"{name}-x{round(x):03d}-y{round(y):03d}.wav"
