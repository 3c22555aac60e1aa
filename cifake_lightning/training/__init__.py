"""LightningModules that train the plain torch models of `cifake_lightning.models` (as anomalib's
Lightning models wrap their torch models): `ImageClassifier` (any supervised backbone, holding the one
inference path, `models.detector.Detector`), `RealOnlyDetector` (one-class backbones trained on reals),
`GridClassifier` (many topologies in one data pass) and `AutoencoderModule` (the ISITCAP filter)."""

from .autoencoder import AutoencoderModule
from .classifier import ImageClassifier
from .grid import GridClassifier
from .real_only import RealOnlyDetector

__all__ = ["AutoencoderModule", "GridClassifier", "ImageClassifier", "RealOnlyDetector"]
