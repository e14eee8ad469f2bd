"""The model card's pictures of the feel, for a musician: the attack, a velocity ladder,
the round robins. `latent-snare evaluate --ship DIR` draws them into DIR beside latent-map.png and
reconstructions.png (`files/latent_map.py`).

- attack.png: the first 30 ms of a few held-out originals (waveforms), above what the model plays
  at the point each one encodes to;
- velocity.png: spectrograms of three knob positions (rows) hit at velocities 30, 70 and 120
  (columns), each at its own level, on one colour scale: a harder hit should look brighter;
- round-robins.png: four variants of one hit, whole and their first 30 ms overlaid, and whether
  they differ.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files.latent_map import _pyplot
from .feel import centroid_octaves, crack_db, onset_index, onset_rise_ms, round_robin_distance

ATTACK_MS = 30.0
ATTACK_COLUMNS = 6
LADDER_VELOCITIES = (30, 70, 120)
LADDER_CC = ((20.0, 100.0), (64.0, 64.0), (110.0, 30.0))
ROUND_ROBIN_POINT_CC = (64.0, 64.0)
ROUND_ROBINS_SHOWN = 4
SPECTRO_FFT, SPECTRO_HOP = 1024, 256
SPECTRO_HZ = (40.0, 16_000.0)
SPECTRO_FLOOR_DB = -80.0


def _attack(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The first 30 ms from the onset, scaled to its peak."""
    start = onset_index(wave, sample_rate)
    part = np.asarray(wave[start : start + int(ATTACK_MS * 1e-3 * sample_rate)], np.float64)
    return part / max(float(np.max(np.abs(part))), 1e-12)


def _spectrogram(wave: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times s, freqs Hz, dB re the loudest bin floored at -80) of a Hann STFT."""
    x = np.nan_to_num(np.asarray(wave, np.float64))
    x = np.pad(x, (0, max(0, SPECTRO_FFT - x.size)))
    frames = np.lib.stride_tricks.sliding_window_view(x, SPECTRO_FFT)[::SPECTRO_HOP]
    power = np.abs(np.fft.rfft(frames * np.hanning(SPECTRO_FFT), axis=1)).T ** 2
    freqs = np.fft.rfftfreq(SPECTRO_FFT, 1.0 / sample_rate)
    keep = (freqs >= SPECTRO_HZ[0]) & (freqs <= SPECTRO_HZ[1])
    db = 10 * np.log10(power[keep] / max(power.max(), 1e-30) + 1e-30)
    times = (np.arange(frames.shape[0]) * SPECTRO_HOP + SPECTRO_FFT / 2) / sample_rate
    return times, freqs[keep], np.maximum(db, SPECTRO_FLOOR_DB)


def _save(fig, plt, out_path: Path) -> Path:
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def draw_attack(
    model, originals: np.ndarray, names: list[str], out_path: Path, velocities: np.ndarray | None = None
) -> Path:
    """The first 30 ms of held-out originals (top) above the model's render at their encoded points."""
    plt = _pyplot()
    sr = model.sample_rate
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(2.4 * n + 0.6, 4.8), squeeze=False, sharey=True)
    for col, wave in enumerate(originals):
        cc = model.knobs.latent_to_cc(model.encode(wave))
        velocity = 127 if velocities is None else float(velocities[col])
        render = model.decode_cc(*cc, velocity=velocity)
        for row, (snare, title) in enumerate(
            ((wave, Path(names[col]).stem[:24]), (render, f"{model.name} at CC ({cc[0]:.0f}, {cc[1]:.0f})"))
        ):
            attack = _attack(snare, sr)
            ax = axes[row, col]
            ax.plot(np.arange(attack.size) / sr * 1e3, attack, color="C0" if row == 0 else "C3", lw=0.6)
            ax.set_title(title, fontsize=7)
            ax.text(
                0.98,
                0.04,
                f"rise {onset_rise_ms(snare, sr):.1f} ms\ncrack {crack_db(snare, sr):+.0f} dB",
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                fontsize=7,
            )
            ax.set(xlim=(0, ATTACK_MS), ylim=(-1.05, 1.05))
            ax.tick_params(labelsize=7)
            if row == 1:
                ax.set_xlabel("ms after the onset", fontsize=7)
    axes[0, 0].set_ylabel("held-out original", fontsize=8)
    axes[1, 0].set_ylabel("the model's closest", fontsize=8)
    fig.suptitle(
        "The attack: the first 30 ms of snares the model never heard (top) and what it plays for them (bottom).\n"
        "A sharp crack rises in about a millisecond; rise = 10-90 % of the loudness, "
        "crack = 2.5-16 kHz against 60-390 Hz in the first 12 ms",
        fontsize=8,
    )
    return _save(fig, plt, out_path)


