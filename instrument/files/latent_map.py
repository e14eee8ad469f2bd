"""The latent-map picture: what lives where on the two knobs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..model.descriptors import describe
from ..model.knobs import CC_MAX, CC_MIN

TILES = 9
TILE_FREQ_BANDS = 32
TILE_FRAMES = 40
FFT_SIZE, HOP = 512, 256
SPECTRO_FLOOR_DB = -80.0
NO_SOFTWARE = {"Software": None}  # pictures go to strangers (the web API): no library version in them


def _tile(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """A small log-frequency, log-magnitude spectrogram (bands, frames), 0 dB at the wave's peak bin."""
    n_frames = 1 + max(0, wave.size - FFT_SIZE) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(wave, FFT_SIZE)[::HOP][:n_frames]
    spec = np.abs(np.fft.rfft(frames * np.hanning(FFT_SIZE), axis=1)).T  # (bins, frames)
    freqs = np.fft.rfftfreq(FFT_SIZE, 1 / sample_rate)
    edges = np.geomspace(60, min(16_000, sample_rate / 2), TILE_FREQ_BANDS + 1)
    # Low bands are narrower than one FFT bin: they take the bin nearest their centre, not an empty stripe.
    bands = np.stack(
        [
            spec[inside].mean(axis=0)
            if np.any(inside := (freqs >= lo) & (freqs < hi))
            else spec[np.argmin(np.abs(freqs - np.sqrt(lo * hi)))]
            for lo, hi in zip(edges[:-1], edges[1:])
        ]
    )
    db = 20 * np.log10(bands + 1e-9)
    db = np.clip(db - db.max(), SPECTRO_FLOOR_DB, 0)
    cols = np.linspace(0, db.shape[1] - 1, TILE_FRAMES).astype(int)
    return db[:, cols]


def _mosaic(model, ccs: np.ndarray) -> np.ndarray:
    """Spectrogram tiles of the snares on the CC grid `ccs` x `ccs`, row = y, col = x."""
    n = len(ccs)
    mosaic = np.full((n * TILE_FREQ_BANDS, n * TILE_FRAMES), SPECTRO_FLOOR_DB)
    for row, cy in enumerate(ccs):
        for col, cx in enumerate(ccs):
            tile = _tile(model.decode_cc(cx, cy), model.sample_rate)
            mosaic[row * TILE_FREQ_BANDS : (row + 1) * TILE_FREQ_BANDS, col * TILE_FRAMES : (col + 1) * TILE_FRAMES] = (
                tile
            )
    return mosaic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no screen needed
    import matplotlib.pyplot as plt

    return plt


def pad_picture(model, tiles: int = 16) -> bytes:
    """The web pad's background: a PNG mosaic with no axes, tile centres at CC (i + 0.5) * CC_MAX / tiles,
    so the picture spans the whole knob travel edge to edge (x right, y up)."""
    from matplotlib.image import imsave

    png = io.BytesIO()
    ccs = (np.arange(tiles) + 0.5) * CC_MAX / tiles
    imsave(
        png,
        _mosaic(model, ccs),
        cmap="magma",
        vmin=SPECTRO_FLOOR_DB,
        vmax=0,
        origin="lower",
        format="png",
        metadata=NO_SOFTWARE,
    )
    return png.getvalue()


def draw_grid_map(model, ccs: np.ndarray, out_path: Path, labels: list[str], cc_names: tuple[int, int]) -> Path:
    """The spectrogram mosaic of a sample pack's grid, each tile labelled with its file."""
    plt = _pyplot()
    n = len(ccs)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * n + 2), max(4.5, 0.9 * n + 1.5)))
    ax.imshow(
        _mosaic(model, ccs),
        origin="lower",
        aspect="auto",
        cmap="magma",
        extent=(0, n, 0, n),
        vmin=SPECTRO_FLOOR_DB,
        vmax=0,
    )
    for i, label in enumerate(labels):
        row, col = divmod(i, n)
        ax.text(col + 0.04, row + 0.9, label, color="white", fontsize=7, va="top")
    ax.set(
        xticks=np.arange(n) + 0.5,
        yticks=np.arange(n) + 0.5,
        xticklabels=ccs.round().astype(int),
        yticklabels=ccs.round().astype(int),
        xlabel=f"CC {cc_names[0]} (x): brighter →",
        ylabel=f"CC {cc_names[1]} (y): longer decay →",
        title=f"{model.name}: {n}×{n} pack\nspectrograms, 60 Hz–16 kHz over {model.n_samples / model.sample_rate:.2f} s",
    )
    fig.tight_layout()
    # The knobs in words too, so a tool (or a test) reads the labels without reading the picture.
    description = {"Description": f"x: CC {cc_names[0]}, y: CC {cc_names[1]}"}
    fig.savefig(out_path, dpi=90, metadata={**NO_SOFTWARE, **description})
    plt.close(fig)
    return Path(out_path)


