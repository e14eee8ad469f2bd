"""Training: seeded, resumable, pickle-free.

A run writes NAME.ckpt.safetensors every few epochs (weights, Adam state,
both RNG states, the epoch) and, at the end, the model pair NAME.safetensors +
NAME.json with its knob mapping. Ctrl-C saves a checkpoint first; running the
same command again resumes from it and gives the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..errors import UserError
from ..model.architecture import HIDDEN, ModelConfig
from ..model.descriptors import describe
from ..model.file import save_model
from ..model.knobs import fit_knob_map
from .autoencoder import SnareAutoencoder
from .dataset import Dataset
from .spectral import spectral_loss

log = logging.getLogger(__name__)

MODEL_SAMPLE_RATE = 44_100
MODEL_N_SAMPLES = 33_075  # 0.75 s: the corpus's median -60 dB tail is 0.67 s
# The corpus is loaded this long: the envelope family renders 1.49 s (the longest real snares'
# tails), and the seed's dense models train on the first MODEL_N_SAMPLES of it.
DATA_N_SAMPLES = 65_536
SEED_EPOCHS = 700
CHECKPOINT_EVERY_EPOCHS = 25
PITCH_AUGMENT = 0.06  # +-6 % playback-speed change, about one semitone


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a trained model, given the data."""

    name: str
    model: ModelConfig
    epochs: int = SEED_EPOCHS
    batch_size: int = 32
    learning_rate: float = 1e-3
    seed: int = 0
    spectral_weight: float = 0.0  # 0: the seed's plain waveform MSE
    kl_weight: float = 0.0  # >0 only for variational models
    augment: bool = False  # random polarity and +-6 % pitch
    sample_rate: int = MODEL_SAMPLE_RATE
    note: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


def seed_recipes(n_samples: int = MODEL_N_SAMPLES, epochs: int = SEED_EPOCHS) -> list[Recipe]:
    """The seed's nine, exactly as designed: 3 sizes x relu/tanh/sig, plain MSE."""
    return [
        Recipe(f"{size}-{act}", ModelConfig(size, act, n_samples), epochs=epochs, note="seed")
        for size in HIDDEN
        for act in ("relu", "tanh", "sig")
    ]


def extra_recipes(n_samples: int = MODEL_N_SAMPLES, epochs: int = SEED_EPOCHS) -> list[Recipe]:
    """Improvements beyond the seed, trained beside it, never instead of it."""
    return [
        Recipe(
            "med-tanh-spec",
            ModelConfig("med", "tanh", n_samples),
            epochs=epochs,
            spectral_weight=0.05,
            note="seed med-tanh + multi-resolution STFT loss",
        ),
        Recipe(
            "med-tanh-vae",
            ModelConfig("med", "tanh", n_samples, variational=True),
            epochs=epochs,
            spectral_weight=0.05,
            kl_weight=1e-3,
            augment=True,
            note="variational latent + STFT loss + augmentation",
        ),
    ]


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available (use --device cpu or auto)")
    return torch.device(requested)