def draw_velocity(model, out_path: Path) -> Path:
    """Spectrograms at velocities 30, 70 and 120 (columns) for three knob positions (rows)."""
    plt = _pyplot()
    sr = model.sample_rate
    fig, axes = plt.subplots(
        len(LADDER_CC), len(LADDER_VELOCITIES), figsize=(11, 8), squeeze=False, sharex=True, sharey=True
    )
    image = None
    for row, (x, y) in enumerate(LADDER_CC):
        for col, velocity in enumerate(LADDER_VELOCITIES):
            wave = model.decode_cc(x, y, velocity=velocity)
            times, freqs, db = _spectrogram(wave, sr)
            ax = axes[row, col]
            image = ax.pcolormesh(
                times, freqs, db, shading="auto", cmap="magma", vmin=SPECTRO_FLOOR_DB, vmax=0, rasterized=True
            )
            ax.set_yscale("log")
            brightness = 2 ** centroid_octaves(wave, sr)
            ax.text(
                0.97,
                0.95,
                f"brightness {brightness:.0f} Hz",
                transform=ax.transAxes,
                ha="right",
                va="top",
                color="white",
                fontsize=8,
            )
            if row == 0:
                ax.set_title(f"velocity {velocity} ({('soft', 'medium', 'hard')[col]})", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"knobs CC ({x:.0f}, {y:.0f})\nHz", fontsize=8)
            if row == len(LADDER_CC) - 1:
                ax.set_xlabel("seconds", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=axes, label="dB re each hit's loudest point", shrink=0.6)
    plays = getattr(model, "plays_velocity", False)
    fig.suptitle(
        "Velocity ladder: three drums on the knobs, hit soft (30), medium (70) and hard (120), each at its own level.\n"
        + (
            "A harder hit should look brighter: more energy up high at the start "
            "(brightness = spectral centroid of the first 100 ms)."
            if plays
            else f"{model.name} plays the same timbre at every velocity (only the level changes)."
        ),
        fontsize=9,
    )
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def draw_round_robins(model, out_path: Path) -> Path:
    """Four variants of one hit: whole waveforms, and their first 30 ms overlaid."""
    plt = _pyplot()
    sr = model.sample_rate
    n_variants = max(1, int(getattr(model, "n_variants", 1)))
    shown = ROUND_ROBINS_SHOWN
    x, y = ROUND_ROBIN_POINT_CC
    # Four consecutive hits, as the instrument plays them: the variants in turn.
    hits = [model.decode_cc(x, y, variant=k % n_variants) for k in range(shown)]
    fig = plt.figure(figsize=(11, 5.5))
    grid = fig.add_gridspec(shown, 2, width_ratios=(1.6, 1))
    for k, hit in enumerate(hits):
        ax = fig.add_subplot(grid[k, 0])
        ax.plot(np.arange(hit.size) / sr, hit, color=f"C{k}", lw=0.4)
        ax.set_ylabel(f"hit {k + 1}\n(variant {k % n_variants})", fontsize=8)
        ax.tick_params(labelsize=7)
        if k == shown - 1:
            ax.set_xlabel("seconds", fontsize=8)
    overlay = fig.add_subplot(grid[:, 1])
    for k, hit in enumerate(hits):
        attack = _attack(hit, sr)
        overlay.plot(np.arange(attack.size) / sr * 1e3, attack, color=f"C{k}", lw=0.5, alpha=0.7, label=f"hit {k + 1}")
    overlay.set(xlabel="ms after the onset", title="the first 30 ms, overlaid", xlim=(0, ATTACK_MS))
    overlay.legend(fontsize=7)
    if all(np.array_equal(hits[0], h) for h in hits[1:]):
        verdict = (
            f"They are identical: {model.name} has {n_variants} variant{'s' if n_variants > 1 else ''}, "
            "so every hit at the same knobs is the same samples (a machine gun)."
        )
    else:
        rr = round_robin_distance(model, points_cc=(ROUND_ROBIN_POINT_CC,))
        verdict = (
            f"They differ ({n_variants} variants): {rr['variant_db']:.1f} dB apart on average (band levels), "
            f"against {rr['step_4cc_db']:.1f} dB for a 4-CC turn of a knob."
        )
    fig.suptitle(
        f"Round robins: {shown} consecutive hits of one drum at CC ({x:.0f}, {y:.0f}), velocity 127.\n{verdict}",
        fontsize=9,
    )
    return _save(fig, plt, out_path)


def draw_card_pictures(model, data, out_dir: Path, columns: int = ATTACK_COLUMNS) -> list[Path]:
    """attack.png, velocity.png and round-robins.png in `out_dir`, for the shipped `model`."""
    out_dir = Path(out_dir)
    # One held-out snare from each of a few held-out units, spread over them (as reconstructions.png).
    picks = sorted({kit: i for i, kit in enumerate(data.val.kits)}.values())[:columns]
    velocity = getattr(data.val, "velocity", None)
    return [
        draw_attack(
            model,
            data.val.waves[picks],
            [data.val.names[i] for i in picks],
            out_dir / "attack.png",
            None if velocity is None else np.asarray(velocity)[picks],
        ),
        draw_velocity(model, out_dir / "velocity.png"),
        draw_round_robins(model, out_dir / "round-robins.png"),
    ]
