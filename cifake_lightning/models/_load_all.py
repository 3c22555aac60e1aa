"""Importing this module imports every model file, so the registry is complete."""

from . import attention, autoencoder, backbones, bird_lotfi, coding, dualstream, lightweight  # noqa: F401
