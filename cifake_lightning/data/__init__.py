"""Data modules: decode-once uint8 caches feeding device-side batches.

Imports are lazy so that decode worker processes (which import `cifake_lightning.data.image_io`)
start without loading Lightning.
"""

from importlib import import_module

_EXPORTS = {
    "AlignedFakes": ".aligned",
    "AugmentConfig": ".augment",
    "CachedImageDataModule": ".base",
    "CIFAKEDataModule": ".cifake",
    "CombinedTestData": ".ood",
    "ImageFolderOOD": ".ood",
    "InfiMagineFake": ".ood",
    "KaggleRealVsAI": ".ood",
    "PredictFolder": ".ood",
    "TinyImageNetReal": ".ood",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
