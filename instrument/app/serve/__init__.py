"""`latent-snare serve`: the instrument as a stateless web application for many visitors at once.

Each browser tab is its own instrument: its point, model, loop, velocity and kept snares live in
the page and its URL, never on the server. The server renders snares (numpy, exactly as
`latent-snare render`), encodes dropped samples, and builds sample packs; gunicorn runs N
worker processes of it. Nothing here imports JACK, sounddevice or MIDI.

    params.py    query parameters -> validated values, or a one-line reason (400)
    snares.py    one worker's models, renders as WAV bytes (LRU), ETags
    guard.py     security headers, the per-client encode limit (Host/Origin: app/http.py)
    app.py       the aiohttp application: the page, the HTTP API
    gunicorn.py  `serve --workers N` under gunicorn's arbiter with aiohttp's worker
"""
