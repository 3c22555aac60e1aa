"""Models: plain nn.Modules registered by name, and the ImageClassifier that trains any of them.

Imports are lazy (PEP 562), so that importing one backbone, or `cifake models`, does not import
Lightning: `from cifake_lightning.models import BirdLotfiCNN` loads only bird_lotfi.py.
"""

from importlib import import_module

_EXPORTS = {
    "ArtifactResidual": ".artifacts",
    "AttentionCNN": ".attention",
    "attention_map": ".attention",
    "has_attention": ".attention",
    "AutoencoderFilter": ".autoencoder",
    "AutoencoderModule": ".autoencoder",
    "ConvAutoencoder": ".autoencoder",
    "TimmBackbone": ".backbones",
    "BirdLotfiCNN": ".bird_lotfi",
    "paper_topologies": ".bird_lotfi",
    "parse_topology": ".bird_lotfi",
    "topology_name": ".bird_lotfi",
    "ImageClassifier": ".classifier",
    "CodingCostDetector": ".coding",
    "CodingCostModel": ".coding",
    "DualStreamDetector": ".dualstream",
    "FrequencyTransform": ".frequency",
    "dct2": ".frequency",
    "idct2": ".frequency",
    "GridClassifier": ".grid",
    "LightweightCNN": ".lightweight",
    "LightweightCNN_HOC": ".lightweight",
    "Normalize": ".normalize",
    "RealOnlyDetector": ".real_only",
    "create_model": ".registry",
    "list_models": ".registry",
    "register_model": ".registry",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
