"""Training the envelope snare: a decoder and one learned 2-D point per drum (no encoder).

Each training drum owns a point in the plane, learned beside the decoder (a "generative latent
optimisation" auto-decoder): a feed-forward encoder does not invert its decoder on unseen
sounds, and the instrument encodes dropped files by optimisation anyway. A drum recorded at
several velocities (a Hydrogen instrument's layers, a soundfont note at 40, 80 and 127) is one
point: its layers teach the decoder what velocity does to the sound, and the knobs still choose
the drum.

The loss compares each clip's STFT power with the decoder's *expected* power at its point and
velocity, computed in closed form (no rendering, no noise in the loss), three ways:
- the multi-resolution log-spectral distance (FFT 2048/512/128) over the whole clip;
- the same over the first ONSET_S only, at FFT 128 / hop 16: the crack, which a distance
  averaged over 1.5 s lets drown;
- the onset's envelope in the time domain: power over 0.7 ms at every fine frame (0.18 ms
  apart) of the first ONSET_S, so that the rise is as fast as the stick's;
- log band energies in the model's 32 bands (FFT 512): each band weighs the same, so the few
  bins below 150 Hz (the boom) count as much as the many above 5 kHz.

A velocity prior keeps a soft hit darker than a hard one at random points of the plane (the
first 100 ms's band-energy centroid, velocity 40 against 127, by a margin): the corpus's layers
teach what velocity does only weakly, since many are one sample at several levels.

The plane is kept full: a sliced-Wasserstein term pulls the drums' points towards a uniform
spread over [-1, 1]^2, so every knob position has snares near it. Points start at (brightness
rank, decay rank), which orients the knobs: x brighter, y longer. Every point decays to silence
by construction (the model's falling rates and tail ceiling), so no tail prior is needed.

Augmented clips (pitch, tone/noise remix, attack, tail, EQ tilt) fill the gaps between real
snares; they weigh less and never enter validation. Validation encodes the held-out kits on a
grid of points and stops early. On export, the knobs get a warp that makes equal turns sound
about equally different (`sound.even_steps`).
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
from ..model.decoder import MIDI_VELOCITY_MAX
from ..model.descriptors import describe
from ..model.envelope import (
    ATTACK_KNOTS_S,
    LOG_EPS,
    RESOLUTIONS,
    EnvelopeConfig,
    EnvelopeSnare,
    band_edges_hz,
    band_gains,
    decay_segments_s,
    fall_bounds_np_per_s,
    partial_shape,
    render_grid,
    spectral_geometry,
)
from ..model.file import save_model
from ..model.knobs import KnobMap
from .augment import augment_corpus
from .dataset import Dataset
from .envelope import EnvelopeDecoder, frames_of, power_spectrogram, sparse_weights, stft_power, to_numpy_layers
from .sound import even_steps
from .train import _checkpoint_path, _DeferredInterrupt, _load_checkpoint, _save_checkpoint, pick_device

log = logging.getLogger(__name__)

VAL_GRID_STEPS = 17
VAL_VELOCITIES = (40, 80, MIDI_VELOCITY_MAX)  # validation renders each held-out clip at the nearest of these
UNIFORM_PROJECTIONS = 64
INITIAL_PARTIAL_LOG_AMP = -4.0  # partials start at -35 dB and grow where the data has tone
ONSET_S = 0.03
ONSET_RESOLUTION = (128, 16)  # (n_fft, hop): 2.9-ms windows every 0.36 ms
RISE_RMS_S = 0.0007  # the onset's envelope in the time domain: power over 0.7 ms at each fine frame
VELOCITY_WINDOW_S = 0.1  # the velocity prior compares the first 100 ms (the velocity measure's window)
VELOCITY_SOFT = 40
VELOCITY_PROBES = 32
BAND_RESOLUTION = 1  # index into RESOLUTIONS of the band-energy term: FFT 512


@dataclass(frozen=True)
class EnvelopeRecipe:
    name: str
    model: EnvelopeConfig
    epochs: int = 300
    batch_size: int = 32
    learning_rate: float = 2e-3
    point_learning_rate: float = 2e-2
    uniform_weight: float = 2.0  # the plane-filling term, against the reconstruction's ~1-2
    augment_per_clip: int = 2
    augment_weight: float = 0.3
    onset_weight: float = 1.0  # the first ONSET_S, against the whole clip's ~1-2
    rise_weight: float = 1.0
    band_weight: float = 0.5
    # A harder hit is brighter: at random points, the first 100 ms of a hit at velocity 40 must be
    # darker than at 127 by this many octaves of band-energy centroid (the corpus's real drums:
    # about +0.3 octave from 70 to 120). The layers alone taught it weakly: many are one sample at
    # several levels.
    velocity_margin_octaves: float = 0.25
    velocity_weight: float = 1.0
    eval_every_epochs: int = 10
    patience_evals: int = 8  # stop when this many validations in a row bring nothing better
    seed: int = 0
    note: str = field(default="", compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


class PointsAndDecoder(torch.nn.Module):
    """The decoder plus the training drums' learned points: one state dict, one checkpoint."""

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


