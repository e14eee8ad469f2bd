"""Debian packages as data: download, unpack, read licences, and refuse the reserved sources.

Packages are fetched with `apt-get download` and unpacked with `dpkg -x` into a
temporary folder: nothing is installed.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import shutil
import subprocess
from pathlib import Path

from ...errors import UserError

log = logging.getLogger(__name__)

# Reserved for evaluation outside the project: never training data, not even read by the corpus code.
RESERVED_PACKAGES = frozenset(
    {
        "fluid-soundfont-gm",
        "fluid-soundfont-gs",
        "fluidr3mono-gm-soundfont",
        "musescore-general-soundfont",  # its drum kits are Fluid R3
        "musescore-general-soundfont-small",
        "musescore-general-soundfont-lossless",
        "avldrums.lv2-soundfont",
        "avldrums.lv2",
        "sonic-pi-samples",
        "foxdot",
    }
)
# The same sources by the names their files carry (checked on resolved paths, so a symlink such as
# /usr/share/sounds/sf2/default-GM.sf2 pointing at FluidR3_GM.sf2 is caught), and on soundfont bank names.
RESERVED_NAME = re.compile(
    r"fluid[-_ ]?r3|fluid-soundfont|musescore[-_ ]?general|avl[-_ ]?drums|sonic[-_ ]?pi|foxdot", re.IGNORECASE
)


class ReservedSourceError(UserError):
    """A reserved evaluation source reached the corpus build."""


def check_allowed(*, package: str | None = None, path: str | Path | None = None, name: str | None = None) -> None:
    """Raise ReservedSourceError if a package, file (or what it links to) or soundfont name is reserved."""
    if package is not None and (package.lower() in RESERVED_PACKAGES or RESERVED_NAME.search(package)):
        raise ReservedSourceError(f"{package}: reserved for evaluation; it must never feed the corpus")
    if path is not None:
        for text in {str(path), str(Path(path).resolve())}:
            if RESERVED_NAME.search(text):
                raise ReservedSourceError(f"{path}: a reserved evaluation source; it must never feed the corpus")
    if name is not None and RESERVED_NAME.search(name):
        raise ReservedSourceError(f"{name!r}: names a reserved evaluation source; it must never feed the corpus")


def require_tools() -> None:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise UserError("building the corpus needs apt-get and dpkg (Debian or Ubuntu)")


def download(packages: list[str], cache: Path) -> dict[str, Path]:
    """The .deb of every package (from `cache` if already there). A package apt cannot find is logged
    and left out; the caller decides whether that is fatal."""
    for package in packages:
        check_allowed(package=package)
    cache.mkdir(parents=True, exist_ok=True)
    missing = [p for p in packages if not _cached(p, cache)]
    if missing:
        result = _apt_download(missing, cache)
        if result.returncode != 0:  # one unknown name fails the whole call: retry one by one to find it
            for package in missing:
                result = _apt_download([package], cache)
                if result.returncode != 0:
                    log.warning("skipping %s: apt-get download failed: %s", package, _last_line(result.stderr))
    return {p: deb for p in packages if (deb := _cached(p, cache)) is not None}


def _cached(package: str, cache: Path) -> Path | None:
    debs = sorted(cache.glob(f"{package}_*.deb"))
    return debs[-1] if debs else None


def _apt_download(packages: list[str], cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["apt-get", "download", *packages], cwd=cache, capture_output=True, text=True)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if not line.startswith("W:")]
    return (lines or ["(no message; try apt-get update)"])[-1][:300]


def unpack(deb: Path, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["dpkg", "-x", str(deb), str(into)], capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"dpkg -x {deb.name} failed: {_last_line(result.stderr)}")
    return into


# --- licences from debian/copyright -------------------------------------------------------


def copyright_text(root: Path, package: str) -> str:
    path = root / "usr/share/doc" / package / "copyright"
    return path.read_text(errors="replace") if path.is_file() else ""


def license_from_copyright(text: str, upstream_path: str) -> str | None:
    """The License of the last machine-readable (DEP-5) stanza whose Files patterns match
    `upstream_path` (a path in the upstream source tree, as the copyright file names them)."""
    found = None
    for stanza in _stanzas(text):
        patterns = stanza.get("files", "").split()
        license = stanza.get("license", "").splitlines()[0].strip() if stanza.get("license") else ""
        if license and any(fnmatch.fnmatchcase(upstream_path, p) for p in patterns):
            found = license  # DEP-5: the last matching stanza wins
    return found


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas, current, key = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif line[0] in " \t" and key is not None:
            current[key] += "\n" + line.strip()
        elif ":" in line:
            key, value = line.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas
