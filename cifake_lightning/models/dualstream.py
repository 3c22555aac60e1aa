"""Dual-stream artifact-aware detector (seed 000): spatial CNN + frequency CNN, fused with CBAM.

    image ──► spatial stream (ResNet-18 pyramid or small dilated CNN) ──► S x 8 x 8 ┐
          └─► FrequencyTransform (DCT/FFT log-magnitude) ──► light CNN ──► F x 8 x 8 ┴► concat
              ──► CBAM (channel + spatial attention, timm) ──► global avg pool ──► MLP ──► logit

Either stream can run alone (``streams="spatial"`` or ``"frequency"``) for ablations; the CBAM spatial
gate is exposed as an attention map. The spatial stream sees the normalised image; the frequency
stream transforms it too (DCT is linear, so normalisation only shifts and scales the spectrum).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import check_choice
from .attention import SpatialAttentionProbe
from .frequency import FrequencyTransform
from .registry import register_model


def _conv_bn(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


#: the frequency stream's transform: FrequencyTransform's (kind, block)
FREQUENCY = {"dct": ("dct", 0), "dct8": ("dct", 8), "fft": ("fft", 0)}


class DilatedMultiScale(nn.Module):
    """Parallel 3x3 convs with dilation 1, 2 and 4 (receptive fields 3, 5, 9), concatenated."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        per = cout // 3
        self.branches = nn.ModuleList([_conv_bn(cin, per, d) for d in (1, 2, 4)])
        self.fuse = _conv_bn(3 * per, cout)

    def forward(self, x):
        return self.fuse(torch.cat([b(x) for b in self.branches], 1))


class SmallSpatialStream(nn.Module):
    """32x32 -> (width*2) x 8 x 8 with a dilated multi-scale block at each resolution."""

    def __init__(self, width: int = 48) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _conv_bn(3, width),
            DilatedMultiScale(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            DilatedMultiScale(2 * width, 2 * width),
            nn.MaxPool2d(2),
        )
        self.out_channels = 2 * width

    def forward(self, x):
        return self.net(x)


class ResNetPyramidStream(nn.Module):
    """ResNet-18 (CIFAR stem, timm features_only) stages 1-3 pooled to 8x8 and merged: a feature pyramid."""

    def __init__(
        self, model_name: str = "resnet18", pretrained: bool = False, out_channels: int = 256
    ) -> None:
        super().__init__()
        import timm  # ~3 s to import, and models/ is on the path of `cifake models` (<= 3 s)

        self.body = timm.create_model(
            model_name, pretrained=pretrained, features_only=True, out_indices=(1, 2, 3)
        )
        self.body.conv1 = nn.Conv2d(3, self.body.conv1.out_channels, 3, 1, 1, bias=False)
        self.body.maxpool = nn.Identity()
        chans = self.body.feature_info.channels()
        self.merge = nn.Sequential(
            nn.Conv2d(sum(chans), out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels

    def forward(self, x):
        feats = self.body(x)
        size = (int(feats[-1].shape[-2]), int(feats[-1].shape[-1]))  # constant when traced (ONNX export)
        return self.merge(torch.cat([F.adaptive_avg_pool2d(f, size) for f in feats], 1))


class FrequencyStream(nn.Module):
    """Spectrum (C x 32 x 32) -> BN (spectra have their own scale) -> light CNN -> 2*width x 8 x 8."""

    def __init__(self, transform: FrequencyTransform, width: int = 32) -> None:
        super().__init__()
        self.transform = transform
        c = transform.channels
        self.net = nn.Sequential(
            nn.BatchNorm2d(c),
            _conv_bn(c, width),
            _conv_bn(width, width),
            nn.MaxPool2d(2),
            _conv_bn(width, 2 * width),
            nn.MaxPool2d(2),
        )
        self.out_channels = 2 * width

    def forward(self, x):
        return self.net(self.transform(x))


class DualStreamDetector(nn.Module):
    """Spatial + frequency streams fused by CBAM; one logit out.

    Args:
        spatial: "resnet18" (timm ResNet-18 pyramid, CIFAR stem) or "small" (dilated multi-scale CNN).
        pretrained: ImageNet weights for the ResNet stream (needs the hub).
        streams: "both", "spatial" or "frequency" (ablations).
        frequency: the frequency stream's transform, one choice so that no invalid pair can be asked for:
            "dct" (one global DCT-II), "dct8" (JPEG-style 8x8 block DCT) or "fft" (centred FFT magnitude).
        frequency_colour: "luma" or "rgb".
        frequency_width: base width of the frequency CNN.
        spatial_width: base width of the small spatial CNN.
        fusion: "cbam" (channel + spatial attention on the concatenation) or "concat" (no attention).
        hidden: units of the head's hidden layer.
        dropout: dropout in the head.
    """

    def __init__(
        self,
        spatial: Literal["resnet18", "resnet34", "small"] = "resnet18",
        pretrained: bool = False,
        streams: Literal["both", "spatial", "frequency"] = "both",
        frequency: Literal["dct", "dct8", "fft"] = "dct",
        frequency_colour: Literal["luma", "rgb"] = "luma",
        frequency_width: int = 32,
        spatial_width: int = 48,
        fusion: Literal["cbam", "concat"] = "cbam",
        hidden: int = 128,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        from timm.layers.cbam import CbamModule  # timm: see above

        check_choice("model.backbone.streams", streams, ("both", "spatial", "frequency"))
        check_choice("model.backbone.spatial", spatial, ("resnet18", "resnet34", "small"))
        check_choice("model.backbone.fusion", fusion, ("cbam", "concat"))
        check_choice("model.backbone.frequency", frequency, FREQUENCY)
        self.streams = streams
        channels = 0
        self.spatial = None
        self.frequency = None
        if streams in ("both", "spatial"):
            self.spatial = (
                SmallSpatialStream(spatial_width)
                if spatial == "small"
                else ResNetPyramidStream(spatial, pretrained)
            )
            channels += self.spatial.out_channels
        if streams in ("both", "frequency"):
            kind, block = FREQUENCY[frequency]
            transform = FrequencyTransform(kind=kind, block=block, colour=frequency_colour)
            self.frequency = FrequencyStream(transform, frequency_width)
            channels += self.frequency.out_channels
        self.cbam = CbamModule(channels) if fusion == "cbam" else None
        self.has_attention = self.cbam is not None  # concat fusion has no attention map to read out
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, 1),
        )

    def fused_features(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.spatial is not None:
            parts.append(self.spatial(x))
        if self.frequency is not None:
            f = self.frequency(x)
            if parts and f.shape[-2:] != parts[0].shape[-2:]:
                f = F.adaptive_avg_pool2d(f, parts[0].shape[-2:])
            parts.append(f)
        z = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        return self.cbam(z) if self.cbam is not None else z

    def forward(self, x):
        return self.head(self.fused_features(x)).squeeze(-1)

    @property
    def cam_layer(self) -> nn.Module:
        return self.cbam if self.cbam is not None else (self.spatial or self.frequency)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """The CBAM spatial gate (B, 1, 8, 8) on the fused features."""
        if self.cbam is None:
            raise AttributeError("fusion='concat' has no attention map")
        with SpatialAttentionProbe(self.cbam) as probe:
            self(x)
        return probe.value


register_model("dualstream")(DualStreamDetector)
register_model("dualstream_small")(functools.partial(DualStreamDetector, spatial="small"))
