import numpy as np
import pytest
import soundfile as sf

from instrument.errors import UserError
from instrument.files.audio import FADE_OUT_MS, load_snare, read_audio

from .conftest import synth_snare

RATE, N = 44100, 8192


@pytest.mark.parametrize(
    "rate,subtype,channels", [(22050, "PCM_16", 1), (48000, "PCM_24", 2), (96000, "FLOAT", 6), (8000, "PCM_U8", 1)]
)
def test_any_rate_depth_and_channel_count_becomes_a_model_ready_snare(tmp_path, rate, subtype, channels):
    wave = synth_snare(rate, 0.3, 200, 0.05, 0.4, seed=1, lead_s=0.1)
    path = tmp_path / "x.wav"
    sf.write(path, np.repeat(wave[:, None], channels, axis=1), rate, subtype=subtype)
    out = load_snare(path, RATE, N)
    assert out.shape == (N,) and out.dtype == np.float32
    assert np.max(np.abs(out)) == pytest.approx(1.0)
    # Onset-aligned: the 100 ms of leading silence is gone; the transient is within the first millisecond.
    assert np.argmax(np.abs(out) > 0.03) < RATE // 1000
    # Faded out: the last sample is silent.
    assert out[-1] == 0.0


def test_short_file_is_padded_with_silence(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, synth_snare(RATE, 0.05, 300, 0.01, 0.2, seed=2, lead_s=0), RATE)
    out = load_snare(path, RATE, N)
    assert out.shape == (N,)
    assert np.all(out[int(0.06 * RATE) :] == 0)


def test_fade_out_reaches_zero_smoothly(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.random.default_rng(0).uniform(-1, 1, RATE).astype(np.float32), RATE)
    out = load_snare(path, RATE, N)
    fade = int(FADE_OUT_MS * 1e-3 * RATE)
    assert np.max(np.abs(out[-fade // 10 :])) < 0.05 and out[-1] == 0


@pytest.mark.parametrize(
    "content,expected",
    [
        (b"", "not a readable audio file"),
        (b"this is a text file, renamed", "not a readable audio file"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "not a readable audio file"),
    ],
)
def test_broken_files_give_one_line_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        load_snare(path, RATE, N)
    assert str(path) in str(err.value) and expected in str(err.value) and "\n" not in str(err.value)


def test_silent_file_is_refused(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(4000, np.float32), RATE)
    with pytest.raises(UserError, match="silent"):
        load_snare(path, RATE, N)


def test_nan_samples_do_not_leak_through(tmp_path):
    wave = synth_snare(RATE, 0.2, 200, 0.05, 0.3, seed=3)
    wave[500:600] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, wave, RATE, subtype="FLOAT")
    out = load_snare(path, RATE, N)
    assert np.all(np.isfinite(out))


def test_reading_is_capped_in_duration(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(RATE * 3, np.float32) + 0.1, RATE)
    data, _ = read_audio(path, max_duration_s=1.0)
    assert data.shape[0] == RATE
