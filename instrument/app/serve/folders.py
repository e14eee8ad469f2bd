"""The temporary folders of uploads and packs, named after the worker that made them.

A worker deletes its folder after each answer; a worker killed mid-answer cannot. Its pid in
the name lets the arbiter delete what a dead worker left (when it replaces it) and a starting
server delete what a dead server left, without touching a live server's folders.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "latent-snare-serve-"
NAME = re.compile(re.escape(PREFIX) + r"(\d+)-")


def worker_prefix(pid: int | None = None) -> str:
    """The prefix for tempfile's folders: this process's pid (or `pid`) in the name."""
    return f"{PREFIX}{os.getpid() if pid is None else pid}-"


def remove_worker_folders(pid: int, root: str | Path | None = None) -> int:
    """Delete the folders process `pid` left; how many."""
    return sum(_remove(path) for path in _ours(root) if _pid(path) == pid)


def remove_stale_folders(root: str | Path | None = None) -> int:
    """Delete the folders of processes that are no longer running; how many."""
    return sum(_remove(path) for path in _ours(root) if not _alive(_pid(path)))


def _ours(root: str | Path | None) -> list[Path]:
    root = Path(root or tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    uid = os.getuid()
    return [p for p in entries if NAME.match(p.name) and not p.is_symlink() and p.is_dir() and p.stat().st_uid == uid]


def _pid(path: Path) -> int:
    return int(NAME.match(path.name).group(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> bool:
    shutil.rmtree(path, ignore_errors=True)
    return not path.exists()
