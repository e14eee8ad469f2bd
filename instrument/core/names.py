"""Names the instrument shows to other programs."""

CLIENT_NAME = "latent-snare"  # the JACK client name of everything this instrument opens (suffixed per role)
