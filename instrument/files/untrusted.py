"""Parsing audio files we did not make (drops, uploads) in a child process.

libsndfile, inside soundfile's wheels, has had crafted-file hangs and buffer
overflows. A user's file is therefore read by `python -m instrument.files.untrusted`
under the limits of sandbox.py (CPU time, memory, no file writes, no new privileges,
a read-only file system and no TCP where the kernel has Landlock, killed with its
parent), from an empty working directory, and with a wall-clock limit kept by the
parent: a hang, a crash or a memory blow-up takes the child down and becomes one
line naming the file, while the instrument keeps playing. The child sends the
conditioned snare back as raw float32 on its stdout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..paths import REPO_DIR

PARSE_TIMEOUT_S = 10.0
PARSE_CPU_S = 10  # CPU seconds: a parse that spins is killed even if the parent is stalled
PARSE_MEMORY_BYTES = 2 << 30  # address space, not resident memory: numpy and BLAS reserve a lot


def load_snare_isolated(
    path: str | Path, model_rate: int, n_samples: int, timeout_s: float = PARSE_TIMEOUT_S, workdir: Path | None = None
) -> np.ndarray:
    """`files.audio.load_snare` in a child process: a finite (n_samples,) array, or UserError naming the file.
    `workdir`: an empty folder for the child to run in (default: a new temporary one)."""
    path = Path(os.path.abspath(path))  # the child runs elsewhere
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="latent-snare-parse-") as empty:
            return load_snare_isolated(path, model_rate, n_samples, timeout_s, Path(empty))
    env = {
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO_DIR),  # the package, without the working directory on the import path
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    argv = [str(path), str(model_rate), str(n_samples), str(os.getpid())]
    try:
        done = subprocess.run(
            [sys.executable, "-B", "-m", "instrument.files.untrusted", *argv],
            capture_output=True,
            timeout=timeout_s,
            env=env,
            cwd=workdir,
        )
    except subprocess.TimeoutExpired as err:
        raise UserError(f"{path}: reading it took longer than {timeout_s:g} s; refused") from err
    if done.returncode == 2:
        raise UserError(done.stderr.decode(errors="replace").strip().splitlines()[-1])
    wave = np.frombuffer(done.stdout, dtype=np.float32) if done.returncode == 0 else None
    if wave is None or wave.shape != (n_samples,) or not np.all(np.isfinite(wave)):
        raise UserError(f"{path}: the file reader failed on it (exit {done.returncode}, malformed audio?); refused")
    return wave


def _child(argv: list[str]) -> int:
    from .sandbox import confine, die_with_parent

    path, model_rate, n_samples, parent_pid = argv[0], int(argv[1]), int(argv[2]), int(argv[3])
    die_with_parent(parent_pid)
    from .audio import load_snare  # numpy and libsndfile load before the file system is closed

    confine(PARSE_CPU_S, PARSE_MEMORY_BYTES)
    try:
        wave = load_snare(path, model_rate, n_samples)
    except UserError as err:
        print(err, file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{path}: needs more than {PARSE_MEMORY_BYTES >> 20} MB to read; refused", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(np.ascontiguousarray(wave, dtype=np.float32).tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
