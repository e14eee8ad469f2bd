"""Launch to ready: from `latent-snare run` starting to its ready line, and to the first note it plays.

    .venv/bin/python -m bench.launch [--runs 5] [--backends jack portaudio]

A private JACK dummy server (128 frames, 48 kHz) runs first, with one bench client: a
MIDI output and an audio input. The clock starts just before the service's process is
created. As soon as the instrument's MIDI input and output exist, the bench connects to
them and sends a note every period until the recorded output carries sound: "first
note" is the wall time when the bench's own process callback saw it. The page and
everything else start as usual (`--web-port 0`). Target: first note at most 1.0 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tests.jackrig import start_jackd, stop_process

from .jackbench import machine

SERVER = "latent-snare-launch"
MIDI_IN = "latent-snare:Latent Snare"  # the JACK backend's input, or rtmidi's virtual port on JACK (PortAudio)
AUDIO_OUT = {"jack": "latent-snare:out_0", "portaudio": "latent-snare-audio:out_0"}
TIMEOUT_S = 30.0
SOUND_THRESHOLD = 1e-4


class Listener:
    """One JACK client: sends a note-on each period while `sending`, notes when sound first arrives."""

    def __init__(self):
        import jack

        self.client = jack.Client("launch-bench", servername=SERVER, no_start_server=True)
        self.midi_out = self.client.midi_outports.register("out")
        self.audio_in = self.client.inports.register("in")
        self.sending = False
        self.heard_at: float | None = None
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.midi_out.clear_buffer()
        if self.sending and self.heard_at is None:
            self.midi_out.write_midi_event(0, (0x99, 38, 127))
            if np.max(np.abs(self.audio_in.get_array())) > SOUND_THRESHOLD:
                self.heard_at = time.monotonic()

    def connect(self, audio_source: str) -> bool:
        """Connect to the instrument once both its ports can be connected (they exist and their client
        is active); False while they cannot."""
        import jack

        try:
            if not self.client.get_all_connections(self.midi_out):
                self.client.connect(self.midi_out, MIDI_IN)
            self.client.connect(audio_source, self.audio_in)
            return True
        except jack.JackError:
            return False

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def launch_once(backend: str, config: Path) -> tuple[float, float]:
    """(seconds to the ready line, seconds to the first note heard) for one start of the service."""
    listener = Listener()
    env = dict(os.environ, JACK_DEFAULT_SERVER=SERVER, PYTHONUNBUFFERED="1")
    ready_at: list[float] = []
    started_at = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "instrument.app.cli",
            "run",
            "--config",
            str(config),
            "--audio-backend",
            backend,
            "--midi-api",
            "jack",
            "--audio-device",
            "JACK",
            "--no-status",
            "--web-port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )

    def read_ready():
        for line in proc.stdout:
            if "ready:" in line and not ready_at:
                ready_at.append(time.monotonic())

    threading.Thread(target=read_ready, daemon=True).start()
    try:
        deadline = started_at + TIMEOUT_S
        while not listener.connect(AUDIO_OUT[backend]):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{backend}: the instrument's ports did not appear")
            time.sleep(0.002)
        listener.sending = True
        while listener.heard_at is None or not ready_at:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"{backend}: no ready line or no sound within {TIMEOUT_S:.0f} s")
            time.sleep(0.002)
        return ready_at[0] - started_at, listener.heard_at - started_at
    finally:
        listener.close()
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backends", nargs="+", choices=("jack", "portaudio"), default=["jack", "portaudio"])
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="latent-snare-launch-"))
    os.environ["LATENT_SNARE_ARTIFACTS"] = str(workdir)
    config = workdir / "launch.yaml"
    config.write_text(f"midi:\n  inputs: []\nsave:\n  folder: {workdir / 'saved'}\n  drop_folder: ''\n")
    jackd = start_jackd(name=SERVER)
    try:
        launch_once(args.backends[0], config)  # once unmeasured: the file cache warm, as on a second start
        print(f"launch: {args.runs} starts per backend, after one unmeasured start ({machine()})\n")
        print("| backend | to ready line, median s | max s | to first note heard, median s | max s |")
        print("|---|---:|---:|---:|---:|")
        for backend in args.backends:
            times = np.array([launch_once(backend, config) for _ in range(args.runs)])
            print(
                f"| {backend} | {np.median(times[:, 0]):.2f} | {times[:, 0].max():.2f} | {np.median(times[:, 1]):.2f} | {times[:, 1].max():.2f} |",
                flush=True,
            )
    finally:
        stop_process(jackd)


if __name__ == "__main__":
    main()
