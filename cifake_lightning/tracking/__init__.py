"""Experiment tracking: W&B by default (offline without an API key), CSV always, run provenance."""
