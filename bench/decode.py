"""Decode time per model, numpy vs torch, and knob -> playable snare (decode + finish) at 48 kHz.

    .venv/bin/python -m bench.decode [MODEL_DIR ...]      (default: models/ and runs/zoo/)

Prints a Markdown table. Both backends run one latent at a time, single-threaded
BLAS as in the service, side by side in the same run; compare the ratio column.
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

from instrument.core.dsp import finish_snare
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
    if model.family == "envelope":
        return torch_envelope(model)
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


def torch_envelope(model):
    """The envelope family's torch twin (training's), with the model's weights: MLP, then render."""
    import torch

    from instrument.training.envelope import EnvelopeDecoder

    decoder = EnvelopeDecoder(model.config)
    with torch.no_grad():
        for layer, (w, b) in zip(decoder.layers, model.net.layers):
            layer.weight.copy_(torch.from_numpy(w))
            layer.bias.copy_(torch.from_numpy(b))

    def decode(latent):
        with torch.no_grad():
            return decoder.render(decoder(torch.from_numpy(latent)[None]))[0].numpy()

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
        "| model | params | numpy p50 ms | numpy p99 ms | torch p50 ms | torch/numpy | knob→ready p50 ms | knob→ready p99 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    seen = set()
    with threadpool_limits(1):
        for path in paths:
            if path.stem in seen:
                continue
            seen.add(path.stem)
            model = load_model(path)
            latent = model.knobs.cc_to_latent(64, 64)
            np_ms = timings_ms(lambda: model.decode(latent))
            try:
                decode_torch = torch_decoder(model)
                np.testing.assert_allclose(decode_torch(latent), model.decode(latent), rtol=1e-4, atol=1e-5)
                torch_ms = timings_ms(lambda: decode_torch(latent))
                torch_cols = f"{np.median(torch_ms):.3f} | {np.median(torch_ms) / np.median(np_ms):.1f}×"
            except ImportError:
                torch_cols = "– | –"
            ready_ms = timings_ms(lambda: finish_snare(model.decode(latent), model.sample_rate, 48000))
            print(
                f"| `{model.name}` | {model.config.n_parameters / 1e6:.2f} M | {np.median(np_ms):.3f} | {np.percentile(np_ms, 99):.3f} "
                f"| {torch_cols} | {np.median(ready_ms):.2f} | {np.percentile(ready_ms, 99):.2f} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
