"""The C cycle (mixer.c) from Python: `CMixer` runs an engine's settings on the shared layout.

The constants come from one `EngineSettings` value (rt/engine.py `engine_settings`), the same
one Engine takes, so the two cannot disagree on them. Where the library was not built, or
cannot attach to JACK, the audio process runs engine.py's cycle instead (rt/cycle.py).
"""

from __future__ import annotations

import ctypes

import numpy as np

from .clib import load
from .layout import SharedAudio
from .structs import EngineSettings, Layout

_ptr = ctypes.c_void_p


def _pointer(address: int, ctype):
    return ctypes.cast(ctypes.c_void_p(address), ctypes.POINTER(ctype))


class CMixer:
    """One C cycle on `shared`, with `settings`; it owns its C state."""

    def __init__(self, settings: EngineSettings, shared: SharedAudio):
        self.lib = load()
        if isinstance(self.lib, str):
            raise RuntimeError(self.lib)
        self.shared = shared
        self.settings = EngineSettings.from_buffer_copy(settings)
        events, midi = shared.events, shared.midi
        self.layout = Layout(
            stats=ctypes.pointer(shared.stats),
            snares=ctypes.pointer(shared.snares),
            routes=ctypes.pointer(shared.routes),
            events_index=ctypes.pointer(events.index),
            events=_pointer(events.records.ctypes.data, ctypes.c_double),
            midi_index=ctypes.pointer(midi.index),
            midi=_pointer(midi.records.ctypes.data, ctypes.c_double),
            ring_records=events.capacity,
            slots=_pointer(shared.slots.ctypes.data, ctypes.c_float),
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

    def attach_jack(self, client: int, midi_in: int, outs: list[int], libjack: str) -> None:
        """Make this mixer the JACK client's process callback (before it is activated). The
        arguments are the addresses of the client and its ports (rt/jack.py), and the name
        libjack was loaded by: C takes its functions from that copy."""
        ports = (_ptr * len(outs))(*outs)
        status = self.lib.lsn_jack_attach(self.state, libjack.encode(), client, midi_in, ports, len(outs))
        if status:
            raise RuntimeError(
                f"the C mixer could not attach to JACK ({'libjack not found' if status == -1 else 'refused'})"
            )

    def close(self) -> None:
        """Free the C state; only once no host can call it any more."""
        if self.state:
            self.lib.lsn_free(self.state)
            self.state = None
