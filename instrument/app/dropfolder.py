"""The drop folder: an audio file that appears there moves the instrument to the closest snare.

Polled, not inotify: it works the same on every OS and on network shares. A
file is taken only once its size and modification time have held still for
one poll, so a copy in progress is never read half-written. Files present at
start, hidden files and partial downloads are left alone; anything that is not
audio gets one line, once.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..files.audio import AUDIO_SUFFIXES

POLL_S = 0.5
PARTIAL_SUFFIXES = (".part", ".crdownload", ".download", ".tmp", ".partial")


class DropFolder:
    def __init__(self, folder: Path, on_file, say, poll_s: float = POLL_S):
        self.folder = Path(folder).expanduser()
        self.on_file = on_file  # called on this watcher's thread with each complete audio file
        self.say = say
        self.poll_s = poll_s
        self._seen: dict[str, tuple] = {}  # name -> (size, mtime) last handled
        self._candidates: dict[str, tuple] = {}  # name -> (size, mtime) at the previous poll
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drop-folder", daemon=True)

    def start(self) -> DropFolder:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seen = dict(self._listing())  # what is already there is not a drop
        self._thread.start()
        return self

    def _listing(self):
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return  # the folder was removed or unmounted: try again next poll
        for entry in entries:
            if entry.name.startswith(".") or entry.name.lower().endswith(PARTIAL_SUFFIXES):
                continue
            try:
                if entry.is_file():
                    st = entry.stat()
                    yield entry.name, (st.st_size, st.st_mtime_ns)
            except OSError:
                continue  # vanished between listing and stat

    def poll(self) -> None:
        current = dict(self._listing())
        for name, signature in current.items():
            if self._seen.get(name) == signature:
                continue
            if self._candidates.get(name) != signature:
                continue  # new or still changing: look again next poll
            self._seen[name] = signature
            if Path(name).suffix.lower() not in AUDIO_SUFFIXES:
                self.say(f"drop: {name} is not an audio file ({', '.join(AUDIO_SUFFIXES)}); ignored")
                continue
            self.on_file(self.folder / name)
        self._candidates = current

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
