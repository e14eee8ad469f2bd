"""The rig (tests/jackrig.py) as a child under `pw-jack`, for the PipeWire tests (tests/pipewire.py):
it waits for the instrument's ports, plays notes into it (or, with no MIDI target, only listens),
and prints one JSON line: when the ports answered, and each note's latency in frames (null: not
heard).

    pw-jack python -m tests.pwlisten SOURCE_PREFIX [MIDI_TARGET] [--notes N] [--wait-s S] [--until-heard]
"""

from __future__ import annotations

import argparse
import json
import time

import jack
import numpy as np

from .jackrig import Rig, first_sound


def find_source(prefix: str) -> str | None:
    """The first audio output port whose name starts with `prefix`."""
    client = jack.Client("rig-find", no_start_server=True)
    try:
        ports = client.get_ports(prefix, is_audio=True, is_output=True)
        return ports[0].name if ports else None
    finally:
        client.close()


NOTE_ATTEMPTS = 5


def whole_note(rig) -> np.ndarray:
    """A note and its first 0.25 s, recorded whole: a recording cut by a gap in the recorder's
    cycles (an xrun, or PipeWire's clock going back as its driver changes) is played again."""
    heard = np.zeros(0, np.float32)
    for _ in range(NOTE_ATTEMPTS):
        sent = rig.note()
        heard = rig.audio(sent, rig.rate // 4)
        if heard.size == rig.rate // 4 and rig.xrun_free(sent, heard.size) == heard.size:
            return heard
    return heard


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target", nargs="?", default="")
    parser.add_argument("--notes", type=int, default=3)
    parser.add_argument("--wait-s", type=float, default=20.0)
    parser.add_argument(
        "--until-heard", action="store_true", help="play again until a note is heard (or --wait-s has passed)"
    )
    args = parser.parse_args()
    started = time.monotonic()
    rig = None
    while rig is None:
        try:
            source = find_source(args.source)
            if source is not None:
                rig = Rig(server=None, midi_targets=(args.target,) if args.target else (), audio_sources=(source,))
        except jack.JackError:
            rig = None
        if rig is None:
            if time.monotonic() - started > args.wait_s:
                client = jack.Client("rig-find", no_start_server=True)
                ports = [port.name for port in client.get_ports(is_audio=True, is_output=True)]
                client.close()
                print(json.dumps({"answered_s": None, "latencies": [], "ports": ports}))
                return
            time.sleep(0.05)
    answered_s = time.monotonic() - started
    latencies, peak = [], 0.0
    try:
        if args.target:
            for _ in range(args.notes):
                heard = whole_note(rig)
                # An instrument coming back shows its ports a moment before its cycles play them.
                while args.until_heard and first_sound(heard) is None and time.monotonic() - started < args.wait_s:
                    heard = whole_note(rig)
                latencies.append(first_sound(heard) if heard.size else None)
                peak = max(peak, float(np.max(np.abs(heard), initial=0.0)))
        else:
            start = rig.last_frame
            heard = rig.audio(start, rig.rate * 2)
            latencies.append(first_sound(heard))
            peak = float(np.max(np.abs(heard), initial=0.0))
    finally:
        rig.close()
    print(
        json.dumps(
            {
                "answered_s": answered_s,
                "heard_s": time.monotonic() - started,
                "latencies": latencies,
                "peak": peak,
                "period": rig.period,
                "xruns": rig.xruns,
            }
        )
    )


if __name__ == "__main__":
    main()
