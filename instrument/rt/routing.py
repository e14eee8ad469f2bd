"""The in-cycle MIDI path: what the cycle does with a message it reads in the cycle it arrives in.
The C cycle does the same in mixer.c's `handle_midi`; tests/test_mixer.py compares the two."""

from __future__ import annotations

from ..core.events import CONTINUE, LOOP_TOGGLE, START, STOP, Clock, NoteOff, NoteOn
from .structs import ROUTE_LOOP, ROUTE_MAIN, ROUTE_OMNI, ROUTE_PLAY, NoteRoutes

TRANSPORT_BYTES = {0xFA: START, 0xFB: CONTINUE, 0xFC: STOP}
CLOCK_BYTE = 0xF8


def route_in_cycle(data: bytes, offset: int, routes: NoteRoutes, post) -> bool:
    """Clock, transport and the notes `routes` marks are posted at their frame `offset` in the
    block about to be rendered; returns False for anything else, which belongs to the main
    process's router. Lock-free, reads only `routes`."""
    status = data[0]
    if status >= 0xF8:  # real-time: clock and transport; active sensing and resets are ignored
        if status == CLOCK_BYTE:
            post(Clock(offset))
        elif status in TRANSPORT_BYTES:
            post(TRANSPORT_BYTES[status])
        return True
    if status & 0xE0 != 0x80 or len(data) != 3 or data[1] > 127:
        return False  # not a note (or a malformed one, for the router to refuse)
    route = routes.note[data[1]]
    if route == ROUTE_MAIN:
        return False
    if routes.channel != ROUTE_OMNI and status & 0x0F != routes.channel:
        return True
    velocity = data[2] if status & 0xF0 == 0x90 else 0
    if velocity and route & ROUTE_LOOP:
        post(LOOP_TOGGLE)
    elif route & ROUTE_PLAY:
        post(NoteOn(velocity, offset) if velocity else NoteOff(offset))
    return True
