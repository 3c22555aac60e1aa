"""Models: plain torch nn.Modules, registered by name (`create_model`, `list_models`), and the
`Detector` that is the one inference path. Nothing here imports Lightning; the LightningModules that
train these models live in `cifake_lightning.training`."""

from .artifacts import ArtifactResidual
from .attention import AttentionCNN, attention_map, has_attention
from .autoencoder import AutoencoderFilter, ConvAutoencoder
from .backbones import TimmBackbone
from .bird_lotfi import BirdLotfiCNN, paper_topologies, parse_topology, topology_name
from .coding import CodingCostDetector, CodingCostModel
from .content import ContentEnergyDetector
from .detector import Detector
from .dualstream import DualStreamDetector
from .frequency import FrequencyTransform, dct2, idct2
from .fusion import ScoreFusion
from .lightweight import LightweightCNN, LightweightCNN_HOC
from .normalize import Normalize
from .registry import create_model, list_models, register_model
from .self_description import SelfDescriptionDetector

__all__ = [
    "ArtifactResidual",
    "AttentionCNN",
    "AutoencoderFilter",
    "BirdLotfiCNN",
    "CodingCostDetector",
    "CodingCostModel",
    "ContentEnergyDetector",
    "ConvAutoencoder",
    "Detector",
    "DualStreamDetector",
    "FrequencyTransform",
    "LightweightCNN",
    "LightweightCNN_HOC",
    "Normalize",
    "ScoreFusion",
    "SelfDescriptionDetector",
    "TimmBackbone",
    "attention_map",
    "create_model",
    "dct2",
    "has_attention",
    "idct2",
    "list_models",
    "paper_topologies",
    "parse_topology",
    "register_model",
    "topology_name",
]
