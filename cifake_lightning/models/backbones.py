"""Pretrained ImageNet backbones from timm, adapted to 32x32 inputs and one output logit.

Two ways to feed 32x32 images to models built for 224x224:
- ``stem="cifar"``: change the stem so the small image keeps its resolution (ResNet: 3x3 stride-1
  first conv, no max-pool; ViT: 4x4 patches on a 32x32 grid; VGG needs nothing). Pretrained weights
  still load for everything but the replaced layers (timm resamples ViT patch/position embeddings).
- ``stem="upsample"``: bilinearly upsample to the model's native size and keep its stem; closest to how
  the model was pretrained, about 49x the compute.

Pretrained weights come from the Hugging Face hub through timm; offline, asking for them fails at once
with a message that says how to use a local file (``weights_path``).
"""

from __future__ import annotations

import functools
import socket
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_choice
from .attention import vit_attention_rollout
from .registry import register_model

ALIASES = {
    "vit_tiny": "vit_tiny_patch16_224",
    "vit_small": "vit_small_patch16_224",
}


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


class TimmBackbone(nn.Module):
    """A timm model with a 32x32 stem option and a single logit output.

    Args:
        model_name: timm name (resnet18, resnet50, vgg11_bn, vgg16_bn, vit_tiny_patch16_224, ...).
        pretrained: load ImageNet weights (needs the hub or `weights_path`).
        stem: "cifar" (adapt the stem to 32x32) or "upsample" (resize inputs to `native_size`).
        native_size: input size for stem="upsample".
        weights_path: local .safetensors/.pth file of the timm model's pretrained weights (offline use).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        model_name: str = "resnet18",
        pretrained: bool = False,
        stem: str = "cifar",
        native_size: int = 224,
        weights_path: str | None = None,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        import timm  # ~3 s to import, and models/ is on the path of `cifake models` (<= 3 s)

        check_choice("model.backbone.stem", stem, ("cifar", "upsample"))
        name = ALIASES.get(model_name, model_name)
        self.model_name, self.stem, self.native_size = name, stem, native_size
        kwargs: dict = {"num_classes": 1, "drop_rate": drop_rate}
        is_vit = name.startswith(("vit_", "deit_"))
        if stem == "cifar" and is_vit:
            kwargs.update(img_size=32, patch_size=4)
        if pretrained:
            if weights_path:
                if not Path(weights_path).is_file():
                    raise ConfigError("model.backbone.weights_path", f"file not found: {weights_path}")
                kwargs["pretrained_cfg_overlay"] = {"file": str(weights_path)}
            elif not _hub_reachable():
                raise ConfigError(
                    "model.backbone.pretrained",
                    f"pretrained weights for {name} come from the Hugging Face hub, which is not reachable. "
                    "Download them where you have internet (timm.create_model(name, pretrained=True) caches them "
                    "in ~/.cache/huggingface), or set model.backbone.weights_path to a local weights file, "
                    "or set pretrained: false",
                )
        try:
            self.model = timm.create_model(name, pretrained=pretrained, **kwargs)
        except RuntimeError as e:
            if "Unknown model" in str(e):
                raise ConfigError("model.backbone.model_name", f"timm has no model {name!r}") from None
            raise
        if stem == "cifar" and name.startswith(("resnet", "resnext", "seresnet", "wide_resnet")):
            self.model.conv1 = nn.Conv2d(3, self.model.conv1.out_channels, 3, 1, 1, bias=False)
            self.model.maxpool = nn.Identity()
        if stem == "cifar" and name.startswith("vgg"):
            # VGG's 7x7x512 -> 4096 "pre-logits" conv (~120M parameters) expects 224px inputs; at 32px the
            # features are 1x1, so pool them straight into the classifier (as CIFAR VGGs do).
            from timm.layers import ClassifierHead  # timm: see above

            self.model.pre_logits = nn.Identity()
            self.model.head = ClassifierHead(
                self.model.feature_info[-1]["num_chs"], 1, pool_type="avg", drop_rate=drop_rate
            )
        self.is_vit = is_vit
        self.has_attention = is_vit  # attention rollout exists for ViTs only

    @property
    def cam_layer(self) -> nn.Module:
        """Last convolutional stage (ResNet layer4 / VGG features), for Grad-CAM."""
        m = self.model
        if hasattr(m, "layer4"):
            return m.layer4
        if hasattr(m, "features"):
            return m.features
        raise AttributeError(f"{self.model_name} has no convolutional stage for Grad-CAM")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem == "upsample" and x.shape[-1] != self.native_size:
            x = F.interpolate(
                x, size=(self.native_size, self.native_size), mode="bilinear", align_corners=False
            )
        return self.model(x).squeeze(-1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """ViT attention rollout (Abnar & Zuidema 2020) as a (B, H, W) map in [0, 1]."""
        if not self.is_vit:
            raise AttributeError(f"{self.model_name} has no attention to read out")

        return vit_attention_rollout(self, x)


for _name in ("resnet18", "resnet50", "vgg11_bn", "vgg16_bn", "vit_tiny", "vit_small"):
    register_model(_name)(functools.partial(TimmBackbone, model_name=_name))
