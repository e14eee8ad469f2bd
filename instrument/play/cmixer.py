"""The C mixer (mixer.c) from Python: the audio process's cycle without the interpreter.

`pip install` builds mixer.c into `instrument/play/_mixer*.so` (a plain shared library: it
has no Python module in it, so it is loaded with ctypes, never imported). `CMixer` runs an
`Engine`'s settings on the shared layout: the Python engine computes every constant once
(velocity curve, fades, limiter release, loop tempo), so the two cannot disagree on them.

Where the library was not built (no C compiler at install time: the build is optional) or
cannot attach, `available()` or `attach_jack` says why in one line, and the audio process
runs engine.py's cycle instead.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util

import numpy as np

from .shared import RingIndex, Routes, SharedStats, SnareTable

LIBRARY = "instrument.play._mixer"
_i64, _f64, _ptr = ctypes.c_int64, ctypes.c_double, ctypes.c_void_p


class _Settings(ctypes.Structure):
    _fields_ = [
        ("sample_rate", _i64),
        ("max_block", _i64),
        ("polyphony", _i64),
        ("choke", _i64),
        ("steal_fade", _i64),
        ("panic_fade", _i64),
        ("loop_velocity", _i64),
        ("clock_timeout", _i64),
        ("ceiling", _f64),
        ("master_gain", _f64),
        ("release_coef", _f64),
        ("frames_per_step", _f64),
        ("ticks_per_step", _i64),
        ("velocity_gain", _f64 * 128),
    ]


class _Layout(ctypes.Structure):
    _fields_ = [
        ("stats", _ptr),
        ("snares", _ptr),
        ("routes", _ptr),
        ("events_index", _ptr),
        ("events", _ptr),
        ("midi_index", _ptr),
        ("midi", _ptr),
        ("ring_records", _i64),
        ("slots", _ptr),
        ("slot_frames", _i64),
    ]


@functools.cache
def _library() -> ctypes.CDLL | str:
    """The loaded library, or why it cannot be used."""
    spec = importlib.util.find_spec(LIBRARY)
    if spec is None or not spec.origin:
        return "the C mixer was not built (reinstall with a C compiler: apt-get install gcc libc6-dev)"
    try:
        lib = ctypes.CDLL(spec.origin)
    except OSError as err:
        return f"{spec.origin} cannot be loaded ({err}; reinstall: pip install -e .)"
    lib.lsn_new.restype, lib.lsn_new.argtypes = _ptr, [ctypes.POINTER(_Settings), ctypes.POINTER(_Layout)]
    lib.lsn_free.restype, lib.lsn_free.argtypes = None, [_ptr]
    lib.lsn_begin.restype, lib.lsn_begin.argtypes = None, [_ptr]
    lib.lsn_mix.restype, lib.lsn_mix.argtypes = None, [_ptr, _ptr, _i64, _i64]
    lib.lsn_midi.restype, lib.lsn_midi.argtypes = None, [_ptr, ctypes.c_char_p, _i64, _i64]
    lib.lsn_jack_attach.restype = ctypes.c_int
    lib.lsn_jack_attach.argtypes = [_ptr, ctypes.c_char_p, _ptr, _ptr, _ptr, _i64]
    lib.lsn_layout_size.restype, lib.lsn_layout_size.argtypes = _i64, [_i64]
    ours = [
        ctypes.sizeof(SharedStats),
        ctypes.sizeof(SnareTable),
        ctypes.sizeof(Routes),
        ctypes.sizeof(RingIndex),
        SharedStats.cycle_end_hist.offset,
        ctypes.sizeof(_Settings),
        ctypes.sizeof(_Layout),
    ]
    if [lib.lsn_layout_size(k) for k in range(len(ours))] != ours:
        return f"{spec.origin} was built for another shared layout (reinstall: pip install -e .)"
    return lib


def available() -> str | None:
    """None when the C mixer can run; otherwise why not, in one line."""
    lib = _library()
    return lib if isinstance(lib, str) else None


class CMixer:
    """One C mixer on `shared` (a SharedAudio), with `engine`'s settings; it owns its C state."""

    def __init__(self, engine, shared):
        self.lib = _library()
        if isinstance(self.lib, str):
            raise RuntimeError(self.lib)
        self.shared = shared
        # The loop's clock timeout and starting tempo are engine.py's internals: read, not recomputed.
        self.settings = _Settings(
            sample_rate=engine.sample_rate,
            max_block=engine.max_block,
            polyphony=engine.polyphony,
            choke=engine.choke,
            steal_fade=engine.steal_fade,
            panic_fade=engine.panic_fade,
            loop_velocity=engine.loop_velocity,
            clock_timeout=engine._clock_timeout,
            ceiling=engine.ceiling,
            master_gain=engine.master_gain,
            release_coef=engine.release_coef,
            frames_per_step=engine._frames_per_step,
            ticks_per_step=engine._ticks_per_step,
            velocity_gain=(_f64 * 128)(*engine.velocity_gain),
        )
        events, midi = shared.events, shared.midi
        self.layout = _Layout(
            stats=ctypes.addressof(shared.stats),
            snares=ctypes.addressof(shared.snares),
            routes=ctypes.addressof(shared.routes),
            events_index=ctypes.addressof(events.index),
            events=events.records.ctypes.data,
            midi_index=ctypes.addressof(midi.index),
            midi=midi.records.ctypes.data,
            ring_records=events.capacity,
            slots=shared.slots.ctypes.data,
            slot_frames=shared.slot_frames,
        )
        self.state = self.lib.lsn_new(ctypes.byref(self.settings), ctypes.byref(self.layout))
        if not self.state:
            raise MemoryError("the C mixer's buffers could not be allocated")

    def cycle(self, out: np.ndarray, midi=()) -> None:
        """One host cycle into `out`, float32 (frames, channels) C-contiguous: the snare swap, the
        event ring, then `midi` ((bytes, frame offset) pairs read in this cycle, as JACK's cycle
        reads them; PortAudio has none), mixing and the safety stage."""
        lib, state = self.lib, self.state
        lib.lsn_begin(state)
        for data, offset in midi:
            lib.lsn_midi(state, data, len(data), offset)
        lib.lsn_mix(state, out.ctypes.data, out.shape[1], out.shape[0])

    def attach_jack(self, client, midi_in, outs) -> None:
        """Make this mixer the JACK-Client `client`'s process callback (before `activate()`)."""
        import jack

        def address(cdata) -> int:
            return int(jack._ffi.cast("uintptr_t", cdata._ptr))

        ports = (_ptr * len(outs))(*(address(port) for port in outs))
        libjack = jack._libname.encode()  # the name JACK-Client loaded libjack by: C takes its functions from that copy
        status = self.lib.lsn_jack_attach(self.state, libjack, address(client), address(midi_in), ports, len(outs))
        if status:
            raise RuntimeError(
                f"the C mixer could not attach to JACK ({'libjack not found' if status == -1 else 'refused'})"
            )

    def close(self) -> None:
        """Free the C state; only once no host can call it any more."""
        if self.state:
            self.lib.lsn_free(self.state)
            self.state = None
