"""LightweightCNN and LightweightCNN_HOC (seed 003): small BN CNNs, the second with higher-order convs.

LightweightCNN: [conv3x3(16, pad 1) -> BN -> ReLU -> maxpool2] -> [same with 32] -> FC 64 -> ReLU ->
dropout 0.5 -> FC 1. Reported 94.62% on CIFAKE (val), F1 0.944.
LightweightCNN_HOC replaces each conv with a higher-order block conv(x) + conv'(x * x) (a quadratic
term, Azeglio et al. 2024) before BN and ReLU. Reported 96.85% val accuracy, F1 0.9688.
"""

from __future__ import annotations

from torch import nn

from .registry import register_model


class HOCBlock(nn.Module):
    """conv(x) + conv_q(x*x) -> BN -> ReLU: a linear and a quadratic 3x3 convolution, summed."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.linear = nn.Conv2d(cin, cout, 3, padding=1)
        self.quadratic = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.bn(self.linear(x) + self.quadratic(x * x)))


def _plain_block(cin: int, cout: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LightweightCNN(nn.Module):
    """Seed 003's lightweight CNN; `higher_order=True` gives LightweightCNN_HOC.

    Args:
        filters: filters of the two conv blocks.
        hidden: units of the dense layer.
        dropout: dropout before the output layer.
        higher_order: use HOC blocks (conv(x) + conv(x^2)) instead of plain conv blocks.
        image_size: input side length.
    """

    def __init__(
        self,
        filters: tuple[int, int] = (16, 32),
        hidden: int = 64,
        dropout: float = 0.5,
        higher_order: bool = False,
        image_size: int = 32,
    ) -> None:
        super().__init__()
        block = HOCBlock if higher_order else _plain_block
        f1, f2 = filters
        self.block1 = block(3, f1)
        self.block2 = block(f1, f2)
        self.features = nn.Sequential(self.block1, nn.MaxPool2d(2), self.block2, nn.MaxPool2d(2))
        side = image_size // 4
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(f2 * side * side, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    @property
    def cam_layer(self) -> nn.Module:
        return self.block2

    def forward(self, x):
        return self.head(self.features(x)).squeeze(-1)


class LightweightCNN_HOC(LightweightCNN):  # noqa: N801 - the name the seed uses
    """LightweightCNN with higher-order convolution blocks."""

    def __init__(
        self,
        filters: tuple[int, int] = (16, 32),
        hidden: int = 64,
        dropout: float = 0.5,
        image_size: int = 32,
    ) -> None:
        super().__init__(filters, hidden, dropout, higher_order=True, image_size=image_size)


register_model("lightweight_cnn")(LightweightCNN)
register_model("lightweight_cnn_hoc")(LightweightCNN_HOC)
