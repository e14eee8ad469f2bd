"""The corpus builder on fixtures it writes itself: fake unpacked packages, a tiny drumkit.xml,
synthetic hits. No network, no apt; the FluidSynth render runs only where fluidsynth and the
TimGM6mb soundfont are installed."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from instrument.errors import UserError
from instrument.training.corpus import (
    HOLDOUT_KITS,
    CorpusFile,
    ReservedSourceError,
    build,
    check_allowed,
    corpus_hash,
    debian,
    read_manifest,
    sha256_of,
    soundfont,
    sources,
    write_manifest,
)
from instrument.training.corpus.dedupe import (
    SAME_SOUND_DB,
    DuplicateFilter,
    distance_db,
    fingerprint,
    waveform_similarity,
)
from instrument.training.corpus.manifest import VAL_UNIT_FRACTION, split_for

from .conftest import synth_snare

RATE = 44_100

DEP5 = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files:
 drumkits/KitB.h2drumkit
 drumkits/Other.h2drumkit
Copyright: someone else
License: CC0

Files: debian/*
License: GPL-3+

License: GPL-2+
 long text
"""


def hit(seed: int, tone_hz: float = 200.0, decay_s: float = 0.12, noise: float = 0.5, rate: int = RATE) -> np.ndarray:
    return synth_snare(rate, 0.6, tone_hz, decay_s, noise, seed)


def write_kit(root: Path, folder: str, instruments: dict[str, list[str]], license: str | None, variant: int) -> None:
    kit = root / sources.HYDROGEN_KITS_DIR / folder
    kit.mkdir(parents=True)
    parts = []
    for i, (name, files) in enumerate(instruments.items()):
        layers = "".join(f"<layer><filename>{f}</filename></layer>" for f in files)
        parts.append(
            f"<instrument><id>{i}</id><name>{name}</name><instrumentComponent>{layers}</instrumentComponent></instrument>"
        )
        for j, f in enumerate(files):
            sf.write(
                kit / f,
                hit(
                    seed=1000 * variant + 100 * i + j,
                    tone_hz=150 + 40 * i + 25 * j + 13 * variant,
                    decay_s=0.05 + 0.03 * j + 0.02 * variant,
                    noise=0.2 + 0.1 * (i % 5),
                ),
                RATE,
            )
    lic = f"<license>{license}</license>" if license else ""
    (kit / "drumkit.xml").write_text(
        f'<?xml version="1.0"?><drumkit_info xmlns="http://www.hydrogen2.org/drumkit"><name>{folder}</name>{lic}'
        f"<instrumentList>{''.join(parts)}</instrumentList></drumkit_info>"
    )


def write_copyright(root: Path, package: str, text: str = DEP5) -> None:
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(text)


@pytest.fixture
def hydrogen_root(tmp_path):
    root = tmp_path / "hydrogen-drumkits"
    write_kit(
        root,
        "KitA",
        {
            "Snare": ["snare-soft.wav", "snare-hard.wav"],
            "Snare Roll": ["roll.wav"],
            "Kick": ["kick.wav"],
            "Stick": ["SideStick-Med.wav"],
            "Hand Clap": ["clap.wav"],
        },
        license="GPL",
        variant=0,
    )
    write_kit(root, "KitB", {"Rimshot": ["rim.wav"], "Tom": ["tom.wav"]}, license=None, variant=1)
    write_copyright(root, "hydrogen-drumkits")
    return root


# --- selection -------------------------------------------------------------------------------


def test_hydrogen_picks_the_snare_family_by_instrument_name_and_excludes_rolls(hydrogen_root):
    found = sources.hydrogen_kits("hydrogen-drumkits", "drumkits/{kit}.h2drumkit").gather(hydrogen_root)
    picked = {(c.unit, c.instrument, Path(c.origin).name) for c in found}
    assert picked == {
        ("KitA", "Snare", "snare-soft.wav"),
        ("KitA", "Snare", "snare-hard.wav"),
        ("KitA", "Stick", "SideStick-Med.wav"),  # a side stick by its file name (GMRockKit's "Stick")
        ("KitA", "Hand Clap", "clap.wav"),
        ("KitB", "Rimshot", "rim.wav"),
    }
    licences = {c.unit: c.license for c in found}
    assert licences == {"KitA": "GPL", "KitB": "CC0"}  # KitB has no <license>: the last matching DEP-5 stanza


