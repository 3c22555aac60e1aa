"""Attention heat maps behind one interface (seed 002): ViT attention rollout and CBAM spatial maps.

`attention_map(classifier, x)` returns a (B, H, W) map in [0, 1] at input resolution for any
classifier whose backbone defines ``attention_map(normalised_x)``; the explainability package uses
it to compare attention with Grad-CAM and Integrated Gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


def has_attention(classifier: nn.Module) -> bool:
    """Whether the backbone can produce an attention map. A backbone says so itself (`has_attention`);
    having an `attention_map` method is not enough (a dual-stream model fused by concatenation has the
    method but no attention to read out)."""
    bb = getattr(classifier, "backbone", classifier)
    bb = getattr(bb, "_orig_mod", bb)
    declared = getattr(bb, "has_attention", None)
    if declared is not None:
        return bool(declared)
    return hasattr(bb, "attention_map")


@torch.no_grad()
def attention_map(classifier: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) images in [0, 1] -> (B, H, W) attention in [0, 1] (each map min-max scaled)."""
    bb = getattr(classifier, "backbone", classifier)
    norm = getattr(classifier, "normalize", None)
    xn = norm(x) if norm is not None else x
    m = bb.attention_map(xn).float()
    if m.dim() == 4:
        m = m[:, 0]
    m = F.interpolate(m[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    lo = m.flatten(1).min(1).values[:, None, None]
    hi = m.flatten(1).max(1).values[:, None, None]
    return (m - lo) / (hi - lo).clamp_min(1e-12)


def vit_attention_rollout(backbone: nn.Module, x: torch.Tensor, discard_ratio: float = 0.0) -> torch.Tensor:
    """Attention rollout over all blocks of a timm ViT: (B, gh, gw) relevance of patches to the CLS token."""
    vit = backbone.model
    mats: list[torch.Tensor] = []

    def hook(mod, inputs, _out):
        (t,) = inputs[:1]
        b, n, c = t.shape
        qkv = mod.qkv(t).reshape(b, n, 3, mod.num_heads, c // mod.num_heads).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        q, k = mod.q_norm(q), mod.k_norm(k)
        attn = (q * mod.scale) @ k.transpose(-2, -1)
        mats.append(attn.softmax(-1).mean(1))

    handles = [blk.attn.register_forward_hook(hook) for blk in vit.blocks]
    try:
        vit(x)
    finally:
        for h in handles:
            h.remove()
    n = mats[0].shape[-1]
    eye = torch.eye(n, device=x.device)
    rollout = eye.expand_as(mats[0]).clone()
    for a in mats:
        if discard_ratio > 0:
            flat = a.flatten(1)
            k = int(flat.shape[1] * discard_ratio)
            idx = flat.topk(k, dim=1, largest=False).indices
            flat.scatter_(1, idx, 0)
            a = flat.view_as(a)
        a = (a + eye) / 2
        a = a / a.sum(-1, keepdim=True)
        rollout = a @ rollout
    prefix = getattr(vit, "num_prefix_tokens", 1)
    cls_to_patches = rollout[:, 0, prefix:]
    g = int(round(cls_to_patches.shape[-1] ** 0.5))
    return cls_to_patches.reshape(-1, g, g)


class SpatialAttentionProbe:
    """Captures the spatial gate (B, 1, h, w) of a timm CBAM module during a forward pass."""

    def __init__(self, cbam: nn.Module) -> None:
        self.cbam = cbam
        self.value: torch.Tensor | None = None

    def __enter__(self):
        self.handle = self.cbam.spatial.gate.register_forward_hook(lambda m, i, o: setattr(self, "value", o))
        return self

    def __exit__(self, *exc):
        self.handle.remove()
        return False


class AttentionCNN(nn.Module):
    """A small CNN with a CBAM block whose spatial attention is read out as the heat map (seed 002).

    Three [conv3x3 -> BN -> ReLU] x2 stages (32, 64, 128 filters; pooling between), CBAM on the 8x8
    feature map, global average pool, dropout, one logit. About 0.3M parameters: trains on a CPU.
    """

    def __init__(self, widths: tuple[int, int, int] = (32, 64, 128), dropout: float = 0.2) -> None:
        super().__init__()
        from timm.layers.cbam import CbamModule  # ~3 s to import; models/ is on `cifake models`' path

        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            layers += [
                nn.Conv2d(cin, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            cin = w
        self.features = nn.Sequential(*layers)
        self.cbam = CbamModule(cin)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(cin, 1)
        )

    @property
    def cam_layer(self) -> nn.Module:
        return self.cbam

    def forward(self, x):
        return self.head(self.cbam(self.features(x))).squeeze(-1)

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        with SpatialAttentionProbe(self.cbam) as probe:
            self(x)
        return probe.value


register_model("attention_cnn")(AttentionCNN)
