"""Decode time per model, numpy vs torch (the seed's dense family), and knob -> playable at 48 kHz:
the hard hit the worker publishes first (decode + finish), and the whole kit after it (every
velocity layer and round robin: host/worker.py's path, the same calls in the same order).

    .venv/bin/python -m bench.decode [MODEL_DIR ...]      (default: models/ and runs/zoo/)

Prints a Markdown table. One latent at a time, single-threaded BLAS as in the service, at
random knob positions (a long snare costs more than a short one); the torch column runs side
by side in the same run, so compare the ratio. The envelope family's torch twin renders through
numpy (training needs only its expected spectrogram), so it has no torch column.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from instrument.config import load_config
from instrument.core.dsp import finish_snare
from instrument.core.kit import VELOCITY_LAYERS
from instrument.host.worker import trimmed
from instrument.model.file import load_model
from instrument.paths import MODELS_DIR, REPO_DIR

REPEATS = 200


def timings_ms(fn, repeats=REPEATS) -> np.ndarray:
    fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def torch_decoder(model):
    import torch

    torch.set_num_threads(1)
    layers = [(torch.from_numpy(w), torch.from_numpy(b)) for w, b in model.net.decoder.layers]
    act = {"relu": torch.relu, "tanh": torch.tanh, "sig": torch.sigmoid}[model.config.activation]

    def decode(latent):
        with torch.no_grad():
            x = torch.from_numpy(latent)
            for i, (w, b) in enumerate(layers):
                x = torch.nn.functional.linear(x, w, b)
                if i < len(layers) - 1:
                    x = act(x)
            return x.numpy()

    return decode


def main(dirs: list[str]) -> None:
    paths = []
    for d in dirs or [MODELS_DIR, REPO_DIR / "runs" / "zoo"]:
        paths += [p for p in sorted(Path(d).glob("*.safetensors")) if not p.name.endswith(".ckpt.safetensors")]
    print(
        f"decode benchmark, {date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"BLAS threads 1, {REPEATS} repeats\n"
    )
    print(
        "| model | params | numpy p50 ms | numpy p99 ms | torch p50 ms | torch/numpy "
        "| knob→hard hit p50 ms | p99 | knob→whole kit p50 ms | p99 | kit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    seen = set()
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for path in paths:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            model = load_model(path)
            latents = [model.knobs.cc_to_latent(*cc) for cc in rng.uniform(0, 127, (KIT_REPEATS, 2))]
            latent = latents[0]
            np_ms = timings_ms(lambda: model.decode(latent))
            torch_cols = "– | –"
            if model.family == "dense":
                try:
                    decode_torch = torch_decoder(model)
                    np.testing.assert_allclose(decode_torch(latent), model.decode(latent), rtol=1e-4, atol=1e-5)
                    torch_ms = timings_ms(lambda: decode_torch(latent))
                    torch_cols = f"{np.median(torch_ms):.3f} | {np.median(torch_ms) / np.median(np_ms):.1f}×"
                except ImportError:
                    pass
            hard_ms, kit_ms, shape = kit_timings_ms(model, latents)
            print(
                f"| `{model.name}` | {model.config.n_parameters / 1e6:.2f} M | {np.median(np_ms):.3f} "
                f"| {np.percentile(np_ms, 99):.3f} | {torch_cols} | {np.median(hard_ms):.2f} | {np.percentile(hard_ms, 99):.2f} "
                f"| {np.median(kit_ms):.2f} | {np.percentile(kit_ms, 99):.2f} | {shape[0]}×{shape[1]} |"
            )


KIT_REPEATS = 60


def kit_timings_ms(model, latents) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Per latent, ms until the hard hit is playable and until the whole kit is (as the worker
    decodes them, with the default round robins)."""
    layers = VELOCITY_LAYERS if model.plays_velocity else VELOCITY_LAYERS[-1:]
    variants = min(load_config().voices.round_robins, model.n_variants)
    hard_ms, kit_ms = [], []
    for latent in latents:
        t0 = time.perf_counter()
        hard = finish_snare(model.decode(latent), model.sample_rate, 48000)
        hard_ms.append((time.perf_counter() - t0) * 1e3)
        hits = [
            hard if (v == 127 and k == 0) else finish_snare(model.decode(latent, v, k), model.sample_rate, 48000)
            for v in layers
            for k in range(variants)
        ]
        trimmed(np.stack(hits).reshape(len(layers), variants, -1))
        kit_ms.append((time.perf_counter() - t0) * 1e3)
    return np.array(hard_ms), np.array(kit_ms), (len(layers), variants)


if __name__ == "__main__":
    main(sys.argv[1:])