def draw_latent_map(model, data, out_path: Path, cc_names: tuple[int, int] = (74, 75)) -> Path:
    plt = _pyplot()
    ccs = np.linspace(CC_MIN, CC_MAX, TILES)
    mosaic = _mosaic(model, ccs)

    fig, (ax_dots, ax_grid) = plt.subplots(1, 2, figsize=(13, 6.2), gridspec_kw={"width_ratios": [1, 1.15]})
    for snares, marker, label in ((data.train, "o", "training kits"), (data.val, "x", "held-out kits")):
        if len(snares) == 0:
            continue
        cc = np.array([model.knobs.latent_to_cc(z) for z in model.encode(snares.waves)])
        brightness, _ = describe(snares.waves, model.sample_rate)
        points = ax_dots.scatter(
            cc[:, 0], cc[:, 1], c=brightness, cmap="viridis", marker=marker, s=36, vmin=500, vmax=6000, label=label
        )
    fig.colorbar(points, ax=ax_dots, label="brightness: spectral centroid of the attack (Hz)")
    ax_dots.set(
        xlim=(-4, 131),
        ylim=(-4, 131),
        title="Where the corpus snares land",
        xlabel=f"CC {cc_names[0]} (x): brighter →",
        ylabel=f"CC {cc_names[1]} (y): longer decay →",
    )
    ax_dots.legend(loc="upper left", fontsize=8)

    ax_grid.imshow(
        mosaic, origin="lower", aspect="auto", cmap="magma", extent=(-8, 135, -8, 135), vmin=SPECTRO_FLOOR_DB, vmax=0
    )
    ax_grid.set(
        title=f"What the knobs play ({model.name}): spectrograms, 60 Hz–16 kHz, {model.n_samples / model.sample_rate:.2f} s",
        xlabel=f"CC {cc_names[0]} (x)",
        ylabel=f"CC {cc_names[1]} (y)",
        xticks=ccs.round(),
        yticks=ccs.round(),
    )
    ax_grid.tick_params(labelsize=7)
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=90, metadata=NO_SOFTWARE)
    plt.close(fig)
    return out_path


def draw_reconstructions(model, originals: np.ndarray, names: list[str], out_path: Path) -> Path:
    """Held-out snares (top row) above what the model plays at the point each one encodes to."""
    plt = _pyplot()
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(2.1 * n + 0.6, 4.6), squeeze=False)
    for col, (wave, name) in enumerate(zip(originals, names)):
        cc = model.knobs.latent_to_cc(model.encode(wave))
        for row, (snare, title) in enumerate(
            ((wave, Path(name).stem[:22]), (model.decode_cc(*cc), f"{model.name} at CC ({cc[0]:.0f}, {cc[1]:.0f})"))
        ):
            ax = axes[row, col]
            ax.imshow(
                _tile(snare, model.sample_rate),
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=SPECTRO_FLOOR_DB,
                vmax=0,
            )
            ax.set(xticks=[], yticks=[])
            ax.set_title(title, fontsize=7)
    axes[0, 0].set_ylabel("held-out original", fontsize=8)
    axes[1, 0].set_ylabel("dropped on the model", fontsize=8)
    fig.suptitle(
        f"Held-out kits: spectrograms (60 Hz–16 kHz, {model.n_samples / model.sample_rate:.2f} s), "
        "originals above their closest knob positions",
        fontsize=9,
    )
    fig.tight_layout()
    out_path = Path(out_path)
    fig.savefig(out_path, dpi=90, metadata=NO_SOFTWARE)
    plt.close(fig)
    return out_path
