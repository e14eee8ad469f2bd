"""Evaluation of trained models on the held-out kits, and the model card's table.

Every number is computed through the numpy decoder, exactly as the
instrument plays it. The log-STFT distance uses torch (training side).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from ..paths import DEFAULT_CONFIG_PATH
from .dataset import Dataset
from ..model.file import load_model
from .spectral import log_stft_distance

GRID_STEPS = 9
SILENT_PEAK = 1e-3  # -60 dBFS
MAX_SHIPPED_MB = 50.0
# Opposite knob corners must differ at least this much (log-STFT): a collapsed latent (dead relu)
# plays one average snare everywhere, which scores well on reconstruction and is useless to play.
MIN_CORNER_LOG_STFT = 0.3
# The attack is what a listener tells snares apart by: at least one pair of opposite corners must
# start differently (correlation of their first 93 ms below this), or the knobs only move the tail.
MAX_CORNER_ATTACK_CORRELATION = 0.9
ATTACK_SAMPLES = 4096
TABLE_BEGIN, TABLE_END = "<!-- zoo-table:begin -->", "<!-- zoo-table:end -->"


def _lsd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Log-STFT distance per item, (B, n) x2 -> (B,)"""
    with torch.no_grad():
        return log_stft_distance(torch.from_numpy(np.atleast_2d(a)), torch.from_numpy(np.atleast_2d(b))).numpy()


def _recon_metrics(target: np.ndarray, recon: np.ndarray) -> dict:
    return {"mse": float(np.mean((recon - target) ** 2)), "log_stft": float(np.mean(_lsd(target, recon)))}


def pca2_baseline(data: Dataset) -> dict:
    """A linear 2-D latent fitted on the same training split: what the autoencoders must beat."""
    mean = data.train.waves.mean(axis=0)
    _, _, vt = np.linalg.svd(data.train.waves - mean, full_matrices=False)
    basis = vt[:2]  # (2, n_samples)
    recon = mean + ((data.val.waves - mean) @ basis.T) @ basis
    return _recon_metrics(data.val.waves, recon.astype(np.float32))


def grid_metrics(model) -> dict:
    """Decode a 9x9 grid over the knob range: finite, not silent, and how different neighbours are."""
    ccs = np.linspace(0, 127, GRID_STEPS)
    latents = np.array([[model.knobs.cc_to_latent(x, y) for x in ccs] for y in ccs])  # (9, 9, 2), [row=y, col=x]
    waves = model.decode(latents.reshape(-1, 2)).reshape(GRID_STEPS, GRID_STEPS, -1)
    flat = waves.reshape(-1, waves.shape[-1])
    finite = bool(np.all(np.isfinite(flat)))
    peaks = np.max(np.abs(np.nan_to_num(flat)), axis=1)
    # Compare shapes, not levels: the instrument plays every snare at its own level.
    norm = np.nan_to_num(flat) / np.maximum(peaks, 1e-9)[:, None]
    grid = norm.reshape(waves.shape)
    right = _lsd(grid[:, :-1].reshape(-1, grid.shape[-1]), grid[:, 1:].reshape(-1, grid.shape[-1]))
    down = _lsd(grid[:-1, :].reshape(-1, grid.shape[-1]), grid[1:, :].reshape(-1, grid.shape[-1]))
    corners = _lsd(np.stack([grid[0, 0], grid[0, -1]]), np.stack([grid[-1, -1], grid[-1, 0]]))
    attacks = [(grid[0, 0], grid[-1, -1]), (grid[0, -1], grid[-1, 0])]
    attack_corr = min(float(np.dot(a[:ATTACK_SAMPLES], b[:ATTACK_SAMPLES])
                            / (np.linalg.norm(a[:ATTACK_SAMPLES]) * np.linalg.norm(b[:ATTACK_SAMPLES]) + 1e-12)) for a, b in attacks)
    return {
        "all_finite": finite,
        "silent": int(np.sum(peaks < SILENT_PEAK)),
        "neighbour_log_stft": float(np.mean(np.concatenate([right, down]))),
        "corner_log_stft": float(np.mean(corners)),
        "corner_attack_correlation": attack_corr,
    }


def decode_ms(model, repeats: int = 30) -> float:
    latent = model.knobs.cc_to_latent(64, 64)
    model.decode(latent)  # warm the caches once, as the instrument does at start-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model.decode(latent)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def evaluate_model(model_path: Path, data: Dataset) -> dict:
    """Compute every metric for one model and store them in its .json."""
    model = load_model(model_path)
    recon = model.decode(model.encode(data.val.waves))
    size_mb = model_path.stat().st_size / 1e6
    metrics = {
        "val": _recon_metrics(data.val.waves, recon),
        "train": _recon_metrics(data.train.waves, model.decode(model.encode(data.train.waves))),
        "grid": grid_metrics(model),
        "parameters": model.config.n_parameters,
        "file_mb": round(size_mb, 2),
        "decode_ms_numpy": round(decode_ms(model), 3),
    }
    meta_path = model_path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["metrics"] = metrics
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return metrics