def test_sample_folders_are_picked_by_file_name(tmp_path):
    root = tmp_path / "lmms-common"
    folder = root / "usr/share/lmms/samples/drums"
    folder.mkdir(parents=True)
    for name in ("snare01", "clap02", "kick01", "snare_roll01", "sidestick01", "hihat01"):
        sf.write(folder / f"{name}.wav", hit(seed=len(name)), RATE)
    write_copyright(root, "lmms-common")
    source = next(s for s in sources.SOURCES if s.package == "lmms-common")
    found = source.gather(root)
    assert sorted(c.instrument for c in found) == ["clap02", "sidestick01", "snare01"]
    assert {c.license for c in found} == {"GPL-2+"}


def test_licence_from_debian_copyright():
    assert debian.license_from_copyright(DEP5, "drumkits/Other.h2drumkit") == "CC0"
    assert debian.license_from_copyright(DEP5, "data/samples/x.wav") == "GPL-2+"
    assert debian.license_from_copyright("This package was debianized by ...", "x") is None


def test_a_source_without_any_licence_is_refused(tmp_path):
    root = tmp_path / "chuck-data"
    folder = root / "usr/share/doc/chuck-data/examples/data"
    folder.mkdir(parents=True)
    sf.write(folder / "snare.wav", hit(seed=1), RATE)
    with pytest.raises(UserError, match="no licence"):
        sources.named_files("chuck-data", "usr/share/doc/chuck-data/examples/data", "u", "snare", "x/{name}").gather(
            root
        )


# --- near-duplicates ---------------------------------------------------------------------------


def test_a_near_duplicate_is_rejected_and_a_different_hit_kept():
    original = hit(seed=1)
    quieter_and_late = np.concatenate([np.zeros(int(0.004 * RATE), np.float32), 0.3 * original])  # -10 dB, 4 ms later
    resampled = soxr.resample(original, RATE, 48_000)
    different = hit(seed=2, tone_hz=330.0, decay_s=0.05, noise=0.8)

    assert distance_db(fingerprint(original, RATE), fingerprint(quieter_and_late, RATE)) < SAME_SOUND_DB
    assert waveform_similarity(fingerprint(original, RATE), fingerprint(resampled, 48_000)) > 0.95
    assert distance_db(fingerprint(original, RATE), fingerprint(different, RATE)) > 2 * SAME_SOUND_DB

    kept = DuplicateFilter()
    assert kept.offer("original", fingerprint(original, RATE)) is None
    assert kept.offer("quieter", fingerprint(quieter_and_late, RATE))[0] == "original"
    assert kept.offer("resampled", fingerprint(resampled, 48_000))[0] == "original"
    assert kept.offer("exact", fingerprint(original.copy(), RATE)) == ("original", 0.0, 1.0)
    assert kept.offer("different", fingerprint(different, RATE)) is None
    assert kept.offer("different again, louder", fingerprint(2 * different, RATE))[0] == "different"


def test_a_drums_softer_layer_is_its_velocity_data_but_a_copy_elsewhere_is_refused():
    """A soft layer that sounds like the hard one (a gain-scaled copy, as some kits' layers are) is
    kept for its drum; the same sound from another drum is still a duplicate."""
    hard = hit(seed=3)
    kept = DuplicateFilter()
    assert kept.offer("kit/snare v127", fingerprint(hard, RATE), drum="kit/snare") is None
    assert kept.offer("kit/snare v40", fingerprint(0.3 * hard, RATE), drum="kit/snare") is None
    assert kept.offer("other/snare", fingerprint(0.5 * hard, RATE), drum="other/snare")[0] == "kit/snare v127"
    assert kept.offer("kit/snare again", fingerprint(hard.copy(), RATE), drum="kit/snare")[1] == 0.0  # a file twice


def test_hydrogen_layers_give_their_velocity_and_a_single_layer_none(tmp_path):
    kit = tmp_path / "Kit"
    kit.mkdir()
    (kit / "drumkit.xml").write_text(
        '<?xml version="1.0"?><drumkit_info><name>Kit</name><instrumentList>'
        "<instrument><name>Snare</name>"
        "<layer><filename>soft.wav</filename><min>0</min><max>0.5</max></layer>"
        "<layer><filename>hard.wav</filename><min>0.5</min><max>1</max></layer></instrument>"
        "<instrument><name>Clap</name><layer><filename>clap.wav</filename><min>0</min><max>1</max></layer></instrument>"
        "<instrument><name>Rimshot</name><filename>old.wav</filename></instrument>"
        "</instrumentList></drumkit_info>"
    )
    found = {path.name: velocity for _kit, _name, _lic, path, velocity in sources.scan_kit(kit / "drumkit.xml")}
    assert found == {"soft.wav": 32, "hard.wav": 95, "clap.wav": None, "old.wav": None}


