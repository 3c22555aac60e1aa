"""LightningModules that train the plain torch models of `cifake_lightning.models` (as anomalib's
Lightning models wrap their torch models): `ImageClassifier` (any supervised backbone, holding the one
inference path, `models.detector.Detector`), `RealOnlyDetector` (one-class backbones trained on reals), `FusionDetector` (trained detectors'
scores fused on validation data),
`GridClassifier` (many topologies in one data pass) and `AutoencoderModule` (the ISITCAP filter)."""

from .autoencoder import AutoencoderModule
from .classifier import ImageClassifier
from .fusion import FusionDetector
from .grid import GridClassifier
from .real_only import RealOnlyDetector

__all__ = ["AutoencoderModule", "FusionDetector", "GridClassifier", "ImageClassifier", "RealOnlyDetector"]
