"""Models: plain nn.Modules registered by name, and the ImageClassifier that trains any of them."""

from .artifacts import ArtifactResidual
from .attention import AttentionCNN, attention_map, has_attention
from .autoencoder import AutoencoderFilter, AutoencoderModule, ConvAutoencoder
from .backbones import TimmBackbone
from .bird_lotfi import BirdLotfiCNN, paper_topologies, parse_topology, topology_name
from .classifier import ImageClassifier
from .dualstream import DualStreamDetector
from .frequency import FrequencyTransform, dct2, idct2
from .grid import GridClassifier
from .lightweight import LightweightCNN, LightweightCNN_HOC
from .normalize import Normalize
from .registry import create_model, list_models, register_model

__all__ = [
    "ArtifactResidual",
    "AttentionCNN",
    "AutoencoderFilter",
    "AutoencoderModule",
    "ConvAutoencoder",
    "DualStreamDetector",
    "FrequencyTransform",
    "GridClassifier",
    "LightweightCNN",
    "LightweightCNN_HOC",
    "TimmBackbone",
    "attention_map",
    "dct2",
    "has_attention",
    "idct2",
    "BirdLotfiCNN",
    "ImageClassifier",
    "Normalize",
    "create_model",
    "list_models",
    "register_model",
    "paper_topologies",
    "parse_topology",
    "topology_name",
]
