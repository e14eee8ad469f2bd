"""Shared basics below both processes' packages (`rt`, `host`): the engine events and their ring
records, units and signal helpers, and the snare finishing. Nothing here imports anything above it."""
