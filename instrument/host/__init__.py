"""What the main process runs around the audio process: the link to it (events and snares into
shared memory), the outputs that start and watch it, the decode worker, and the MIDI router and
ports. Above `rt` (the audio process's package) and `core`; never imported by either."""
