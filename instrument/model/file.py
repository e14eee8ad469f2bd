"""Model files: NAME.safetensors (weights) + NAME.json (what the weights are).

The JSON describes itself: format and version, architecture, sample rate,
knob mapping, corpus hash, training settings and metrics. Loading rebuilds
the model from it and checks every tensor's name and shape against the
architecture. Pickle checkpoints (.pt, .pth, .pkl, .ckpt, torch.save zips) are
refused before a byte of them is interpreted: unpickling runs code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..errors import UserError
from ..paths import MODELS_DIR
from .architecture import ModelConfig
from .decoder import DenseAutoencoder, DenseStack, SnareModel
from .envelope import FAMILY as ENVELOPE_FAMILY
from .envelope import EnvelopeConfig, EnvelopeSnare
from .knobs import KnobMap

FORMAT = "latent-snare-model"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib"}
# torch.save writes a zip; pickle protocol 2+ starts with 0x80.
PICKLE_MAGICS = (b"PK\x03\x04", b"\x80")


def resolve(model: str | Path | None, default_name: str) -> Path:
    """A model name in models/, or a path to its .json or .safetensors -> the .safetensors path."""
    if model is None:
        model = default_name
    path = Path(model)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UserError(
            f"{path}: pickle checkpoints are refused (they can run code); a model is NAME.safetensors + NAME.json"
        )
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    elif path.suffix != ".safetensors":
        if len(path.parts) == 1 and not path.exists():
            path = MODELS_DIR / path
        path = path.with_name(path.name + ".safetensors")
    return path


def available_models(models_dir: Path = MODELS_DIR) -> list[str]:
    return sorted(p.stem for p in models_dir.glob("*.safetensors") if p.with_suffix(".json").is_file())


def load_model(model: str | Path | None = None, default_name: str = "") -> SnareModel:
    """Load and validate a model; every problem is a UserError naming the file and what is wrong."""
    asked = model if model is not None else default_name
    path = resolve(model, default_name)
    meta_path = path.with_suffix(".json")
    what = "a model is NAME.safetensors with NAME.json beside it, or a name from models/: " + (
        ", ".join(available_models()) or "none"
    )
    if not path.is_file():
        # Name what the user typed: `--model notes.txt` is not a model, whatever we looked for.
        raise UserError(f"{asked}: {'not a model' if Path(asked).is_file() else 'no such model'} ({what})")
    if not meta_path.is_file():
        raise UserError(f"{meta_path}: missing ({what})")
    _refuse_pickle(path)
    meta = _read_meta(meta_path)
    try:
        architecture = dict(meta["architecture"])
        envelope = architecture.get("family") == ENVELOPE_FAMILY
        if envelope:
            architecture.setdefault("version", 1)  # the first generation wrote no version
        config = EnvelopeConfig(**architecture) if envelope else ModelConfig(**architecture)
        sample_rate = int(meta["sample_rate"])
        knobs = KnobMap.from_dict(meta["knobs"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{meta_path}: invalid model description: {err}") from err
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{path}: not a valid safetensors file (truncated or corrupt?): {err}") from err
    parts = {"mlp": config.widths} if envelope else {"encoder": config.encoder_widths, "decoder": config.decoder_widths}
    layers = {part: _layers(tensors, part, widths, path) for part, widths in parts.items()}
    extra = set(tensors) - {
        f"{part}.{i}.{kind}" for part, w in parts.items() for i in range(len(w) - 1) for kind in ("weight", "bias")
    }
    if extra:
        raise UserError(f"{path}: unexpected tensors {sorted(extra)[:3]} for the architecture in its .json")
    if envelope:
        net = EnvelopeSnare(config, layers["mlp"])
    else:
        net = DenseAutoencoder(
            DenseStack(layers["encoder"], config.activation, config.encoder_last_activated),
            DenseStack(layers["decoder"], config.activation, last_activated=False),
        )
    return SnareModel(
        name=meta.get("name", path.stem),
        path=path,
        config=config,
        sample_rate=sample_rate,
        knobs=knobs,
        net=net,
        meta=meta,
    )


def _refuse_pickle(path: Path) -> None:
    with open(path, "rb") as fh:
        head = fh.read(9)
    if head.startswith(PICKLE_MAGICS):
        raise UserError(
            f"{path}: this is a pickle/torch.save checkpoint, refused (it can run code); export it to safetensors"
        )
    if len(head) < 9 or head[8:9] != b"{":
        raise UserError(f"{path}: not a safetensors file (bad header)")


def _read_meta(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{meta_path}: not a readable model description: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{meta_path}: not a Latent Snare model description (format must be {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{meta_path}: format_version {meta.get('format_version')!r} is not supported (this build reads {FORMAT_VERSION})"
        )
    return meta


def _layers(tensors: dict, part: str, widths: list[int], path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    layers = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        weight, bias = tensors.get(f"{part}.{i}.weight"), tensors.get(f"{part}.{i}.bias")
        if weight is None or bias is None:
            raise UserError(f"{path}: missing tensor {part}.{i} for the architecture in its .json")
        if weight.shape != (n_out, n_in) or bias.shape != (n_out,):
            raise UserError(
                f"{path}: {part}.{i} has shape {weight.shape}, the .json's architecture needs ({n_out}, {n_in})"
            )
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            raise UserError(f"{path}: {part}.{i} contains NaN or Inf")
        layers.append((np.ascontiguousarray(weight, np.float32), np.ascontiguousarray(bias, np.float32)))
    return layers


def save_model(path: Path, tensors: dict[str, np.ndarray], meta: dict) -> None:
    """Write NAME.safetensors and NAME.json, each atomically (an interrupted save leaves the old pair)."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, **meta}
    tmp = path.with_name(path.name + ".tmp")
    # float16 stays float16 (half the bytes in git); everything else is stored as float32.
    save_file(
        {k: np.ascontiguousarray(v, np.float16 if v.dtype == np.float16 else np.float32) for k, v in tensors.items()},
        str(tmp),
    )
    os.replace(tmp, path)
    meta_tmp = path.with_suffix(".json.tmp")
    meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    os.replace(meta_tmp, path.with_suffix(".json"))
