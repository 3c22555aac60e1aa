"""Importing this module imports every model file, so the registry is complete."""

from . import attention, autoencoder, backbones, bird_lotfi, dualstream, lightweight  # noqa: F401
