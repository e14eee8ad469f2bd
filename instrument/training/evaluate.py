"""Evaluation of trained models on the held-out kits, and the model card's table.

Every number is computed through the numpy model, exactly as the instrument
plays it (`sound.py` has the sound issue's measures). The log-STFT distance
uses torch (training side).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np

from ..model.file import load_model
from ..paths import DEFAULT_CONFIG_PATH
from .dataset import Dataset
from .sound import GRID_STEPS, knob_grid, lsd, references, sound_metrics

SILENT_PEAK = 1e-3  # -60 dBFS
MAX_SHIPPED_MB = 7.5  # two shipped models within the 15 MB budget for weights in git
MAX_TAIL_DB = -55.0  # hiss: no knob position may keep more 8-16 kHz energy than this in its tail
# Opposite knob corners must differ at least this much (log-STFT): a collapsed latent (dead relu)
# plays one average snare everywhere, which scores well on reconstruction and is useless to play.
MIN_CORNER_LOG_STFT = 0.3
# The attack is what a listener tells snares apart by: at least one pair of opposite corners must
# start differently (correlation of their first 93 ms below this), or the knobs only move the tail.
MAX_CORNER_ATTACK_CORRELATION = 0.9
ATTACK_SAMPLES = 4096
RECONSTRUCTION_COLUMNS = 6
TABLE_BEGIN, TABLE_END = "<!-- zoo-table:begin -->", "<!-- zoo-table:end -->"


def _recon_metrics(target: np.ndarray, recon: np.ndarray) -> dict:
    return {"mse": float(np.mean((recon - target) ** 2)), "log_stft": float(np.mean(lsd(target, recon)))}


def grid_metrics(waves: np.ndarray) -> dict:
    """The 9x9 knob grid's snares (`sound.knob_grid`, rows = y): finite, not silent, and how
    different neighbours and corners are."""
    waves = waves.reshape(GRID_STEPS, GRID_STEPS, -1)
    flat = waves.reshape(-1, waves.shape[-1])
    finite = bool(np.all(np.isfinite(flat)))
    peaks = np.max(np.abs(np.nan_to_num(flat)), axis=1)
    # Compare shapes, not levels: the instrument plays every snare at its own level.
    norm = np.nan_to_num(flat) / np.maximum(peaks, 1e-9)[:, None]
    grid = norm.reshape(waves.shape)
    right = lsd(grid[:, :-1].reshape(-1, grid.shape[-1]), grid[:, 1:].reshape(-1, grid.shape[-1]))
    down = lsd(grid[:-1, :].reshape(-1, grid.shape[-1]), grid[1:, :].reshape(-1, grid.shape[-1]))
    corners = lsd(np.stack([grid[0, 0], grid[0, -1]]), np.stack([grid[-1, -1], grid[-1, 0]]))
    attacks = [(grid[0, 0], grid[-1, -1]), (grid[0, -1], grid[-1, 0])]
    attack_corr = min(
        float(
            np.dot(a[:ATTACK_SAMPLES], b[:ATTACK_SAMPLES])
            / (np.linalg.norm(a[:ATTACK_SAMPLES]) * np.linalg.norm(b[:ATTACK_SAMPLES]) + 1e-12)
        )
        for a, b in attacks
    )
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
    val_latents = model.encode(data.val.waves)  # the slow part for models that encode by search
    grid = knob_grid(model)
    size_mb = model_path.stat().st_size / 1e6
    metrics = {
        "val": _recon_metrics(data.val.waves, model.decode(val_latents)),
        "grid": grid_metrics(grid[1]),
        "sound": sound_metrics(model, data.train.waves, data.val.waves, val_latents, grid),
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
    return (
        grid["all_finite"]
        and grid["silent"] == 0
        and grid["corner_log_stft"] >= MIN_CORNER_LOG_STFT
        and grid["corner_attack_correlation"] <= MAX_CORNER_ATTACK_CORRELATION
        and metrics["file_mb"] <= MAX_SHIPPED_MB
    )


def choose_default(results: dict[str, dict]) -> str:
    """The lowest held-out log-STFT distance among models that fit, whose whole knob grid plays,
    whose knobs actually move between different snares, attacks included, and, where any model
    manages it, whose every knob position decays to silence (no hiss in the tail)."""
    candidates = {name: m for name, m in results.items() if usable(m)}
    if not candidates:
        raise RuntimeError("no model passes the grid checks within the size limit")
    quiet = {name: m for name, m in candidates.items() if m.get("sound", {}).get("tail_db_worst", 0.0) <= MAX_TAIL_DB}
    pool = quiet or candidates
    # The table's median where it was measured; the mean for older metrics.
    return min(pool, key=lambda name: pool[name].get("sound", {}).get("val_log_stft", pool[name]["val"]["log_stft"]))


TABLE_HEADER = (
    "| model | val log-STFT (median) | × PCA-2 | tail dB median / worst | cells hit /16 | diversity "
    "| largest step / median | round trip CC | grid plays | params | MB | decode ms | training |"
)


def _row(name: str, m: dict, meta: dict, default: str, pca2: float) -> str:
    s, g, training = m["sound"], m["grid"], meta.get("training", {})
    star = " **(default)**" if name == default else ""
    plays = "yes" if g["all_finite"] and g["silent"] == 0 else "NO"
    epochs = training.get("epochs_run") or training.get("epochs")
    minutes = training.get("seconds_per_epoch", 0) * (epochs or 0) / 60
    best = f" (best {training['best_epoch']})" if "best_epoch" in training else ""
    return (
        f"| `{name}`{star} | {s['val_log_stft']:.3f} | {s['val_log_stft'] / pca2:.2f} "
        f"| {s['tail_db_median']:.0f} / {s['tail_db_worst']:.0f} | {s['cells_hit']} | {s['diversity']:.2f} "
        f"| {s['step_max_over_median']:.1f} | {s['round_trip_cc']:.1f} | {plays} "
        f"| {m['parameters'] / 1e6:.2f} M | {m['file_mb']:.1f} | {m['decode_ms_numpy']:.2f} | {epochs} ep{best}, {minutes:.0f} min |"
    )


def render_table(results: dict[str, dict], meta: dict[str, dict], refs: dict, default: str) -> str:
    pca2 = refs["pca2"]
    blank = " – |" * 10
    lines = [
        TABLE_HEADER,
        "|" + "---|" * 13,
        f"| mean training snare, every time | {refs['mean_snare']:.3f} | {refs['mean_snare'] / pca2:.2f} |{blank}",
        f"| PCA-2 on the training split | {pca2:.3f} | 1.00 |{blank}",
        f"| nearest training snare (oracle) | {refs['nearest_train']:.3f} | {refs['nearest_train'] / pca2:.2f} |{blank}",
    ]
    lines += [_row(name, results[name], meta[name], default, pca2) for name in results]
    return "\n".join(lines)


def evaluate_zoo(
    zoo_dir: Path, data: Dataset, card: Path, ship_dir: Path | None = None, second: str | None = None
) -> str:
    """Evaluate every model in `zoo_dir`, write the card's table, and optionally ship the default
    (and `second`, for program change 1)."""
    from ..files.latent_map import draw_latent_map, draw_reconstructions

    paths = sorted(Path(zoo_dir).glob("*.safetensors"))
    paths = [p for p in paths if not p.name.endswith(".ckpt.safetensors")]
    order = {name: i for i, name in enumerate(_display_order())}
    paths.sort(key=lambda p: order.get(p.stem, len(order)))
    results, metas = {}, {}
    for path in paths:
        meta = json.loads(path.with_suffix(".json").read_text())
        # A model trained on this very corpus keeps the metrics its training run computed.
        same = meta.get("corpus", {}).get("sha256") == data.corpus_hash and "sound" in meta.get("metrics", {})
        results[path.stem] = meta["metrics"] if same else evaluate_model(path, data)
        metas[path.stem] = meta
    refs = references(data.train.waves, data.val.waves)
    default = choose_default(results)
    table = render_table(results, metas, refs, default)
    (Path(zoo_dir) / "zoo.json").write_text(
        json.dumps({"default": default, "references": refs, "models": results}, indent=2) + "\n"
    )
    _write_table(card, table)
    print(table)
    print(f"default: {default}")
    if ship_dir is not None:
        ship_dir = Path(ship_dir)
        for name in {default, second} - {None}:
            for suffix in (".safetensors", ".json"):
                shutil.copyfile(Path(zoo_dir) / f"{name}{suffix}", ship_dir / f"{name}{suffix}")
        shutil.copyfile(Path(zoo_dir) / "zoo.json", ship_dir / "zoo.json")
        shipped = load_model(ship_dir / f"{default}.safetensors")
        draw_latent_map(shipped, data, ship_dir / "latent-map.png")
        # One held-out snare from each of a few held-out units, spread over them.
        picks = sorted({kit: i for i, kit in enumerate(data.val.kits)}.values())[:RECONSTRUCTION_COLUMNS]
        draw_reconstructions(
            shipped, data.val.waves[picks], [data.val.names[i] for i in picks], ship_dir / "reconstructions.png"
        )
        _set_default_model(default, second)
    return default


def _display_order() -> list[str]:
    from .recipes import all_recipes

    return [r.name for r in all_recipes()]


def _write_table(card: Path, table: str) -> None:
    text = card.read_text() if card.exists() else f"{TABLE_BEGIN}\n{TABLE_END}\n"
    block = f"{TABLE_BEGIN}\n{table}\n{TABLE_END}"
    if TABLE_BEGIN in text:
        text = re.sub(re.escape(TABLE_BEGIN) + ".*?" + re.escape(TABLE_END), lambda _: block, text, flags=re.S)
    else:
        text += "\n" + block + "\n"
    card.write_text(text)


def _set_default_model(name: str, second: str | None) -> None:
    """The default config plays `name`; program change 0 and 1 play `name` and `second`."""
    text = re.sub(r"(?m)^model: .*$", f"model: {name}", DEFAULT_CONFIG_PATH.read_text(), count=1)
    programs = [name, second] if second and second != name else []
    text = re.sub(r"(?m)^  programs: .*$", f"  programs: [{', '.join(programs)}]", text, count=1)
    DEFAULT_CONFIG_PATH.write_text(text)
