"""Input normalisation as the first layer of every classifier.

Keeping it inside the model (not the data module) means checkpoints carry their preprocessing, and
explanations, OOD tests and `cifake predict` all feed plain [0, 1] pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import check_choice

PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]] | None] = {
    "none": None,  # Keras-style: pixels scaled to [0, 1] and nothing else
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),  # [-1, 1]
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # for ImageNet-pretrained backbones
}


class Normalize(nn.Module):
    """(x - mean) / std per channel, with the constants stored as buffers (saved with the model)."""

    def __init__(self, preset: str = "cifar10") -> None:
        super().__init__()
        check_choice("model.normalize", preset, sorted(PRESETS))
        self.preset = preset
        stats = PRESETS[preset]
        mean, std = stats if stats is not None else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preset == "none":
            return x
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return self.preset
