"""Saving, history, sample packs, the drop folder and untrusted-file parsing: offline, no devices."""

import os

import numpy as np
import pytest
import soundfile as sf

from instrument.app.dropfolder import DropFolder
from instrument.config import load_config
from instrument.errors import UserError
from instrument.files.pack import render_pack
from instrument.files.saving import History, read_snare_metadata, save_snare
from instrument.files.untrusted import load_snare_isolated
from instrument.model.file import load_model

from .conftest import synth_snare

MODEL = load_model(None, load_config().model)


def test_saves_are_numbered_named_by_knobs_and_carry_their_latent(tmp_path):
    latent = MODEL.knobs.cc_to_latent(10, 120)
    first = save_snare(tmp_path / "new" / "folder", MODEL, latent)
    second = save_snare(tmp_path / "new" / "folder", MODEL, latent)
    assert (first.number, second.number) == (1, 2)
    assert first.file == f"0001-{MODEL.name}-x010-y120.wav"
    meta = read_snare_metadata(tmp_path / "new" / "folder" / first.file)
    np.testing.assert_allclose(meta["latent"], latent, atol=1e-6)
    assert History(tmp_path / "new" / "folder").get(2).cc == (10, 120)


def test_a_corrupted_history_is_kept_aside_and_replaced(tmp_path):
    (tmp_path / "history.json").write_text("[{not json")
    entry = save_snare(tmp_path, MODEL, MODEL.knobs.cc_to_latent(64, 64))
    assert entry.number == 1
    assert len(list(tmp_path.glob("history.corrupt-*.json"))) == 1, "the broken history is kept, not deleted"
    with pytest.raises(UserError, match="no saved snare number 7 \\(saved: 1..1\\)"):
        History(tmp_path).get(7)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_clear_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(UserError, match="cannot save there"):
            save_snare(tmp_path / "sub", MODEL, MODEL.knobs.cc_to_latent(64, 64))
    finally:
        tmp_path.chmod(0o700)


def test_a_full_disk_is_one_clear_error_and_leaves_no_half_file(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    wav = tmp_path / f"0001-{MODEL.name}-x064-y064.wav"
    wav.symlink_to("/dev/full")  # the next save's file: every write to it fails with ENOSPC
    with pytest.raises(UserError, match="cannot save there"):
        save_snare(tmp_path, MODEL, MODEL.knobs.cc_to_latent(64, 64))
    assert not wav.exists() and not wav.is_symlink(), "the failed file is removed"
    assert History(tmp_path).entries == [], "a failed save is not in the history"


def test_pack_renders_a_grid_with_an_index_and_a_map(tmp_path):
    rows = render_pack(MODEL, 3, tmp_path / "pack", load_config())
    files = sorted((tmp_path / "pack").glob("*.wav"))
    assert len(rows) == len(files) == 9
    assert {(r["cc_x"], r["cc_y"]) for r in rows} == {(x, y) for x in (0, 64, 127) for y in (0, 64, 127)}
    index = (tmp_path / "pack" / "index.csv").read_text().splitlines()
    assert index[0].startswith("file,row,col,cc_x,cc_y,latent_x,latent_y") and len(index) == 10
    assert (tmp_path / "pack" / "latent-map.png").read_bytes()[:4] == b"\x89PNG"
    corners = [sf.read(tmp_path / "pack" / r["file"])[0] for r in (rows[0], rows[-1])]
    assert not np.allclose(corners[0], corners[1], atol=1e-3), "opposite corners of the pack are the same snare"
    with pytest.raises(UserError, match="allowed 2..32"):
        render_pack(MODEL, 1, tmp_path / "x", load_config())


def test_drop_folder_takes_complete_audio_files_once_and_names_non_audio(tmp_path):
    got, said = [], []
    (tmp_path / "old.wav").write_bytes(b"here before the start")
    drop = DropFolder(tmp_path, got.append, said.append)
    drop._seen = dict(drop._listing())  # what start() does, without the thread
    growing = tmp_path / "growing.wav"
    growing.write_bytes(b"RIFF")
    drop.poll()
    with open(growing, "ab") as f:
        f.write(b"more")  # still being copied: its size changed since the last poll
    drop.poll()
    assert got == []
    (tmp_path / "take.mp3.part").write_bytes(b"partial")
    (tmp_path / ".hidden.wav").write_bytes(b"x")
    (tmp_path / "readme.txt").write_text("hello")
    drop.poll()
    drop.poll()
    assert got == [growing], "taken once it held still for a poll; old, hidden and partial files never"
    assert said == ["drop: readme.txt is not an audio file (.wav, .flac, .aif, .aiff, .ogg); ignored"]
    drop.poll()
    assert got == [growing] and len(said) == 1, "each file once"


def test_an_untrusted_file_is_refused_in_the_child_with_the_same_one_line_error(tmp_path):
    path = tmp_path / "bad.wav"
    path.write_bytes(b"RIFF\xff\xff\xff\xffWAVEfmt ")  # a size that lies, and nothing after the header
    with pytest.raises(UserError, match=f"^{path}: not a readable audio file"):
        load_snare_isolated(path, MODEL.sample_rate, MODEL.n_samples)


def test_untrusted_parse_returns_a_finite_snare_even_with_nan_samples(tmp_path):
    wave = synth_snare(48000, 0.4, 200, 0.1, 0.5, seed=3)
    wave[100:200] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 48000, subtype="FLOAT")
    out = load_snare_isolated(tmp_path / "nan.wav", MODEL.sample_rate, MODEL.n_samples)
    assert out.shape == (MODEL.n_samples,) and np.all(np.isfinite(out))


def test_a_reader_that_runs_past_its_time_is_stopped(tmp_path):
    sf.write(tmp_path / "ok.wav", synth_snare(48000, 0.4, 200, 0.1, 0.5, seed=3), 48000)
    # No interpreter starts in 10 ms: a stand-in for a crafted file that hangs libsndfile.
    with pytest.raises(UserError, match="took longer than 0.01 s"):
        load_snare_isolated(tmp_path / "ok.wav", MODEL.sample_rate, MODEL.n_samples, timeout_s=0.01)


def test_a_fifo_or_device_is_not_an_audio_file(tmp_path):
    fifo = tmp_path / "never-ends.wav"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(UserError, match="not a regular file"):
        load_snare_isolated(fifo, MODEL.sample_rate, MODEL.n_samples)