def test_two_strokes_of_one_drum_are_not_duplicates():
    """Same tone and decay, different noise: two recordings, both kept."""
    a, b = hit(seed=1, noise=0.7), hit(seed=99, noise=0.7)
    kept = DuplicateFilter()
    assert kept.offer("a", fingerprint(a, RATE)) is None
    assert kept.offer("b", fingerprint(b, RATE)) is None


# --- the reserved evaluation sources -------------------------------------------------------------


@pytest.mark.parametrize(
    "package",
    [
        "fluid-soundfont-gm",
        "fluid-soundfont-gs",
        "fluidr3mono-gm-soundfont",
        "musescore-general-soundfont",
        "avldrums.lv2-soundfont",
        "sonic-pi-samples",
        "FoxDot",
    ],
)
def test_reserved_packages_are_refused(package):
    with pytest.raises(ReservedSourceError):
        check_allowed(package=package)


def test_reserved_files_are_refused_even_behind_a_symlink(tmp_path):
    reserved = tmp_path / "FluidR3_GM.sf2"
    reserved.write_bytes(b"RIFF")
    alias = tmp_path / "default-GM.sf2"
    alias.symlink_to(reserved)
    for path in (
        reserved,
        alias,
        "/usr/share/sounds/sf2/FluidR3Mono_GM.sf3",
        "/x/MuseScore_General.sf2",
        "/usr/share/sonic-pi/samples/drum_snare_hard.flac",
    ):
        with pytest.raises(ReservedSourceError):
            check_allowed(path=path)
    with pytest.raises(ReservedSourceError):
        check_allowed(name="Fluid R3 GM")  # a soundfont's own bank name
    check_allowed(package="timgm6mb-soundfont", path="/usr/share/sounds/sf2/TimGM6mb.sf2", name="TimGM6mb")


def test_no_configured_source_is_reserved_and_download_refuses_before_apt(tmp_path, monkeypatch):
    for source in sources.SOURCES:
        check_allowed(package=source.package)
    monkeypatch.setattr(debian.subprocess, "run", lambda *a, **k: pytest.fail("apt-get must not run"))
    with pytest.raises(ReservedSourceError):
        debian.download(["minuet-data", "fluid-soundfont-gm"], tmp_path)


def test_a_soundfont_named_as_reserved_is_refused_before_rendering(tmp_path, monkeypatch):
    root = tmp_path / "pkg"
    sf2 = root / "usr/share/sounds/sf2/Innocent.sf2"
    sf2.parent.mkdir(parents=True)
    sf2.write_bytes(tiny_sf2_header("Fluid R3 GM", [(128, 0, "Standard")]))
    write_copyright(root, "pkg")
    monkeypatch.setattr(sources, "render_hits", lambda *a: pytest.fail("must not render"))
    with pytest.raises(ReservedSourceError):
        sources.soundfont_drums("pkg", "usr/share/sounds/sf2/Innocent.sf2", "x", "x.sf2").gather(root)
    with pytest.raises(ReservedSourceError):
        soundfont.render_hits(tmp_path / "FluidR3_GM.sf2", [])


# --- the whole assembly: every row complete, the split deterministic --------------------------------


def assemble_fixture(tmp_path, hydrogen_root, out: str):
    lmms = tmp_path / "lmms-common"
    folder = lmms / "usr/share/lmms/samples/drums"
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "snare01.wav", np.stack([hit(seed=7), hit(seed=7)], axis=1), RATE)  # stereo in, mono out
    sf.write(folder / "snare02.wav", 0.5 * hit(seed=7), RATE)  # a quieter copy of snare01: dropped
    if not (lmms / "usr/share/doc").exists():
        write_copyright(lmms, "lmms-common")
    chosen = [s for s in sources.SOURCES if s.package in ("hydrogen-drumkits", "lmms-common")]
    return build.assemble(
        chosen, {"hydrogen-drumkits": hydrogen_root, "lmms-common": lmms}, tmp_path / out, progress=False
    )


def test_every_row_has_licence_sha256_and_a_mono_file(tmp_path, hydrogen_root):
    files, reports = assemble_fixture(tmp_path, hydrogen_root, "corpus")
    assert len(files) == 6 and reports["lmms-common"].duplicates == 1
    for f in files:
        assert f.license and f.source and f.origin and f.split in ("train", "val")
        path = tmp_path / "corpus" / f.path
        assert f.sha256 == sha256_of(path)
        assert sf.info(str(path)).channels == 1
    write_manifest(files, tmp_path / "m.csv")
    assert read_manifest(tmp_path / "m.csv") == files
    dropped = (tmp_path / "corpus" / build.DROPPED_NAME).read_text().splitlines()
    assert len(dropped) == 2 and "snare02.wav,duplicate,LMMS_drums/snare01.wav," in dropped[1]


