"""Reading user audio files and conditioning them into model-ready snares.

Every snare the models see, in training or in `encode`, goes through
`load_snare`: mono, resampled with soxr, onset-aligned, cut or padded to the
model length with a short fade-out, and peak-normalized.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..core.dsp import fade_out
from ..errors import UserError

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")

# Header sanity limits: anything beyond these is refused before a sample is read.
MAX_CHANNELS = 64
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 768_000
MAX_DURATION_S = 30.0
MAX_SAMPLES = 32_000_000  # frames x channels read at most: 128 MB of float32

# A snare's transient starts where it first rises above this level under its peak.
ONSET_THRESHOLD_DB = -30.0
# Keep a little before the onset so the attack's first half-cycle stays intact.
ONSET_PREROLL_MS = 0.5
FADE_OUT_MS = 20.0
# Peaks below this (about -80 dBFS) count as silence.
SILENCE_PEAK = 1e-4


def read_audio(path: str | Path, max_duration_s: float = MAX_DURATION_S) -> tuple[np.ndarray, int]:
    """Read a file as float32 frames (frames, channels), checking the header first.

    Raises UserError naming the file for anything unreadable or implausible.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {'not a regular file' if path.exists() else 'no such audio file'}")
    try:
        info = sf.info(str(path))
    except Exception as err:  # libsndfile reports every malformed header its own way
        raise UserError(f"{path}: not a readable audio file (WAV, FLAC, AIFF or OGG): {_first_line(err)}") from err
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise UserError(f"{path}: {info.channels} channels; allowed 1..{MAX_CHANNELS}")
    if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
        raise UserError(f"{path}: sample rate {info.samplerate} Hz; allowed {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE}")
    if info.frames <= 0:
        raise UserError(f"{path}: contains no audio frames")
    # Read at most the allowed duration: a header that lies about its length cannot make us read more.
    max_frames = int(max_duration_s * info.samplerate)
    if min(info.frames, max_frames) * info.channels > MAX_SAMPLES:
        raise UserError(
            f"{path}: {info.channels} channels x {min(info.frames, max_frames)} frames is too much audio; "
            f"allowed {MAX_SAMPLES} samples in all"
        )
    try:
        data, sample_rate = sf.read(str(path), frames=min(info.frames, max_frames), dtype="float32", always_2d=True)
    except Exception as err:
        raise UserError(f"{path}: audio data is unreadable: {_first_line(err)}") from err
    if data.shape[0] == 0:
        raise UserError(f"{path}: contains no audio frames")
    return data, int(sample_rate)


def condition(mono: np.ndarray, sample_rate: int, model_rate: int, n_samples: int) -> np.ndarray:
    """Turn a mono signal into a model-ready snare of exactly `n_samples` at `model_rate`.

    Raises ValueError if the signal is silent (the caller names the file).
    """
    x = np.nan_to_num(np.asarray(mono, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate != model_rate:
        x = soxr.resample(x, sample_rate, model_rate, quality="HQ").astype(np.float32, copy=False)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak < SILENCE_PEAK:
        raise ValueError("silent (peak below -80 dBFS)")
    onset = int(np.argmax(np.abs(x) >= peak * 10 ** (ONSET_THRESHOLD_DB / 20)))
    start = max(0, onset - int(ONSET_PREROLL_MS * 1e-3 * model_rate))
    x = x[start : start + n_samples]
    out = np.zeros(n_samples, dtype=np.float32)
    out[: x.size] = x
    out *= fade_out(n_samples, int(FADE_OUT_MS * 1e-3 * model_rate))
    return out / np.max(np.abs(out))


def load_snare(path: str | Path, model_rate: int, n_samples: int) -> np.ndarray:
    """Read and condition one file; UserError naming the file if it cannot be a snare."""
    data, sample_rate = read_audio(path)
    try:
        return condition(data.mean(axis=1), sample_rate, model_rate, n_samples)
    except ValueError as err:
        raise UserError(f"{path}: {err}") from err


def find_audio_files(folder: str | Path) -> list[Path]:
    """Every audio file under `folder`, sorted so that runs are reproducible. Symlinked folders are
    followed (a library of kits is often links into other drives), each real folder once, so a
    link that points back up the tree cannot loop."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (expected a folder of WAV, FLAC or AIFF files)")
    found, seen = [], set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.stat(root)
        if (real.st_dev, real.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((real.st_dev, real.st_ino))
        found += [Path(root, f) for f in files if Path(f).suffix.lower() in AUDIO_SUFFIXES and Path(root, f).is_file()]
    return sorted(found)


def _first_line(err: BaseException) -> str:
    """libsndfile's reason, without the "Error opening 'PATH': " our message already starts with."""
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return re.sub(r"^Error opening .*?: (?=\S)", "", line, count=1)