def usable(metrics: dict) -> bool:
    grid = metrics["grid"]
    return (grid["all_finite"] and grid["silent"] == 0 and grid["corner_log_stft"] >= MIN_CORNER_LOG_STFT
            and grid["corner_attack_correlation"] <= MAX_CORNER_ATTACK_CORRELATION and metrics["file_mb"] <= MAX_SHIPPED_MB)


def choose_default(results: dict[str, dict]) -> str:
    """The lowest held-out log-STFT distance among models that fit, whose whole knob grid plays,
    and whose knobs actually move between different snares, attacks included."""
    candidates = {name: m for name, m in results.items() if usable(m)}
    if not candidates:
        raise RuntimeError("no model passes the grid checks within the size limit")
    return min(candidates, key=lambda name: candidates[name]["val"]["log_stft"])


def _row(name: str, m: dict, seconds_per_epoch: float | None, default: str) -> str:
    g = m["grid"]
    star = " **(default)**" if name == default else ""
    spe = f"{seconds_per_epoch:.2f}" if seconds_per_epoch is not None else "–"
    return (f"| `{name}`{star} | {m['val']['mse']:.4f} | {m['val']['log_stft']:.3f} | {m['train']['log_stft']:.3f} "
            f"| {'yes' if g['all_finite'] else 'NO'} | {g['silent']} | {g['neighbour_log_stft']:.3f} | {g['corner_log_stft']:.3f} "
            f"| {g['corner_attack_correlation']:+.2f} "
            f"| {m['parameters'] / 1e6:.2f} M | {m['file_mb']:.1f} | {m['decode_ms_numpy']:.2f} | {spe} |")


def render_table(results: dict[str, dict], meta: dict[str, dict], baseline: dict, default: str) -> str:
    lines = [
        "| model | val MSE | val log-STFT | train log-STFT | grid finite | grid silent | neighbour Δ | corner Δ | corner attack corr. | params | MB | decode ms | s/epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| PCA-2 baseline | {baseline['mse']:.4f} | {baseline['log_stft']:.3f} | – | – | – | – | – | – | – | – | – | – |",
    ]
    for name in results:
        lines.append(_row(name, results[name], meta[name].get("training", {}).get("seconds_per_epoch"), default))
    return "\n".join(lines)


def evaluate_zoo(zoo_dir: Path, data: Dataset, card: Path, ship_dir: Path | None = None) -> str:
    """Evaluate every model in `zoo_dir`, write the card's table, and optionally ship the default."""
    from ..files.latent_map import draw_latent_map

    paths = sorted(Path(zoo_dir).glob("*.safetensors"))
    paths = [p for p in paths if not p.name.endswith(".ckpt.safetensors")]
    order = {name: i for i, name in enumerate(_display_order())}
    paths.sort(key=lambda p: order.get(p.stem, len(order)))
    results, metas = {}, {}
    for path in paths:
        results[path.stem] = evaluate_model(path, data)
        metas[path.stem] = json.loads(path.with_suffix(".json").read_text())
    baseline = pca2_baseline(data)
    default = choose_default(results)
    table = render_table(results, metas, baseline, default)
    (Path(zoo_dir) / "zoo.json").write_text(json.dumps({"default": default, "pca2": baseline, "models": results}, indent=2) + "\n")
    _write_table(card, table)
    print(table)
    print(f"default: {default}")
    if ship_dir is not None:
        ship_dir = Path(ship_dir)
        for suffix in (".safetensors", ".json"):
            shutil.copyfile(Path(zoo_dir) / f"{default}{suffix}", ship_dir / f"{default}{suffix}")
        shutil.copyfile(Path(zoo_dir) / "zoo.json", ship_dir / "zoo.json")
        draw_latent_map(load_model(ship_dir / f"{default}.safetensors"), data, ship_dir / "latent-map.png")
        _set_default_model(default)
    return default


def _display_order() -> list[str]:
    from .train import extra_recipes, seed_recipes

    return [r.name for r in seed_recipes() + extra_recipes()]


def _write_table(card: Path, table: str) -> None:
    text = card.read_text() if card.exists() else f"{TABLE_BEGIN}\n{TABLE_END}\n"
    block = f"{TABLE_BEGIN}\n{table}\n{TABLE_END}"
    if TABLE_BEGIN in text:
        text = re.sub(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    card.write_text(text)


def _set_default_model(name: str) -> None:
    text = DEFAULT_CONFIG_PATH.read_text()
    DEFAULT_CONFIG_PATH.write_text(re.sub(r"(?m)^model: .*$", f"model: {name}", text, count=1))
