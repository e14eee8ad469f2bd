"""What runs in the audio process: the shared layout (structs.py, layout.py), the engine
reference (engine.py), the C cycle and its loader (mixer.c, clib.py, cmixer.py), the in-cycle
MIDI routing (routing.py), the cycles for JACK and PortAudio (cycle.py, run.py) and the
process's entry point (child.py). With `audio.separate_process: false` the main process runs
the same cycles. Above `core`; never imports `host` or `app`.

The audio callback contract (every cycle here keeps it, as python-sounddevice asks of its
stream callbacks):

- it only mixes, into buffers that already exist: the snare swap, the event ring, the MIDI read
  in this cycle (JACK), the voices and the safety stage;
- it never allocates an array, does I/O, logs, waits on a lock, or imports anything, and never
  calls torch;
- it never raises: any exception becomes a silent period and a counter (`callback_errors`),
  because one exception escaping a sounddevice callback stops the stream for good, and one
  escaping a JACK callback drops the client;
- it writes into the host's buffers in place (`outdata[:] = ...`), never rebinding them;
- it counts its own lateness (`own_xruns`: a JACK cycle that began in time and finished after
  the period's end, a PortAudio underflow) apart from the machine's (`late_starts`: a JACK cycle
  late because it began late; `skipped_cycles`: one that never reached it).
"""