class OnsetAndBands(torch.nn.Module):
    """The two terms that look where the whole-clip distance does not: the onset at fine time
    resolution, and every band's energy at equal weight."""

    def __init__(self, config: EnvelopeConfig):
        super().__init__()
        n_fft, hop = ONSET_RESOLUTION
        onset = spectral_geometry(config, n_fft, hop)
        self.n_onset = int(ONSET_S * config.sample_rate) // hop + 1
        for name, value in (
            ("onset_band_power", onset.band_power),
            ("onset_freqs", onset.freqs_hz),
            ("pool", band_pool(config, RESOLUTIONS[BAND_RESOLUTION][0])),
        ):
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32), persistent=False)
        self.register_buffer("onset_w2", sparse_weights(onset.w2[: self.n_onset]), persistent=False)
        self.register_buffer("onset_w1", sparse_weights(onset.w1[: self.n_onset]), persistent=False)
        self.sample_rate = config.sample_rate
        grid = render_grid(config)
        self.rise_frames = grid[grid < ONSET_S * config.sample_rate]
        self.n_rise = self.rise_frames.size

    def onset_power(self, decoder: EnvelopeDecoder, params) -> torch.Tensor:
        """(B, bins, n_onset) expected power of the first ONSET_S at ONSET_RESOLUTION."""
        log_env, freq, amp, decay = params
        partial_env = amp[..., None] * torch.exp(-decoder.grid_t / decay[..., None])
        shape = partial_shape(
            self.onset_freqs[None, None, :], freq[..., None], ONSET_RESOLUTION[0], self.sample_rate, lib=torch
        )
        bands = frames_of(torch.exp(2.0 * log_env), self.onset_w2)
        return power_spectrogram(self.onset_band_power, bands, shape, frames_of(partial_env, self.onset_w1))

    def targets(self, waves: np.ndarray, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The clips' log onset power (N, bins, n_onset), log band energies (N, n_bands, frames),
        and log power over RISE_RMS_S at the fine grid's frames of the onset (N, n_rise)."""
        rise = np.log(rise_power(waves, self.rise_frames, int(RISE_RMS_S * self.sample_rate)) + LOG_EPS)
        onset, bands = [], []
        n_fft, hop = ONSET_RESOLUTION
        with torch.no_grad():
            for i in range(0, len(waves), batch):
                w = torch.from_numpy(np.ascontiguousarray(waves[i : i + batch], dtype=np.float32))
                onset.append(torch.log(stft_power(w, n_fft, hop)[..., : self.n_onset] + LOG_EPS))
                n_fft_b, hop_b = RESOLUTIONS[BAND_RESOLUTION]
                bands.append(torch.log(self.pool @ stft_power(w, n_fft_b, hop_b) + LOG_EPS))
        return torch.cat(onset), torch.cat(bands), torch.tensor(rise, dtype=torch.float32)

    def rise_power(self, decoder: EnvelopeDecoder, params) -> torch.Tensor:
        """(B, n_rise) expected power at the fine grid's frames over the first ONSET_S: every
        band's, plus each partial's mean square (a^2 / 2)."""
        log_env, _freq, amp, decay = params
        t = decoder.grid_t[: self.n_rise]
        bands = torch.exp(2.0 * log_env[..., : self.n_rise]).sum(dim=1)
        return bands + 0.5 * (amp[..., None] ** 2 * torch.exp(-2.0 * t / decay[..., None])).sum(dim=1)

    def __call__(self, decoder, params, expected, onset_target, band_target, rise_target):
        """Per clip (B,) each: the onset's spectrogram, the onset's envelope in the time domain,
        and the bands' energies, as mean |log-magnitude| differences."""
        onset = 0.5 * (torch.log(self.onset_power(decoder, params) + LOG_EPS) - onset_target).abs().mean(dim=(1, 2))
        rise = 0.5 * (torch.log(self.rise_power(decoder, params) + LOG_EPS) - rise_target).abs().mean(dim=1)
        bands = torch.log(self.pool @ expected[BAND_RESOLUTION] + LOG_EPS)
        return onset, rise, 0.5 * (bands - band_target).abs().mean(dim=(1, 2))


def rise_power(waves: np.ndarray, frames: np.ndarray, width: int) -> np.ndarray:
    """(N, n) clips -> (N, len(frames)) mean square over `width` samples centred on each frame."""
    squares = np.concatenate([np.zeros((len(waves), 1)), np.cumsum(waves.astype(np.float64) ** 2, axis=1)], axis=1)
    lo = np.clip(frames - width // 2, 0, waves.shape[1])
    hi = np.clip(frames - width // 2 + width, 0, waves.shape[1])
    return (squares[:, hi] - squares[:, lo]) / width


def band_pool(config: EnvelopeConfig, n_fft: int) -> np.ndarray:
    """(n_bands, bins): each band's share of each STFT bin (the filterbank's power gains)."""
    return band_gains(config, np.fft.rfftfreq(n_fft, 1.0 / config.sample_rate)) ** 2


class VelocityPrior(torch.nn.Module):
    """A soft hit darker than a hard one, at random points within the points' reach."""

    def __init__(self, config: EnvelopeConfig, margin_octaves: float):
        super().__init__()
        grid_s = render_grid(config) / config.sample_rate
        early = grid_s < VELOCITY_WINDOW_S
        spacing = np.gradient(grid_s)[early]  # a grid frame's share of time (the fine ones count less)
        centres = np.log2(band_edges_hz(config)[1:-1])
        self.register_buffer("spacing", torch.tensor(spacing, dtype=torch.float32), persistent=False)
        self.register_buffer("octaves", torch.tensor(centres, dtype=torch.float32), persistent=False)
        self.n_early, self.margin = int(early.sum()), margin_octaves

    def centroid(self, log_env: torch.Tensor) -> torch.Tensor:
        energy = torch.exp(2.0 * log_env[..., : self.n_early]) @ self.spacing  # (B, n_bands)
        return (energy * self.octaves).sum(dim=1) / (energy.sum(dim=1) + 1e-12)

    def __call__(self, decoder: EnvelopeDecoder, points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        lo, hi = points.detach().min(0).values, points.detach().max(0).values
        probe = lo + (hi - lo) * torch.rand(VELOCITY_PROBES, 2, generator=gen).to(points.device)
        soft = torch.full((VELOCITY_PROBES,), float(VELOCITY_SOFT), device=points.device)
        hard = torch.full((VELOCITY_PROBES,), float(MIDI_VELOCITY_MAX), device=points.device)
        brighter = self.centroid(decoder(probe, hard)[0]) - self.centroid(decoder(probe, soft)[0])
        return torch.relu(self.margin - brighter).mean()


def uniform_penalty(points: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Sliced Wasserstein-2 distance between the points and as many uniform samples of [-1, 1]^2."""
    angles = torch.rand(UNIFORM_PROJECTIONS, generator=gen) * np.pi
    directions = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (P, 2)
    directions = directions.to(points.device)
    uniform = (torch.rand(points.shape[0], 2, generator=gen) * 2 - 1).to(points.device)
    a = torch.sort(points @ directions.T, dim=0).values
    b = torch.sort(uniform @ directions.T, dim=0).values
    return ((a - b) ** 2).mean()


def mean_knot_levels(waves: np.ndarray, config: EnvelopeConfig) -> np.ndarray:
    """(n_bands, n_knots): the clips' mean log band RMS around each envelope knot. The decoder
    starts from it, so training begins at the average snare instead of at noise."""
    length = waves.shape[1]
    gains = band_gains(config, np.fft.rfftfreq(length, 1.0 / config.sample_rate))
    spectra = np.fft.rfft(waves.astype(np.float64), axis=1)
    knots = np.minimum(np.round(np.array(config.knots_s) * config.sample_rate).astype(int), length - 1)
    half = np.maximum(8, knots // 8)  # windows widen with time, as the knots do
    out = np.zeros((config.n_bands, knots.size))
    for b in range(config.n_bands):
        band = np.fft.irfft(spectra * gains[b], n=length, axis=1)
        for k, (at, h) in enumerate(zip(knots, half)):
            rms = np.sqrt(np.mean(band[:, max(0, at - h) : at + h] ** 2, axis=1) + 1e-12)
            out[b, k] = np.log(rms).mean()
    return out


def initial_head_bias(levels: np.ndarray, config: EnvelopeConfig) -> np.ndarray:
    """(n_bands, n_knots) mean knot levels -> the hard head's band bias: the attack's levels,
    then each segment's raw rate (the sigmoid's inverse of the mean fall, within its bounds)."""
    a = len(ATTACK_KNOTS_S)
    lo, hi = fall_bounds_np_per_s(config)
    segment_s = decay_segments_s(config)[1]
    rate = np.maximum(-np.diff(levels[:, a - 1 :], axis=1), 0.0) / segment_s
    frac = np.clip((rate - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    return np.concatenate([levels[:, :a], np.log(frac / (1 - frac))], axis=1)


def initial_points(waves: np.ndarray, sample_rate: int) -> np.ndarray:
    """(brightness rank, decay rank) spread over [-0.9, 0.9]^2: the knobs' meaning, from the start."""
    brightness, decay = describe(waves, sample_rate)
    ranks = [np.argsort(np.argsort(v)) for v in (brightness, decay)]
    return np.stack([(r + 0.5) / len(r) * 1.8 - 0.9 for r in ranks], axis=1)


def drum_index(drums: list[str], velocity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each clip's drum number (N,), and each drum's hardest clip (n_drums,): the one its
    point starts from, and what the knob map is fitted to."""
    names = list(dict.fromkeys(drums))
    number = {name: i for i, name in enumerate(names)}
    index = np.array([number[d] for d in drums])
    hardest = np.array([max(np.flatnonzero(index == i), key=lambda j: velocity[j]) for i in range(len(names))])
    return index, hardest


@torch.no_grad()
def grid_encode_distance(
    decoder: EnvelopeDecoder, targets: list[torch.Tensor], velocity: np.ndarray, steps: int = VAL_GRID_STEPS
) -> np.ndarray:
    """Each clip's distance to its closest point of a grid over the plane (validation's encode),
    each rendered at the validation velocity nearest its own."""
    device = targets[0].device
    axis = torch.linspace(-1, 1, steps, device=device)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), dim=-1).reshape(-1, 2)
    nearest = np.array(VAL_VELOCITIES)[np.argmin(np.abs(velocity[:, None] - np.array(VAL_VELOCITIES)), axis=1)]
    best = torch.full((targets[0].shape[0],), float("inf"), device=device)
    for v in np.unique(nearest):
        clips = torch.from_numpy(np.flatnonzero(nearest == v)).to(device)
        mine = [t[clips] for t in targets]
        for chunk in grid.split(32):
            expected = decoder.expected_power(decoder(chunk, torch.full((len(chunk),), float(v), device=device)))
            for j in range(len(chunk)):
                d = spectral_distance([e[j : j + 1] for e in expected], mine)
                best[clips] = torch.minimum(best[clips], d)
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
    per_clip = recipe.augment_per_clip
    extra = augment_corpus(real, config.sample_rate, per_clip, np.random.default_rng(recipe.seed))
    waves = np.concatenate([real, extra]) if len(extra) else real
    # A real clip belongs to its drum; each augmented clip is a drum of its own, at its source's velocity.
    drums = list(data.train.drums) + [f"augmented {j}" for j in range(len(extra))]
    velocity = np.concatenate([data.train.velocity, np.repeat(data.train.velocity, per_clip)[: len(extra)]])
    clip_drum, hardest = drum_index(drums, velocity)
    weights = torch.tensor([1.0] * len(real) + [recipe.augment_weight] * len(extra), device=dev)
    targets = [t.to(dev) for t in log_power(waves)]
    val_targets = [t.to(dev) for t in log_power(data.val.waves)]
    extra_terms = OnsetAndBands(config).to(dev)
    onset_targets, band_targets, rise_targets = (t.to(dev) for t in extra_terms.targets(waves))
    clip_drum_t = torch.from_numpy(clip_drum).to(dev)
    velocity_t = torch.tensor(velocity, dtype=torch.float32, device=dev)

    model = PointsAndDecoder(config, initial_points(waves[hardest], config.sample_rate)).to(dev)
    with torch.no_grad():  # start at the average snare, with quiet partials and small point effects
        last = model.decoder.layers[-1]
        last.weight.mul_(0.1)
        last.bias.zero_()
        bands = config.n_band_outputs
        bias = initial_head_bias(mean_knot_levels(real, config), config)
        last.bias[:bands] = torch.tensor(bias.reshape(-1), dtype=torch.float32)
        last.bias[bands + config.n_partials : bands + 2 * config.n_partials] = INITIAL_PARTIAL_LOG_AMP
    velocity_prior = VelocityPrior(config, recipe.velocity_margin_octaves).to(dev)
    optimizer = torch.optim.Adam(
        [
            {"params": model.decoder.parameters(), "lr": recipe.learning_rate},
            {"params": [model.points], "lr": recipe.point_learning_rate},
        ]
    )
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
                    params = model.decoder(model.points[clip_drum_t[idx]], velocity_t[idx])
                    expected = model.decoder.expected_power(params)
                    whole = spectral_distance(expected, [t[idx] for t in targets])
                    onset, rise, bands = extra_terms(
                        model.decoder, params, expected, onset_targets[idx], band_targets[idx], rise_targets[idx]
                    )
                    per_clip_loss = (
                        whole + recipe.onset_weight * onset + recipe.rise_weight * rise + recipe.band_weight * bands
                    )
                    rec = (per_clip_loss * weights[idx]).sum() / weights[idx].sum()
                    loss = (
                        rec
                        + recipe.uniform_weight * uniform_penalty(model.points, gen)
                        + recipe.velocity_weight * velocity_prior(model.decoder, model.points, gen)
                    )
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    total += rec.item() * len(idx)
                if (epoch + 1) % recipe.eval_every_epochs == 0 or epoch + 1 == recipe.epochs:
                    val = float(np.median(grid_encode_distance(model.decoder, val_targets, data.val.velocity)))
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
    real_drums = hardest[hardest < len(real)]
    _export(model, recipe, data, real_drums, waves[real_drums], out_path, seconds_per_epoch, epochs_run, state, dev)
    ckpt.unlink(missing_ok=True)
    return out_path


def _export(
    model: PointsAndDecoder,
    recipe: EnvelopeRecipe,
    data: Dataset,
    real_drums: np.ndarray,
    real: np.ndarray,
    out_path: Path,
    seconds_per_epoch: float,
    epochs_run: int,
    state: dict,
    dev,
) -> None:
    """`real_drums`: the drums of the real corpus (their numbers), `real` their hardest clips."""
    points = model.points.detach().cpu().numpy().astype(np.float64)[: len(real_drums)]
    brightness, decay = describe(real, recipe.model.sample_rate)
    # float16 halves the file; the evaluation is run on the stored weights, so it shows any loss.
    tensors = {k: v.astype(np.float16) for k, v in to_numpy_layers(model.decoder).items()}
    stored = [
        (tensors[f"mlp.{i}.weight"].astype(np.float32), tensors[f"mlp.{i}.bias"].astype(np.float32))
        for i in range(len(model.decoder.layers))
    ]
    playable = SimpleNamespace(
        knobs=knob_map_for(points, brightness, decay), decode=EnvelopeSnare(recipe.model, stored).decode
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
