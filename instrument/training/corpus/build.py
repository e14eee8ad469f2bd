"""`build_corpus`: download, pick, render, de-duplicate, write WAVs and the manifest, summarize."""

from __future__ import annotations

import csv
import logging
import re
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import soundfile as sf

from ...errors import UserError
from ...files.audio import SILENCE_PEAK
from . import debian
from .dedupe import DuplicateFilter, fingerprint
from .manifest import CorpusFile, sha256_of, split_for, write_manifest
from .soundfont import require_fluidsynth
from .sources import SOURCES, Candidate, Source

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.csv"
DROPPED_NAME = "dropped.csv"  # what was left out and why, beside the manifest
# A rendered hit is a one-shot if, 1.5 s after its onset, it has fallen this far under its peak.
ONE_SHOT_TAIL_S = 1.5
ONE_SHOT_TAIL_DB = -40.0


@dataclass
class SourceReport:
    units: set = field(default_factory=set)
    files: int = 0
    duplicates: int = 0
    silent: int = 0
    sustained: int = 0
    unreadable: int = 0
    train: int = 0
    val: int = 0
    val_units: set = field(default_factory=set)
    note: str = ""


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _progress(items, desc: str, unit: str, enabled: bool):
    from tqdm import tqdm  # the training extra; imported here so that reading a manifest never needs it

    return tqdm(items, desc=desc, unit=unit, disable=not enabled, file=sys.stderr)


def select_sources(names: list[str] | None) -> list[Source]:
    if not names:
        return list(SOURCES)
    known = {s.package for s in SOURCES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"unknown corpus source {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [s for s in SOURCES if s.package in names]


def build_corpus(
    out_dir: Path,
    manifest_path: Path | None = None,
    cache_dir: Path | None = None,
    sources: list[str] | None = None,
    progress: bool = True,
) -> list[CorpusFile]:
    """Build the corpus folder `out_dir` (WAVs + manifest.csv) from Debian packages; also write the
    manifest to `manifest_path` if given. The old folder is replaced only once the new one is complete."""
    chosen = select_sources(sources)
    debian.require_tools()
    if any(s.renders for s in chosen):
        require_fluidsynth()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_NAME).is_file():
        raise UserError(f"{out_dir}: exists and is not a corpus folder (no {MANIFEST_NAME}); choose another --out")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(cache_dir) if cache_dir else Path(tmp) / "debs"
        packages = list(dict.fromkeys(s.package for s in chosen))
        print(f"corpus: fetching {len(packages)} Debian packages", file=sys.stderr)
        debs = debian.download(packages, cache)
        staging = out_dir.with_name(out_dir.name + ".building")
        shutil.rmtree(staging, ignore_errors=True)
        roots = {}
        for package in _progress(packages, "unpacking", "package", progress):
            if package in debs:
                debian.check_allowed(package=package, path=debs[package])
                roots[package] = debian.unpack(debs[package], Path(tmp) / "unpacked" / package)
        files, reports = assemble(chosen, roots, staging, progress)
    if not files:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError("no snare found in any source; is apt's package list current (apt-get update)?")
    write_manifest(files, staging / MANIFEST_NAME)
    _replace_folder(staging, out_dir)
    if manifest_path is not None:
        write_manifest(files, manifest_path)
    print(summary_table(reports), file=sys.stderr)
    return files


