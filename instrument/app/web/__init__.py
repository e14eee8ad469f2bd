"""The web control page served by `latent-snare run` (see server.py)."""
