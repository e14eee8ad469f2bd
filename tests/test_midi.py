import mido
from hypothesis import given, settings, strategies as st

from instrument.config import MidiConfig
from instrument.engine import ALL_NOTES_OFF, ALL_SOUND_OFF, NOTE_OFF, NOTE_ON, Engine
from instrument.midi import MidiRouter, match_ports


class Recorder:
    def __init__(self):
        self.events, self.knobs = [], []

    def post(self, kind, a=0, b=0):
        self.events.append((kind, a, b))


def router(**kw):
    rec = Recorder()
    return MidiRouter(MidiConfig(**kw), rec, on_knobs=lambda x, y: rec.knobs.append((x, y))), rec


def test_notes_knobs_and_housekeeping_become_events():
    r, rec = router()
    for msg in [mido.Message("note_on", note=38, velocity=100), mido.Message("note_on", note=38, velocity=0),
                mido.Message("note_off", note=38), mido.Message("control_change", control=74, value=10),
                mido.Message("control_change", control=75, value=99), mido.Message("control_change", control=120),
                mido.Message("control_change", control=123), mido.Message("control_change", control=1, value=5)]:
        r.handle(msg)
    assert rec.events == [(NOTE_ON, 38, 100), (NOTE_OFF, 38, 0), (NOTE_OFF, 38, 0), (ALL_SOUND_OFF, 0, 0), (ALL_NOTES_OFF, 0, 0)]
    assert rec.knobs == [(10, 64), (10, 99)]


def test_only_trigger_notes_play_and_an_empty_list_means_every_note():
    r, rec = router(trigger_notes=(38,))
    r.handle(mido.Message("note_on", note=60, velocity=100))
    assert rec.events == []
    r, rec = router(trigger_notes=())
    r.handle(mido.Message("note_on", note=60, velocity=100))
    assert rec.events == [(NOTE_ON, 60, 100)]


def test_channel_filter():
    r, rec = router(channel=10)
    r.handle(mido.Message("note_on", channel=0, note=38, velocity=100))
    r.handle(mido.Message("note_on", channel=9, note=38, velocity=100))
    assert rec.events == [(NOTE_ON, 38, 100)]


def test_sysex_clock_and_active_sensing_are_ignored():
    r, rec = router()
    for msg in [mido.Message("sysex", data=[1] * 65536), mido.Message("clock"), mido.Message("active_sensing"),
                mido.Message("start"), mido.Message("pitchwheel", pitch=100), mido.Message("aftertouch")]:
        r.handle(msg)
    assert rec.events == [] and rec.knobs == []


def test_ports_are_matched_by_name_patterns():
    names = ["Launchkey MIDI 1", "Midi Through Port-0", "nanoKONTROL2", "latent-snare:Latent Snare"]
    assert match_ports(names, ("*",), ("*through*", "*Latent Snare*")) == ["Launchkey MIDI 1", "nanoKONTROL2"]
    assert match_ports(names, ("nano*",), ()) == ["nanoKONTROL2"]
    assert match_ports(names, (), ()) == []


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=4), max_size=50))
def test_random_bytes_never_raise_and_all_notes_off_leaves_no_voice(chunks):
    import numpy as np

    engine = Engine(48000, 128)
    engine.publish(np.ones(48000, dtype=np.float32) * 0.1)
    r = MidiRouter(MidiConfig(trigger_notes=()), engine, on_knobs=lambda x, y: None)
    parser = mido.Parser()
    for chunk in chunks:
        parser.feed(chunk)
    for msg in parser:
        r.handle(msg)
        engine.render(128)
    r.handle(mido.Message("control_change", control=123))
    for _ in range(4):
        engine.render(128)
    assert engine.stats.voices == 0