def assemble(
    sources: list[Source], roots: dict[str, Path], out_dir: Path, progress: bool = True
) -> tuple[list[CorpusFile], dict[str, SourceReport]]:
    """Gather every source's candidates from its package unpacked under `roots[package]`, drop what
    is silent, sustained or a near-duplicate of a hit already kept, and write the rest as mono WAVs
    under `out_dir/<unit>/`."""
    reports: dict[str, SourceReport] = defaultdict(SourceReport)
    candidates: list[Candidate] = []
    for source in _progress(sources, "gathering and rendering", "source", progress):
        if source.package not in roots:
            reports[source.package].note = "not downloadable"
            continue
        debian.check_allowed(package=source.package)
        found = source.gather(roots[source.package])
        if not found:
            log.warning("%s: no snare-family one-shots here; skipped", source.package)
        reports[source.package]  # every source gets a row, even an empty one
        candidates.extend(found)

    duplicates = DuplicateFilter()
    files, dropped, names_used = [], [], set()
    unit_split: dict[str, str] = {}  # a unit keeps the split of the package that brought it first
    for c in _progress(candidates, "de-duplicating and writing", "hit", progress):
        debian.check_allowed(package=c.package, path=c.origin.split(" ")[0])
        report = reports[c.package]
        try:
            audio, rate = c.read()
        except UserError as err:
            log.warning("skipping %s", err)
            report.unreadable += 1
            dropped.append(Dropped(c.package, c.origin, "unreadable", str(err)))
            continue
        reason = _reject_reason(audio, rate, c.rendered)
        if reason:
            setattr(report, reason, getattr(report, reason) + 1)
            dropped.append(Dropped(c.package, c.origin, reason))
            continue
        rel = _unique_path(f"{safe_name(c.unit)}/{safe_name(c.name)}.wav", names_used)
        # A drum with layers (a Hydrogen instrument, a soundfont note at several velocities) is one
        # drum: its layers are its velocity data, never each other's copies.
        drum = f"{c.package}\t{c.unit}\t{c.instrument}" if c.velocity is not None else ""
        twin = duplicates.offer(rel, fingerprint(audio, rate), drum)
        if twin is not None:
            report.duplicates += 1
            dropped.append(Dropped(c.package, c.origin, "duplicate", *twin))
            log.info("duplicate: %s:%s ~ %s (envelope %.2f dB, waveform %.3f)", c.package, c.origin, *twin)
            continue
        names_used.add(rel)
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, audio, rate, subtype="PCM_24")
        split = unit_split.setdefault(c.unit, split_for(c.unit, c.package))
        files.append(
            CorpusFile(
                path=rel,
                kit=c.unit,
                instrument=c.instrument,
                license=c.license,
                split=split,
                sha256=sha256_of(target),
                source=c.package,
                origin=c.origin,
                velocity="" if c.velocity is None else str(c.velocity),
                sample_rate=str(rate),
                seconds=f"{audio.size / rate:.3f}",
            )
        )
        report.units.add(c.unit)
        report.files += 1
        setattr(report, split, getattr(report, split) + 1)
        if split == "val":
            report.val_units.add(c.unit)
    counts = Counter(d.reason for d in dropped)
    print(
        f"corpus: kept {len(files)} of {len(candidates)} hits; dropped {counts['duplicate']} near-duplicates, "
        f"{counts['silent']} silent renders (preset lacks the note), {counts['sustained']} sustained renders "
        f"(not one-shots), {counts['unreadable']} unreadable; the list is in {DROPPED_NAME}",
        file=sys.stderr,
    )
    write_dropped(dropped, out_dir / DROPPED_NAME)
    return files, dict(reports)


@dataclass(frozen=True)
class Dropped:
    source: str
    origin: str
    reason: str  # duplicate, silent, sustained, unreadable
    kept_twin: str = ""  # for a duplicate: the corpus file it duplicates
    envelope_db: float | None = None
    waveform_similarity: float | None = None


def write_dropped(dropped: list[Dropped], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([f.name for f in fields(Dropped)])
        for d in dropped:
            writer.writerow(
                [
                    ("" if v is None else f"{v:.3f}" if isinstance(v, float) else v)
                    for v in (getattr(d, f.name) for f in fields(Dropped))
                ]
            )


def _reject_reason(audio: np.ndarray, rate: int, rendered: bool) -> str | None:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < SILENCE_PEAK:
        return "silent"
    if rendered:
        onset = int(np.argmax(np.abs(audio) >= peak * 0.1))
        tail = audio[onset + int(ONE_SHOT_TAIL_S * rate) :]
        if tail.size and float(np.max(np.abs(tail))) > peak * 10 ** (ONE_SHOT_TAIL_DB / 20):
            return "sustained"
    return None


def _unique_path(rel: str, used: set[str]) -> str:
    stem, suffix = rel[: -len(".wav")], ".wav"
    n = 2
    while rel in used:
        rel = f"{stem}_{n}{suffix}"
        n += 1
    return rel


def _replace_folder(new: Path, old: Path) -> None:
    if old.exists():
        trash = old.with_name(old.name + ".old")
        shutil.rmtree(trash, ignore_errors=True)
        old.rename(trash)
        new.rename(old)
        shutil.rmtree(trash)
    else:
        old.parent.mkdir(parents=True, exist_ok=True)
        new.rename(old)


def summary_table(reports: dict[str, SourceReport]) -> str:
    header = ("source", "units", "files", "dups", "silent", "sustained", "train", "val", "val units")
    rows = []
    for package, r in reports.items():
        rows.append(
            (
                package,
                len(r.units),
                r.files,
                r.duplicates,
                r.silent,
                r.sustained,
                r.train,
                r.val,
                len(r.val_units) if not r.note else r.note,
            )
        )
    total = (
        "total",
        sum(r[1] for r in rows),
        *(sum(r[i] for r in rows) for i in range(2, 8)),
        sum(len(r.val_units) for r in reports.values()),
    )
    rows.append(total)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(row):
        return "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths)))

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])
