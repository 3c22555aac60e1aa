"""Batched, on-device augmentation with kornia (train batches only).

Every augmentation is an explicit option with its probability, so a config says exactly what the
model saw. They run on float images in [0, 1] after the uint8 batch reaches the model's device, in a
fixed order: geometric (flip, pad-crop, resized crop) -> photometric (colour jitter) -> degradations
(blur, JPEG). Defaults are off except horizontal flip; `standard()` gives seed 001's "standard
augmentations" (blur, crop and scale, colour jitter).
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.augmentation as K
import torch
from kornia.filters import gaussian_blur2d
from torch import nn

from ..errors import ConfigError


@dataclass
class AugmentConfig:
    """Augmentation options; a probability of 0 disables that step.

    Attributes:
        hflip: probability of a horizontal flip.
        pad_crop: reflect-pad by this many pixels then crop back at a random offset (0 = off).
        resized_crop: probability of a random resized crop (zoom) with `crop_scale` area range.
        crop_scale: min/max fraction of the image area kept by the resized crop.
        color_jitter: probability of brightness/contrast/saturation/hue jitter of `jitter_strength`.
        jitter_strength: (brightness, contrast, saturation, hue) amplitudes.
        blur: probability of a Gaussian blur (3x3 kernel) with sigma in `blur_sigma`.
        blur_sigma: sigma range of the blur.
        jpeg: probability of re-encoding as JPEG with a quality in `jpeg_quality` (differentiable codec).
        jpeg_quality: quality range of the JPEG re-encoding.
        rot90: probability of a rotation by 90, 180 or 270 degrees (SAFE, KDD 2025: keeps every pixel
            and its neighbours, unlike resizing, so generator traces survive).
        patch_mask: probability of masking (zeroing) a share `mask_ratio` of the `mask_patch` x
            `mask_patch` cells of an image (SAFE's random patch masking).
        mask_ratio, mask_patch: see patch_mask.
        real_blur: probability of a Gaussian blur (sigma in `real_blur_sigma`, 5x5) applied to REAL
            training images only. Label-preserving (a defocused photograph is still a photograph), it
            stops a detector from calling every smooth image fake, while fakes keep their traces.
        real_blur_sigma: sigma range of real_blur.
    """

    hflip: float = 0.5
    pad_crop: int = 0
    resized_crop: float = 0.0
    crop_scale: tuple[float, float] = (0.6, 1.0)
    color_jitter: float = 0.0
    jitter_strength: tuple[float, float, float, float] = (0.2, 0.2, 0.2, 0.02)
    blur: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    jpeg: float = 0.0
    jpeg_quality: tuple[float, float] = (50.0, 95.0)
    rot90: float = 0.0
    patch_mask: float = 0.0
    mask_ratio: float = 0.25
    mask_patch: int = 4
    real_blur: float = 0.0
    real_blur_sigma: tuple[float, float] = (0.3, 1.5)

    def __post_init__(self) -> None:
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError("augment.mask_ratio", f"must be in (0, 1), got {self.mask_ratio}")
        if self.mask_patch < 1:
            raise ConfigError("augment.mask_patch", f"must be >= 1, got {self.mask_patch}")
        for name in (
            "hflip",
            "resized_crop",
            "color_jitter",
            "blur",
            "jpeg",
            "rot90",
            "patch_mask",
            "real_blur",
        ):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment.{name} is a probability and must be in [0, 1], got {p}")
        if self.pad_crop < 0:
            raise ConfigError("augment.pad_crop", f"must be >= 0, got {self.pad_crop}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(
                "augment.crop_scale", f"must satisfy 0 < min <= max <= 1, got {self.crop_scale}"
            )
        qlo, qhi = self.jpeg_quality
        if not 1.0 <= qlo <= qhi <= 100.0:
            raise ValueError(
                f"augment.jpeg_quality must satisfy 1 <= min <= max <= 100, got {self.jpeg_quality}"
            )

    @property
    def enabled(self) -> bool:
        return any(
            (
                self.hflip,
                self.pad_crop,
                self.resized_crop,
                self.color_jitter,
                self.blur,
                self.jpeg,
                self.rot90,
                self.patch_mask,
            )
        )


def build_augmentation(cfg: AugmentConfig, size: int = 32) -> nn.Module | None:
    """The kornia pipeline for `cfg`, or None when every step is off."""
    if not cfg.enabled:
        return None

    steps: list[nn.Module] = []
    if cfg.hflip:
        steps.append(K.RandomHorizontalFlip(p=cfg.hflip))
    if cfg.pad_crop:
        steps.append(K.RandomCrop((size, size), padding=cfg.pad_crop, padding_mode="reflect", p=1.0))
    if cfg.rot90:
        steps.append(RandomRot90(cfg.rot90))
    if cfg.resized_crop:
        steps.append(K.RandomResizedCrop((size, size), scale=cfg.crop_scale, p=cfg.resized_crop))
    if cfg.color_jitter:
        b, c, s, h = cfg.jitter_strength
        steps.append(K.ColorJitter(b, c, s, h, p=cfg.color_jitter))
    if cfg.blur:
        steps.append(K.RandomGaussianBlur((3, 3), cfg.blur_sigma, p=cfg.blur))
    if cfg.jpeg:
        steps.append(K.RandomJPEG(jpeg_quality=cfg.jpeg_quality, p=cfg.jpeg))
    if cfg.patch_mask:
        steps.append(RandomPatchMask(cfg.patch_mask, cfg.mask_ratio, cfg.mask_patch))
    return BatchAugment(nn.Sequential(*steps))


@torch.no_grad()
def blur_reals(x: torch.Tensor, label: torch.Tensor, p: float, sigma: tuple[float, float]) -> torch.Tensor:
    """Blur each real image (label 0) with probability p, sigma uniform in `sigma` (see real_blur)."""
    sel = (label.to(x.device) == 0) & (torch.rand(x.shape[0], device=x.device) < p)
    if not sel.any():
        return x
    n = int(sel.sum())
    s = torch.empty(n, device=x.device).uniform_(*sigma)
    out = x.clone()
    with torch.autocast(device_type=x.device.type, enabled=False):
        out[sel] = gaussian_blur2d(x[sel].float(), (5, 5), torch.stack([s, s], 1), border_type="reflect").to(
            x.dtype
        )
    return out


class RandomRot90(nn.Module):
    """Rotate each selected image (probability p) by 90, 180 or 270 degrees; pixels are only moved."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != x.shape[-2]:
            return x
        k = torch.randint(1, 4, (x.shape[0],), device=x.device)
        k = torch.where(torch.rand(x.shape[0], device=x.device) < self.p, k, torch.zeros_like(k))
        out = x.clone()
        for r in (1, 2, 3):
            sel = k == r
            if sel.any():
                out[sel] = torch.rot90(x[sel], r, dims=(-2, -1))
        return out


class RandomPatchMask(nn.Module):
    """Zero a random share `ratio` of the patch x patch cells of each selected image (probability p)."""

    def __init__(self, p: float, ratio: float = 0.25, patch: int = 4) -> None:
        super().__init__()
        self.p, self.ratio, self.patch = p, ratio, patch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        gh, gw = -(-h // self.patch), -(-w // self.patch)
        cells = torch.rand(b, 1, gh, gw, device=x.device) < self.ratio
        cells &= torch.rand(b, 1, 1, 1, device=x.device) < self.p
        mask = cells.repeat_interleave(self.patch, -2).repeat_interleave(self.patch, -1)[..., :h, :w]
        return x.masked_fill(mask, 0.0)


class BatchAugment(nn.Module):
    """Apply a kornia pipeline to a float (B,3,H,W) batch in [0,1], in float32 and without autograd."""

    def __init__(self, pipeline: nn.Module) -> None:
        super().__init__()
        self.pipeline = pipeline

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.pipeline(x.float()).clamp_(0.0, 1.0)
