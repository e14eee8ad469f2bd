import mido
from hypothesis import given, settings
from hypothesis import strategies as st

from instrument.config import Config, MidiConfig
from instrument.core.events import ALL_NOTES_OFF, ALL_SOUND_OFF, CONTINUE, START, STOP, Clock, Loop, NoteOff, NoteOn
from instrument.host.midi import MidiRouter, choose_jack_inputs, match_ports
from instrument.rt.engine import Engine, engine_settings
from instrument.rt.routing import route_in_cycle


class Recorder:
    """Stands in for the engine (posted events) and the knob owner (turns, as (axis, cc))."""

    def __init__(self):
        self.events, self.turns, self.saves, self.programs = [], [], [], []

    def post(self, event):
        self.events.append(event)


def router(**kw):
    rec = Recorder()
    r = MidiRouter(
        Config(midi=MidiConfig(**kw)),
        rec,
        on_turn=lambda axis, cc: rec.turns.append((axis, cc)),
        on_save=lambda: rec.saves.append(1),
        on_program=rec.programs.append,
    )
    return r, rec


def test_notes_knobs_and_housekeeping_become_events():
    r, rec = router()
    for msg in [
        mido.Message("note_on", note=38, velocity=100),
        mido.Message("note_on", note=38, velocity=0),
        mido.Message("note_off", note=38),
        mido.Message("control_change", control=74, value=10),
        mido.Message("control_change", control=75, value=99),
        mido.Message("control_change", control=120),
        mido.Message("control_change", control=123),
        mido.Message("control_change", control=1, value=5),
    ]:
        r.handle(msg)
    assert rec.events == [NoteOn(100), NoteOff(), NoteOff(), ALL_SOUND_OFF, ALL_NOTES_OFF]
    assert rec.turns == [(0, 10), (1, 99)]


def test_only_trigger_notes_play_and_an_empty_list_means_every_note():
    r, rec = router(trigger_notes=(38,))
    r.handle(mido.Message("note_on", note=60, velocity=100))
    assert rec.events == []
    r, rec = router(trigger_notes=())
    r.handle(mido.Message("note_on", note=60, velocity=100))
    assert rec.events == [NoteOn(100)]


def test_channel_filter():
    r, rec = router(channel=10)
    r.handle(mido.Message("note_on", channel=0, note=38, velocity=100))
    r.handle(mido.Message("note_on", channel=9, note=38, velocity=100))
    assert rec.events == [NoteOn(100)]


def test_sysex_active_sensing_and_other_messages_play_nothing_and_clock_only_feeds_the_loop():
    r, rec = router()
    for msg in [
        mido.Message("sysex", data=[1] * 65536),
        mido.Message("clock"),
        mido.Message("active_sensing"),
        mido.Message("start"),
        mido.Message("pitchwheel", pitch=100),
        mido.Message("aftertouch"),
    ]:
        r.handle(msg)
    assert rec.events == [Clock(), START] and rec.turns == [] and rec.saves == []


def test_ports_are_matched_by_name_patterns():
    names = ["Launchkey MIDI 1", "Midi Through Port-0", "nanoKONTROL2", "latent-snare:Latent Snare"]
    assert match_ports(names, ("*",), ("*through*", "*Latent Snare*")) == ["Launchkey MIDI 1", "nanoKONTROL2"]
    assert match_ports(names, ("nano*",), ()) == ["nanoKONTROL2"]
    assert match_ports(names, (), ()) == []


def test_jack_inputs_are_hardware_ports_unless_software_ones_are_named():
    ports = [
        ("system:midi_capture_1", True),
        ("a2j:Launchkey [24] (capture): Launchkey MIDI", False),
        ("Hydrogen:out", False),
        ("ardour:Drums/midi_out 1", False),
        ("fluidsynth-midi:midi_00", False),
    ]
    default = MidiConfig()
    assert choose_jack_inputs(ports, default) == [
        "system:midi_capture_1",
        "a2j:Launchkey [24] (capture): Launchkey MIDI",
    ]
    named = MidiConfig(inputs=("*launchkey*",), software_inputs=("hydrogen:*",))
    assert choose_jack_inputs(ports, named) == ["a2j:Launchkey [24] (capture): Launchkey MIDI", "Hydrogen:out"]
    assert choose_jack_inputs(ports, MidiConfig(software_inputs=("*",), exclude=("*fluidsynth*",))) == [
        n for n, _ in ports[:4]
    ]