def test_the_split_is_deterministic_and_by_whole_unit(tmp_path, hydrogen_root):
    first, _ = assemble_fixture(tmp_path, hydrogen_root, "a")
    second, _ = assemble_fixture(tmp_path, hydrogen_root, "b")
    assert [(f.path, f.split, f.sha256) for f in first] == [(f.path, f.split, f.sha256) for f in second]
    assert corpus_hash(first) == corpus_hash(second)
    for unit in {f.kit for f in first}:
        assert len({f.split for f in first if f.kit == unit}) == 1

    # The original Hydrogen kits keep their fixed list; other units go by a hash of their name alone.
    assert all(split_for(kit, "hydrogen-drumkits") == "val" for kit in HOLDOUT_KITS)
    assert split_for("Forzee Stereo Drumkit", "hydrogen-drumkits") == "train"
    names = [f"unit {i}" for i in range(2000)]
    held = [n for n in names if split_for(n, "minuet-data") == "val"]
    assert abs(len(held) / len(names) - VAL_UNIT_FRACTION) < 0.03
    assert held == [n for n in reversed(names) if split_for(n, "minuet-data") == "val"][::-1]


def test_old_manifests_without_the_new_columns_still_read(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("path,kit,instrument,license,split,sha256\nk/a.wav,k,Snare,GPL,train,abc\n")
    assert read_manifest(path) == [CorpusFile("k/a.wav", "k", "Snare", "GPL", "train", "abc")]
    (tmp_path / "bad.csv").write_text("path,kit\nx,y\n")
    with pytest.raises(UserError, match="not a corpus manifest"):
        read_manifest(tmp_path / "bad.csv")


# --- rendered hits and other formats ---------------------------------------------------------------


def test_rendered_hits_must_be_non_silent_one_shots():
    t = np.arange(2 * RATE) / RATE
    assert build._reject_reason(np.zeros(RATE, np.float32), RATE, rendered=True) == "silent"
    assert (
        build._reject_reason((np.sin(2 * np.pi * 200 * t) * 0.5).astype(np.float32), RATE, rendered=True) == "sustained"
    )
    decaying = np.pad(hit(seed=3), (0, RATE))
    assert build._reject_reason(decaying, RATE, rendered=True) is None


def test_the_hits_midi_holds_each_note_in_its_own_slot():
    standard = soundfont.Preset(128, 0, "Standard")
    midi = soundfont.hits_midi([soundfont.Hit(standard, 38, 127), soundfont.Hit(standard, 40, 40)])
    now, events = 0.0, []
    for message in midi:  # mido yields delta times in seconds
        now += message.time
        if message.type in ("note_on", "note_off"):
            events.append((message.type, message.note, round(now, 3)))
    lead, hold, slot = soundfont.LEAD_SECONDS, soundfont.HIT_SECONDS, soundfont.SLOT_SECONDS
    assert events == [
        ("note_on", 38, lead),
        ("note_off", 38, lead + hold),
        ("note_on", 40, slot + lead),
        ("note_off", 40, slot + lead + hold),
    ]
    assert all(m.channel == soundfont.DRUM_CHANNEL for m in midi if not m.is_meta)
    with pytest.raises(ValueError):
        soundfont.hits_midi([soundfont.Hit(soundfont.Preset(0, 0, "Piano"), 60, 100)])


def tiny_sf2_header(bank_name: str, presets: list[tuple[int, int, str]]) -> bytes:
    """An SF2 skeleton with INFO/INAM and pdta/phdr: enough for read_sf2_header."""

    def chunk(cid: bytes, body: bytes) -> bytes:
        return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")

    inam = bank_name.encode() + b"\0"
    records = b"".join(
        name.encode().ljust(20, b"\0") + struct.pack("<HHHIII", program, bank, 0, 0, 0, 0)
        for bank, program, name in presets + [(0, 0, "EOP")]
    )
    info = chunk(b"LIST", b"INFO" + chunk(b"INAM", inam))
    pdta = chunk(b"LIST", b"pdta" + chunk(b"phdr", records))
    body = b"sfbk" + info + pdta
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_sf2_presets_are_read_from_the_header(tmp_path):
    path = tmp_path / "t.sf2"
    path.write_bytes(tiny_sf2_header("Tiny", [(0, 0, "Piano"), (128, 25, "TR 808"), (128, 0, "Standard")]))
    name, presets = soundfont.read_sf2_header(path)
    assert name == "Tiny"
    assert presets == [
        soundfont.Preset(0, 0, "Piano"),
        soundfont.Preset(128, 0, "Standard"),
        soundfont.Preset(128, 25, "TR 808"),
    ]


def test_soundfont_drum_kits_render_only_snare_family_notes(tmp_path, monkeypatch):
    root = tmp_path / "pkg"
    sf2 = root / "usr/share/sounds/sf2/Kit.sf2"
    sf2.parent.mkdir(parents=True)
    sf2.write_bytes(
        tiny_sf2_header(
            "Kit", [(0, 0, "Piano"), (128, 0, "Standard"), (128, 40, "Brush"), (128, 48, "Orchestra"), (128, 56, "SFX")]
        )
    )
    write_copyright(root, "pkg")
    asked = []

    def fake_render(path, hits):
        asked.extend(hits)
        return [np.zeros(10, np.float32) for _ in hits]

    monkeypatch.setattr(sources, "render_hits", fake_render)
    found = sources.soundfont_drums("pkg", "usr/share/sounds/sf2/Kit.sf2", "Kit", "x.sf2").gather(root)
    notes = {(h.preset.name, h.note) for h in asked}
    assert notes == {("Standard", n) for n in (37, 38, 39, 40)} | {("Brush", n) for n in (37, 38, 39)} | {
        ("Orchestra", n) for n in (37, 38, 40)
    }  # no swirl, no castanets, no SFX kit, no melodic bank
    assert {h.velocity for h in asked} == set(sources.VELOCITIES)
    assert {c.unit for c in found} == {"Kit 000 Standard", "Kit 040 Brush", "Kit 048 Orchestra"}
    assert all(c.rendered and c.license == "GPL-2+" and c.velocity for c in found)


def test_gus_drum_patch_is_read_as_its_one_shot_wave(tmp_path):
    wave = (hit(seed=5, rate=32_000)[:8000] * 30000).astype("<i2")
    header = bytearray(239 + 96)
    header[:12] = b"GF1PATCH110\0"
    header[239 + 8 : 239 + 22] = struct.pack("<IIIH", wave.nbytes, 0, 0, 32_000)
    header[239 + 55] = 0x01  # 16-bit signed, no loop
    path = tmp_path / "038_Snare_1.pat"
    path.write_bytes(bytes(header) + wave.tobytes())
    audio, rate = sources.read_gus_patch(path)
    assert rate == 32_000 and np.allclose(audio, wave / 32768)
    header[239 + 55] = 0x05  # looped
    path.write_bytes(bytes(header) + wave.tobytes())
    with pytest.raises(UserError, match="looped"):
        sources.read_gus_patch(path)


TIMGM6MB = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")


@pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not TIMGM6MB.is_file(),
    reason="needs fluidsynth and timgm6mb-soundfont installed",
)
def test_fluidsynth_renders_a_drum_preset():
    standard = soundfont.Preset(128, 0, "Standard")
    hits = [soundfont.Hit(standard, 38, 127), soundfont.Hit(standard, 38, 40), soundfont.Hit(standard, 100, 127)]
    loud, soft, missing = soundfont.render_hits(TIMGM6MB, hits)
    assert loud.size == round((soundfont.LEAD_SECONDS + soundfont.HIT_SECONDS) * soundfont.RENDER_RATE)
    assert build._reject_reason(loud, soundfont.RENDER_RATE, rendered=True) is None
    assert np.max(np.abs(loud)) > 2 * np.max(np.abs(soft)) > 0  # velocity reaches the synth
    assert np.max(np.abs(loud[: int(0.04 * soundfont.RENDER_RATE)])) < 1e-4  # silence before the hit
    assert build._reject_reason(missing, soundfont.RENDER_RATE, rendered=True) == "silent"  # no such drum


def test_missing_tools_are_one_line_errors_naming_the_package(monkeypatch):
    monkeypatch.setattr(soundfont.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get install --no-install-recommends fluidsynth"):
        soundfont.require_fluidsynth()
    monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="apt-get and dpkg"):
        debian.require_tools()


def test_unknown_source_names_are_refused():
    with pytest.raises(UserError, match="unknown corpus source nope"):
        build.select_sources(["nope"])
    assert [s.package for s in build.select_sources(["stk"])] == ["stk"]