def _augment(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    n = batch.shape[1]
    sign = torch.where(torch.rand(batch.shape[0], 1, generator=gen) < 0.5, -1.0, 1.0).to(batch)
    speed = 1.0 + PITCH_AUGMENT * (2 * torch.rand(1, generator=gen).item() - 1)
    stretched = F.interpolate(
        batch[:, None, :], size=max(2, int(round(n / speed))), mode="linear", align_corners=False
    )[:, 0]
    out = torch.zeros_like(batch)
    m = min(n, stretched.shape[1])
    out[:, :m] = stretched[:, :m]
    return out * sign


def _loss(recipe: Recipe, target, recon, mean, log_var) -> torch.Tensor:
    loss = F.mse_loss(recon, target)
    if recipe.spectral_weight:
        loss = loss + recipe.spectral_weight * spectral_loss(target, recon)
    if log_var is not None and recipe.kl_weight:
        kl = -0.5 * torch.mean(torch.sum(1 + log_var - mean**2 - log_var.exp(), dim=1))
        loss = loss + recipe.kl_weight * kl
    return loss


class _DeferredInterrupt:
    """The first Ctrl-C finishes the current epoch and saves an exact checkpoint; a second aborts."""

    def __enter__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _checkpoint_path(out_path: Path) -> Path:
    return out_path.with_name(out_path.stem + ".ckpt.safetensors")


def _save_checkpoint(
    path: Path,
    recipe,
    model,
    optimizer,
    gen: torch.Generator,
    epoch: int,
    extra: dict | None = None,
    best: dict | None = None,
) -> None:
    """`extra`: small JSON-able training state (early stopping); `best`: the best state dict so far."""
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous().clone() for k, v in best.items()})
    opt_state = optimizer.state_dict()
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.shuffle"] = gen.get_state()
    metadata = {
        "epoch": str(epoch),
        "recipe": json.dumps(recipe.to_dict()),
        "param_groups": json.dumps(opt_state["param_groups"]),
        "extra": json.dumps(extra or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)  # atomic: Ctrl-C mid-write leaves the previous checkpoint intact


def _load_checkpoint(path: Path, recipe, model, optimizer, gen: torch.Generator, device, with_best: bool = False):
    """Restores everything in place; returns the epoch, or (epoch, extra, best state dict) `with_best`."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()

    def settings(recipe_dict: dict) -> dict:  # the note is a comment, not a setting; tuples come back as lists
        return {k: v for k, v in json.loads(json.dumps(recipe_dict)).items() if k != "note"}

    if settings(json.loads(metadata["recipe"])) != settings(recipe.to_dict()):
        raise UserError(f"{path}: checkpoint was made with different settings; delete it or use another --out")
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v.to(device) for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
    optimizer.load_state_dict({"state": state, "param_groups": json.loads(metadata["param_groups"])})
    torch.set_rng_state(tensors["rng.torch"])
    gen.set_state(tensors["rng.shuffle"])
    if with_best:
        best = {k[5:]: v.to(device) for k, v in tensors.items() if k.startswith("best.")}
        return int(metadata["epoch"]), json.loads(metadata.get("extra", "{}")), best
    return int(metadata["epoch"])


def train(recipe: Recipe, data: Dataset, out_path: Path, device: str = "auto", progress: bool = True) -> Path:
    """Train (or resume) one recipe on `data`; returns the saved model's .safetensors path."""
    out_path = Path(out_path).with_suffix(".safetensors")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = SnareAutoencoder(recipe.model).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    n = recipe.model.n_samples
    train_waves = torch.from_numpy(np.ascontiguousarray(data.train.waves[:, :n])).to(dev)
    val_waves = torch.from_numpy(np.ascontiguousarray(data.val.waves[:, :n])).to(dev)

    ckpt = _checkpoint_path(out_path)
    start_epoch = _load_checkpoint(ckpt, recipe, model, optimizer, gen, dev) if ckpt.exists() else 0
    if start_epoch:
        log.info("%s: resuming from epoch %d (%s)", recipe.name, start_epoch, ckpt)

    bar = tqdm(
        range(start_epoch, recipe.epochs),
        initial=start_epoch,
        total=recipe.epochs,
        desc=f"{recipe.name:<14}",
        unit="epoch",
        disable=not progress,
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    try:
        with _DeferredInterrupt() as interrupt:
            for epoch in bar:
                model.train()
                order = torch.randperm(len(train_waves), generator=gen)
                total = 0.0
                for batch_idx in order.split(recipe.batch_size):
                    batch = train_waves[batch_idx.to(dev)]
                    if recipe.augment:
                        batch = _augment(batch.cpu(), gen).to(dev)
                    recon, mean, log_var = model(batch)
                    loss = _loss(recipe, batch, recon, mean, log_var)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(batch_idx)
                if (epoch + 1) % CHECKPOINT_EVERY_EPOCHS == 0 or interrupt.requested:
                    _save_checkpoint(ckpt, recipe, model, optimizer, gen, epoch + 1)
                    bar.set_postfix(loss=f"{total / len(train_waves):.4g}", val_mse=f"{_val_mse(model, val_waves):.4g}")
                if interrupt.requested:
                    raise UserError(
                        f"interrupted after epoch {epoch + 1}; checkpoint saved to {ckpt}, "
                        "run the same command to resume"
                    )
    finally:
        bar.close()
    seconds_per_epoch = (time.perf_counter() - started) / max(1, recipe.epochs - start_epoch)
    _export(model, recipe, data, out_path, seconds_per_epoch, dev)
    ckpt.unlink(missing_ok=True)
    return out_path


@torch.no_grad()
def _val_mse(model: SnareAutoencoder, val_waves: torch.Tensor) -> float:
    model.eval()
    recon, _, _ = model(val_waves)
    return F.mse_loss(recon, val_waves).item()


@torch.no_grad()
def _export(
    model: SnareAutoencoder, recipe: Recipe, data: Dataset, out_path: Path, seconds_per_epoch: float, dev
) -> None:
    model.eval()
    latents = model.encode(torch.from_numpy(data.train.waves).to(dev))[0].cpu().numpy()
    brightness, decay = describe(data.train.waves, recipe.sample_rate)
    knobs = fit_knob_map(latents, brightness, decay)
    tensors = {k: v.cpu().numpy() for k, v in model.state_dict().items()}
    meta = {
        "name": recipe.name,
        "architecture": recipe.model.to_dict(),
        "sample_rate": recipe.sample_rate,
        "knobs": {**knobs.to_dict(), "x_follows": "brightness", "y_follows": "decay"},
        "corpus": {
            "sha256": data.corpus_hash,
            "source": data.source,
            "n_train": len(data.train),
            "n_val": len(data.val),
            "val_kits": sorted(set(data.val.kits)),
        },
        "training": {
            **recipe.to_dict(),
            "seconds_per_epoch": round(seconds_per_epoch, 4),
            "device": str(dev),
            "torch": torch.__version__,
        },
        "metrics": {},
    }
    save_model(out_path, tensors, meta)
