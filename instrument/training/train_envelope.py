"""Training the envelope snare: a decoder and one learned 2-D point per clip (no encoder).

Each training clip owns a point in the plane, learned beside the decoder (a
"generative latent optimisation" auto-decoder): a feed-forward encoder does
not invert its decoder on unseen sounds, and the instrument encodes dropped
files by optimisation anyway. The loss is the multi-resolution log-spectral
distance between each clip's STFT power and the decoder's *expected* power at
its point, computed in closed form (no rendering, no noise in the loss).

The plane is kept full: a sliced-Wasserstein term pulls the clips' points
towards a uniform spread over [-1, 1]^2, so every knob position has snares
near it. Points start at (brightness rank, decay rank), which orients the
knobs: x brighter, y longer.

Every knob position decays to silence: a tail prior holds the high bands'
late frames under a ceiling at random points of the plane, not only at the
training clips' points (the corners are where a decoder is left to itself).

Augmented clips (pitch, tone/noise remix, attack, tail, EQ tilt) fill the
gaps between real snares; they weigh less and never enter validation.
Validation encodes the held-out kits on a grid of points and stops early.
On export, the knobs get a warp that makes equal turns sound about equally
different (`sound.even_steps`).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..model.descriptors import describe
from ..model.envelope import LOG_EPS, RESOLUTIONS, EnvelopeConfig, EnvelopeSnare, band_edges_hz, band_gains
from ..model.file import save_model
from ..model.knobs import KnobMap
from .augment import augment_corpus
from .dataset import Dataset
from .envelope import EnvelopeDecoder, stft_power, to_numpy_layers
from .sound import TAIL_BAND_HZ, even_steps
from .train import _checkpoint_path, _DeferredInterrupt, _load_checkpoint, _save_checkpoint, pick_device

log = logging.getLogger(__name__)

VAL_GRID_STEPS = 17
UNIFORM_PROJECTIONS = 64
TAIL_PROBES = 32
TAIL_FROM_S = 0.3
INITIAL_PARTIAL_LOG_AMP = -4.0  # partials start at -35 dB and grow where the data has tone


@dataclass(frozen=True)
class EnvelopeRecipe:
    name: str
    model: EnvelopeConfig
    epochs: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-3
    point_learning_rate: float = 2e-2
    uniform_weight: float = 2.0  # the plane-filling term, against the reconstruction's ~1-2
    augment_per_clip: int = 3
    augment_weight: float = 0.3
    # Every knob position decays: at random points of the plane, the 8-16 kHz bands after 0.3 s
    # are held under a ceiling (each band, re a peak of 1; four bands sum to about -56 dB).
    tail_ceiling_db: float = -62.0
    tail_weight: float = 1.0
    eval_every_epochs: int = 10
    patience_evals: int = 8  # stop when this many validations in a row bring nothing better
    seed: int = 0
    note: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


class PointsAndDecoder(torch.nn.Module):
    """The decoder plus the training clips' learned points: one state dict, one checkpoint."""

    def __init__(self, config: EnvelopeConfig, points: np.ndarray):
        super().__init__()
        self.decoder = EnvelopeDecoder(config)
        self.points = torch.nn.Parameter(torch.tensor(points, dtype=torch.float32))


def log_power(waves: np.ndarray, batch: int = 64) -> list[torch.Tensor]:
    """Per resolution, (N, bins, frames) log STFT power of the clips: the fixed training targets."""
    out = [[] for _ in RESOLUTIONS]
    with torch.no_grad():
        for i in range(0, len(waves), batch):
            w = torch.from_numpy(np.ascontiguousarray(waves[i : i + batch], dtype=np.float32))
            for r, (n_fft, hop) in enumerate(RESOLUTIONS):
                out[r].append(torch.log(stft_power(w, n_fft, hop) + LOG_EPS))
    return [torch.cat(parts) for parts in out]


