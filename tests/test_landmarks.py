"""Landmarks: where a model puts its training snares, stored with it for the pages' dots."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest

from instrument.files.landmarks import corpus_landmarks, landmarks_of, write_landmarks
from instrument.model.file import available_models, load_model
from instrument.paths import MODELS_DIR


def test_each_drum_is_one_landmark_where_the_model_puts_its_hardest_clip():
    model = load_model("env-small")
    soft = model.decode_cc(20, 100, velocity=40)
    hard = model.decode_cc(100, 30)
    snares = SimpleNamespace(
        waves=np.stack([soft, hard, model.decode_cc(60, 60)]),
        kits=["Kit A", "Kit A", "Kit B"],
        drums=["Kit A/Snare 1", "Kit A/Snare 1", "Kit B/loose.wav"],
        velocity=np.array([40.0, 127.0, 127.0]),
        names=["Kit A/soft.wav", "Kit A/hard.wav", "Kit B/loose.wav"],
    )
    landmarks = corpus_landmarks(model, snares)
    # A snare the model rendered is found again where it was rendered (encode's own promise).
    assert [mark["cc"] for mark in landmarks] == [pytest.approx([100, 30], abs=0.6), pytest.approx([60, 60], abs=0.6)]
    assert [(mark["kit"], mark["instrument"]) for mark in landmarks] == [("Kit A", "Snare 1"), ("Kit B", "loose")]
    assert all(mark["cc"] == [round(c, 1) for c in mark["cc"]] for mark in landmarks)


def test_written_landmarks_keep_the_model_loadable_and_small(tmp_path):
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"m{suffix}").write_bytes((MODELS_DIR / f"env-small{suffix}").read_bytes())
    marks = [{"cc": [1.5, 2.0], "kit": "Ké", "instrument": "Snare"}] * 3
    write_landmarks(tmp_path / "m.json", marks)
    write_landmarks(tmp_path / "m.json", marks[:2])  # again: replaced, not added
    model = load_model(tmp_path / "m.json")
    assert landmarks_of(model) == marks[:2]
    text = (tmp_path / "m.json").read_text()
    assert text.count('"kit"') == 2 and len(text.splitlines()) < len((MODELS_DIR / "env-small.json").read_text()) + 10


@pytest.mark.parametrize("name", available_models())
def test_every_shipped_model_carries_a_landmark_for_each_training_drum(name):
    """models/corpus.csv lists the corpus the models were trained on; each training drum (a kit's
    instrument with velocity layers, or one sample) has its landmark, inside the knobs' travel."""
    rows = [r for r in csv.DictReader(open(MODELS_DIR / "corpus.csv")) if r["split"] == "train"]
    drums = {(r["kit"], r["instrument"]) if r["velocity"].strip() else (r["kit"], r["path"]) for r in rows}
    landmarks = landmarks_of(load_model(name))
    assert len(landmarks) == len(drums)
    assert {mark["kit"] for mark in landmarks} == {kit for kit, _ in drums}
    cc = np.array([mark["cc"] for mark in landmarks])
    assert cc.min() >= 0 and cc.max() <= 127
    assert cc.std(axis=0).min() > 15, "the landmarks are bunched: not where a trained model spreads its corpus"
    assert len(json.dumps(landmarks)) < 12_000
