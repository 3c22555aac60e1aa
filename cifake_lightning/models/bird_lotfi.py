"""Bird & Lotfi's CNN family (CIFAKE, IEEE Access 2024) and the paper's 36 topologies.

Each topology is 1-3 blocks of [3x3 conv ("valid" padding, as Keras' default) -> ReLU -> 2x2 max-pool]
with 16/32/64/128 filters, then 0-3 dense layers of 32..4096 ReLU units and one output logit (the
sigmoid is applied only to report probabilities). Names: ``conv{filters}x{layers}`` for a feature
extractor with no dense layer, ``conv{filters}x{layers}-dense{units}x{layers}`` with a dense head.

The paper's 36 topologies are its 12 feature extractors (filters x conv layers) and 24 dense heads
(units x dense layers) trained on the best extractor, which its table gives as two layers of 128
filters (92.98% accuracy). The model most reproductions use (seed 003) is conv32x2-dense64x1.

`init="keras"` reproduces Keras' defaults (Glorot-uniform weights, zero biases) for the framework
comparison in docs/framework_differences.md; `init="torch"` keeps PyTorch's defaults.
"""

from __future__ import annotations

import functools
import re

from torch import nn

from ..errors import check_choice
from .registry import register_model, register_name_parser

FILTERS = (16, 32, 64, 128)
CONV_LAYERS = (1, 2, 3)
DENSE_UNITS = (32, 64, 128, 256, 512, 1024, 2048, 4096)
DENSE_LAYERS = (1, 2, 3)
BEST_EXTRACTOR = (128, 2)

_NAME = re.compile(r"^conv(\d+)x(\d+)(?:-dense(\d+)x(\d+))?$")


def topology_name(filters: int, conv_layers: int, dense_units: int = 0, dense_layers: int = 0) -> str:
    base = f"conv{filters}x{conv_layers}"
    return f"{base}-dense{dense_units}x{dense_layers}" if dense_layers else base


def parse_topology(name: str) -> dict:
    """'conv128x2-dense64x1' -> dict(filters=128, conv_layers=2, dense_units=64, dense_layers=1)."""
    m = _NAME.match(name)
    if m is None:
        raise ValueError(
            f"not a Bird & Lotfi topology name: {name!r} (expected e.g. conv32x2 or conv128x2-dense64x1)"
        )
    f, c, u, d = m.groups()
    return {"filters": int(f), "conv_layers": int(c), "dense_units": int(u or 0), "dense_layers": int(d or 0)}


def paper_topologies() -> list[str]:
    """The paper's 36 topologies: 12 extractors, then 24 dense heads on the best extractor."""
    extractors = [topology_name(f, c) for f in FILTERS for c in CONV_LAYERS]
    f, c = BEST_EXTRACTOR
    heads = [topology_name(f, c, u, d) for u in DENSE_UNITS for d in DENSE_LAYERS]
    return extractors + heads


def _conv_out(size: int, layers: int) -> int:
    for _ in range(layers):
        size = (size - 2) // 2
    return size


class BirdLotfiCNN(nn.Module):
    """One topology of the paper's family; input (B, 3, S, S) normalised images, output (B,) logits.

    Args:
        filters: filters in every conv layer.
        conv_layers: number of conv -> ReLU -> max-pool blocks (1-3 for 32x32 inputs).
        dense_units: units of each dense layer (ignored when dense_layers is 0).
        dense_layers: number of dense ReLU layers before the output logit.
        topology: a name such as ``conv128x2-dense64x1``; overrides the four numbers above.
        init: "torch" (PyTorch defaults) or "keras" (Glorot-uniform weights, zero biases).
        image_size: input side length.
    """

    def __init__(
        self,
        filters: int = 32,
        conv_layers: int = 2,
        dense_units: int = 64,
        dense_layers: int = 1,
        topology: str | None = None,
        init: str = "torch",
        image_size: int = 32,
    ) -> None:
        super().__init__()
        if topology is not None:
            p = parse_topology(topology)
            filters, conv_layers, dense_units, dense_layers = (
                p["filters"],
                p["conv_layers"],
                p["dense_units"],
                p["dense_layers"],
            )
        if filters < 1 or conv_layers < 1 or dense_layers < 0 or (dense_layers and dense_units < 1):
            raise ValueError(
                f"invalid topology: filters={filters}, conv_layers={conv_layers}, "
                f"dense_units={dense_units}, dense_layers={dense_layers}"
            )
        side = _conv_out(image_size, conv_layers)
        if side < 1:
            raise ValueError(f"{conv_layers} conv layers shrink a {image_size}px image to nothing")
        check_choice("model.backbone.init", init, ("torch", "keras"))
        self.name = topology_name(filters, conv_layers, dense_units if dense_layers else 0, dense_layers)
        blocks: list[nn.Module] = []
        cin = 3
        for _ in range(conv_layers):
            blocks += [nn.Conv2d(cin, filters, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            cin = filters
        self.features = nn.Sequential(*blocks)
        head: list[nn.Module] = [nn.Flatten()]
        width = filters * side * side
        for _ in range(dense_layers):
            head += [nn.Linear(width, dense_units), nn.ReLU(inplace=True)]
            width = dense_units
        head.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*head)
        if init == "keras":
            self.apply(_keras_init)

    @property
    def cam_layer(self) -> nn.Module:
        """Last conv layer, where Grad-CAM reads its maps as in the paper (its ReLU is in-place, so not hookable)."""
        return self.features[-3]

    def forward(self, x):
        return self.head(self.features(x)).squeeze(-1)


def _keras_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


register_model("bird_lotfi")(BirdLotfiCNN)


def _parse(name: str):
    if _NAME.match(name) is None:
        return None
    return functools.partial(BirdLotfiCNN, topology=name)


register_name_parser(_parse)
for _name in paper_topologies():
    register_model(_name)(functools.partial(BirdLotfiCNN, topology=_name))