# 2000 examples of 25..75 chunks: about 100 000 random byte sequences per run, through both the
# MIDI thread's path (parsed messages) and the JACK audio thread's raw path.
@settings(max_examples=2000, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=4), min_size=25, max_size=75), st.integers(0, 127))
def test_random_bytes_never_raise_and_all_notes_off_leaves_no_voice(chunks, offset):
    import numpy as np

    engine = Engine(engine_settings(48000, 128))
    engine.publish(np.ones(48000, dtype=np.float32) * 0.1)
    r = MidiRouter(Config(midi=MidiConfig(trigger_notes=())), engine, on_turn=lambda axis, cc: None)
    parser = mido.Parser()
    for chunk in chunks:
        parser.feed(chunk)
        if len(chunk) <= 3:
            route_in_cycle(chunk, offset, r.routes, r.engine.post)
            engine.render(128)
    for msg in parser:
        r.handle(msg)
        engine.render(128)
    r.handle(mido.Message("control_change", control=123))
    for _ in range(4):
        engine.render(128)
    assert engine.stats.voices == 0


def cc(control, value):
    return mido.Message("control_change", control=control, value=value)


def test_clock_and_transport_reach_the_engine_and_program_change_picks_a_model():
    r, rec = router(channel=2)  # real-time messages have no channel: they pass any channel filter
    for msg in [
        mido.Message("start"),
        mido.Message("clock"),
        mido.Message("stop"),
        mido.Message("continue"),
        mido.Message("program_change", program=3, channel=1),
        mido.Message("program_change", program=5, channel=0),
    ]:
        r.handle(msg)
    assert rec.events == [START, Clock(), STOP, CONTINUE]
    assert rec.programs == [3]


def test_loop_and_save_buttons():
    r, rec = router()
    for msg in [cc(85, 127), cc(85, 0), cc(86, 127), cc(86, 127), cc(86, 0), cc(86, 100)]:
        r.handle(msg)
    assert rec.events == [Loop(True), Loop(False)]
    assert len(rec.saves) == 2, "a held save button (repeated 127s) saves once per press"


def test_midi_learn_assigns_the_next_free_control_and_skips_ones_that_have_a_job():
    r, rec = router()
    learned = []
    r.learn("x", lambda *a: learned.append(a))
    r.handle(mido.Message("note_on", note=38, velocity=100))  # a note cannot be a knob: it still plays
    r.handle(cc(21, 5))
    assert learned == [("midi.cc_x", 21)] and rec.events == [NoteOn(100)]
    r.handle(cc(21, 90))
    assert rec.turns[-1] == (0, 90), "the learned CC now moves x"
    r.learn("save", lambda *a: learned.append(a))
    r.handle(mido.Message("note_on", note=60, velocity=1))
    assert learned[-1] == ("save.note", 60) and r.controls["save.cc"] == -1
    r.handle(mido.Message("note_on", note=60, velocity=100))
    assert rec.saves == [1]
    r.learn("loop", lambda *a: learned.append(a))
    r.handle(cc(21, 3))  # the x knob, still turning: it keeps moving x and is not learned
    assert r.learn_skipped == {"CC 21": "midi.cc_x"} and rec.turns[-1] == (0, 3) and len(learned) == 2
    r.handle(cc(90, 127))
    assert learned[-1] == ("loop.toggle_cc", 90)


def test_the_audio_threads_fast_path_plays_trigger_notes_at_their_offset_and_defers_the_rest():
    r, rec = router(channel=1)
    handled = [
        route_in_cycle(bytes(data), offset, r.routes, r.engine.post)
        for data, offset in [
            ([0x90, 38, 100], 17),  # a trigger note on channel 1: played at frame 17
            ([0x80, 38, 0], 20),
            ([0x90, 38, 0], 21),  # note-off, and note-on velocity 0 (a note-off)
            ([0x91, 38, 100], 5),  # another channel: ignored here, not deferred
            ([0x90, 60, 100], 5),  # not a trigger note: ignored
            ([0xF8], 64),
            ([0xFA], 0),
            ([0xFE], 3),  # clock at its frame, start, active sensing ignored
            ([0xB0, 74, 3], 9),
            ([0xC0, 1], 9),
            ([0xE0, 0, 64], 9),  # knobs, programs, pitch bend: the MIDI thread's
        ]
    ]
    assert handled == [True, True, True, True, True, True, True, True, False, False, False]
    assert rec.events == [NoteOn(100, offset=17), NoteOff(offset=20), NoteOff(offset=21), Clock(offset=64), START]
    assert rec.turns == [] and rec.programs == []


def test_the_fast_path_leaves_saving_and_learning_to_the_midi_thread():
    r, rec = router(trigger_notes=(38,))
    r.assign("save.note", 38)
    assert (
        route_in_cycle(bytes([0x90, 38, 100]), 0, r.routes, r.engine.post) is False
    )  # saving writes files: never on the audio thread
    r.assign("save.note", -1)
    r.learn("loop", lambda *learned: None)
    assert (
        route_in_cycle(bytes([0x90, 38, 100]), 0, r.routes, r.engine.post) is False
    )  # learning changes the assignments
    assert rec.events == [] and rec.saves == []