def spectral_distance(expected: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Mean |log-magnitude| difference per clip over the resolutions: (B,)"""
    total = 0.0
    for power, target in zip(expected, targets):
        total = total + 0.5 * (torch.log(power + LOG_EPS) - target).abs().mean(dim=(1, 2))
    return total / len(expected)


class TailPrior:
    """A penalty on high bands that still sound late, at random points within the points' reach."""

    def __init__(self, config: EnvelopeConfig, ceiling_db: float):
        centres = band_edges_hz(config)[1:-1]
        frame_s = np.arange(config.n_frames) * config.hop / config.sample_rate
        self.bands = torch.from_numpy(np.flatnonzero((centres >= TAIL_BAND_HZ[0]) & (centres < TAIL_BAND_HZ[1])))
        self.frames = torch.from_numpy(np.flatnonzero(frame_s >= TAIL_FROM_S))
        self.ceiling = float(np.log(10 ** (ceiling_db / 20)))

    def __call__(self, decoder: EnvelopeDecoder, points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        lo, hi = points.detach().min(0).values, points.detach().max(0).values
        probe = lo + (hi - lo) * torch.rand(TAIL_PROBES, 2, generator=gen).to(points.device)
        log_env = decoder(probe)[0][:, self.bands][:, :, self.frames]
        return torch.relu(log_env - self.ceiling).pow(2).mean()


def uniform_penalty(points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between the points and as many uniform samples of [-1, 1]^2."""
    angles = torch.rand(UNIFORM_PROJECTIONS, generator=gen) * np.pi
    directions = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (P, 2)
    directions = directions.to(points.device)
    uniform = (torch.rand(points.shape[0], 2, generator=gen) * 2 - 1).to(points.device)
    a = torch.sort(points @ directions.T, dim=0).values
    b = torch.sort(uniform @ directions.T, dim=0).values
    return ((a - b) ** 2).mean()


def mean_log_envelope(waves: np.ndarray, config: EnvelopeConfig) -> np.ndarray:
    """(n_bands, n_frames): the clips' mean log band RMS per envelope frame. The decoder starts
    from it, so training begins at the average snare instead of at noise."""
    length = (config.n_frames - 1) * config.hop
    padded = np.zeros((len(waves), length))
    padded[:, : min(length, waves.shape[1])] = waves[:, :length]
    gains = band_gains(config, np.fft.rfftfreq(length, 1.0 / config.sample_rate))
    spectra = np.fft.rfft(padded, axis=1)
    out = np.zeros((config.n_bands, config.n_frames))
    for b in range(config.n_bands):
        band = np.fft.irfft(spectra * gains[b], n=length, axis=1).reshape(len(waves), config.n_frames - 1, config.hop)
        rms = np.sqrt(np.mean(band**2, axis=2) + 1e-12)  # (clips, n_frames - 1)
        log_rms = np.log(np.concatenate([rms, rms[:, -1:]], axis=1))
        out[b] = log_rms.mean(axis=0)
    return out


def initial_points(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """(brightness rank, decay rank) spread over [-0.9, 0.9]^2: the knobs' meaning, from the start."""
    brightness, decay = describe(waves, sample_rate)
    ranks = [np.argsort(np.argsort(v)) for v in (brightness, decay)]
    return np.stack([(r + 0.5) / len(r) * 1.8 - 0.9 for r in ranks], axis=1)


@torch.no_grad()
def grid_encode_distance(
    decoder: EnvelopeDecoder, targets: list[torch.Tensor], steps: int = VAL_GRID_STEPS
) -> np.ndarray:
    """Each clip's distance to its closest point of a grid over the plane (validation's encode)."""
    axis = torch.linspace(-1, 1, steps, device=targets[0].device)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    best = torch.full((targets[0].shape[0],), float("inf"), device=targets[0].device)
    for chunk in grid.split(32):
        expected = decoder.expected_power(decoder(chunk))
        for j in range(len(chunk)):
            one = [e[j : j + 1] for e in expected]
            best = torch.minimum(best, spectral_distance(one, targets))
    return best.cpu().numpy()


def knob_map_for(points: np.ndarray, brightness: np.ndarray, decay: np.ndarray) -> KnobMap:
    """The square's symmetry (axis swap, flips) under which x follows brightness and y decay,
    stretched over where the points are."""
    best = None
    for swap in (False, True):
        for sx in (1, -1):
            for sy in (1, -1):
                axes = np.array([[0, 1], [1, 0]] if swap else [[1, 0], [0, 1]], dtype=np.float64) * np.array(
                    [[sx], [sy]]
                )
                uv = points @ axes.T
                score = np.corrcoef(uv[:, 0], brightness)[0, 1] + np.corrcoef(uv[:, 1], decay)[0, 1]
                if best is None or score > best[0]:
                    best = (score, axes, uv)
    _, axes, uv = best
    lo, hi = np.percentile(uv, 1, axis=0), np.percentile(uv, 99, axis=0)
    return KnobMap(axes, lo, hi)


def train_envelope(
    recipe: EnvelopeRecipe, data: Dataset, out_path: Path, device: str = "auto", progress: bool = True
) -> Path:
    """Train (or resume) one envelope recipe on `data`; returns the saved model's .safetensors path."""
    out_path = Path(out_path).with_suffix(".safetensors")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    config = recipe.model
    if data.train.waves.shape[1] != config.n_samples:
        raise UserError(f"the data has {data.train.waves.shape[1]} samples per snare, the recipe {config.n_samples}")
    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)

    real = data.train.waves
    extra = augment_corpus(real, config.sample_rate, recipe.augment_per_clip, np.random.default_rng(recipe.seed))
    waves = np.concatenate([real, extra]) if len(extra) else real
    weights = torch.tensor([1.0] * len(real) + [recipe.augment_weight] * len(extra), device=dev)
    targets = [t.to(dev) for t in log_power(waves)]
    val_targets = [t.to(dev) for t in log_power(data.val.waves)]

    model = PointsAndDecoder(config, initial_points(waves, config.sample_rate)).to(dev)
    with torch.no_grad():  # start at the average snare, with quiet partials and small point effects
        last = model.decoder.layers[-1]
        last.weight.mul_(0.1)
        last.bias.zero_()
        head = config.n_bands * config.n_frames
        last.bias[:head] = torch.tensor(mean_log_envelope(real, config).reshape(-1), dtype=torch.float32)
        last.bias[head + config.n_partials : head + 2 * config.n_partials] = INITIAL_PARTIAL_LOG_AMP
    optimizer = torch.optim.Adam(
        [
            {"params": model.decoder.parameters(), "lr": recipe.learning_rate},
            {"params": [model.points], "lr": recipe.point_learning_rate},
        ]
    )
    tail_prior = TailPrior(config, recipe.tail_ceiling_db)
    ckpt = _checkpoint_path(out_path)
    start_epoch, state = 0, {"best_val": float("inf"), "bad_evals": 0, "best_epoch": 0}
    best_state = copy.deepcopy(model.state_dict())
    if ckpt.exists():
        start_epoch, state, best_state = _load_checkpoint(ckpt, recipe, model, optimizer, gen, dev, with_best=True)
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
    epochs_run = start_epoch
    try:
        with _DeferredInterrupt() as interrupt:
            for epoch in bar:
                if state["bad_evals"] >= recipe.patience_evals:
                    break  # resumed from the checkpoint of an early stop
                epochs_run = epoch + 1
                # Cosine decay to a tenth: a function of the epoch alone, so a resumed run matches.
                decay = 0.1 + 0.45 * (1 + np.cos(np.pi * epoch / recipe.epochs))
                for group, base in zip(optimizer.param_groups, (recipe.learning_rate, recipe.point_learning_rate)):
                    group["lr"] = base * decay
                total = 0.0
                for idx in torch.randperm(len(waves), generator=gen).to(dev).split(recipe.batch_size):
                    expected = model.decoder.expected_power(model.decoder(model.points[idx]))
                    rec = (spectral_distance(expected, [t[idx] for t in targets]) * weights[idx]).sum() / weights[
                        idx
                    ].sum()
                    loss = (
                        rec
                        + recipe.uniform_weight * uniform_penalty(model.points, gen)
                        + recipe.tail_weight * tail_prior(model.decoder, model.points, gen)
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += rec.item() * len(idx)
                if (epoch + 1) % recipe.eval_every_epochs == 0 or epoch + 1 == recipe.epochs:
                    val = float(np.median(grid_encode_distance(model.decoder, val_targets)))
                    if val < state["best_val"]:
                        state.update(best_val=val, bad_evals=0, best_epoch=epoch + 1)
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        state["bad_evals"] += 1
                    bar.set_postfix(
                        train=f"{total / len(waves):.3f}",
                        val=f"{val:.3f}",
                        best=f"{state['best_val']:.3f}@{state['best_epoch']}",
                    )
                    _save_checkpoint(ckpt, recipe, model, optimizer, gen, epoch + 1, extra=state, best=best_state)
                    if state["bad_evals"] >= recipe.patience_evals:
                        log.info(
                            "%s: stopped early at epoch %d; best validation at epoch %d",
                            recipe.name,
                            epoch + 1,
                            state["best_epoch"],
                        )
                        break
                if interrupt.requested:
                    _save_checkpoint(ckpt, recipe, model, optimizer, gen, epoch + 1, extra=state, best=best_state)
                    raise UserError(
                        f"interrupted after epoch {epoch + 1}; checkpoint saved to {ckpt}, "
                        "run the same command to resume"
                    )
    finally:
        bar.close()
    seconds_per_epoch = (time.perf_counter() - started) / max(1, epochs_run - start_epoch)
    model.load_state_dict(best_state)
    _export(model, recipe, data, waves[: len(real)], out_path, seconds_per_epoch, epochs_run, state, dev)
    ckpt.unlink(missing_ok=True)
    return out_path


def _export(
    model: PointsAndDecoder,
    recipe: EnvelopeRecipe,
    data: Dataset,
    real: np.ndarray,
    out_path: Path,
    seconds_per_epoch: float,
    epochs_run: int,
    state: dict,
    dev,
) -> None:
    points = model.points.detach().cpu().numpy().astype(np.float64)
    brightness, decay = describe(real, recipe.model.sample_rate)
    # float16 halves the file; the evaluation is run on the stored weights, so it shows any loss.
    tensors = {k: v.astype(np.float16) for k, v in to_numpy_layers(model.decoder).items()}
    stored = [
        (tensors[f"mlp.{i}.weight"].astype(np.float32), tensors[f"mlp.{i}.bias"].astype(np.float32))
        for i in range(len(model.decoder.layers))
    ]
    playable = SimpleNamespace(
        knobs=knob_map_for(points[: len(real)], brightness, decay), decode=EnvelopeSnare(recipe.model, stored).decode
    )
    knobs = even_steps(playable)
    meta = {
        "name": recipe.name,
        "architecture": recipe.model.to_dict(),
        "sample_rate": recipe.model.sample_rate,
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
            "epochs_run": epochs_run,
            "best_epoch": state["best_epoch"],
            "best_val_distance": state["best_val"],
            "device": str(dev),
            "torch": torch.__version__,
        },
        "metrics": {},
    }
    save_model(out_path, tensors, meta)
