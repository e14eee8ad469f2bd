"""Latent Snare: a neural snare instrument played from a 2-D latent plane."""
