"""Batched, on-device augmentation with kornia (train batches only).

Every augmentation is an explicit option with its probability, so a config says exactly what the
model saw. They run on float images in [0, 1] after the uint8 batch reaches the model's device, in a
fixed order: geometric (flip, pad-crop, resized crop) -> photometric (colour jitter) -> degradations
(blur, JPEG). Defaults are off except horizontal flip; `standard()` gives seed 001's "standard
augmentations" (blur, crop and scale, colour jitter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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

    def __post_init__(self) -> None:
        for name in ("hflip", "resized_crop", "color_jitter", "blur", "jpeg"):
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
        return any((self.hflip, self.pad_crop, self.resized_crop, self.color_jitter, self.blur, self.jpeg))

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(hflip=0.0)

    @classmethod
    def standard(cls) -> AugmentConfig:
        """Seed 001's standard augmentations: random blur, crop and scale, colour jitter."""
        return cls(hflip=0.5, resized_crop=0.5, color_jitter=0.5, blur=0.3)


def build_augmentation(cfg: AugmentConfig, size: int = 32) -> nn.Module | None:
    """The kornia pipeline for `cfg`, or None when every step is off."""
    if not cfg.enabled:
        return None
    import kornia.augmentation as K

    steps: list[nn.Module] = []
    if cfg.hflip:
        steps.append(K.RandomHorizontalFlip(p=cfg.hflip))
    if cfg.pad_crop:
        steps.append(K.RandomCrop((size, size), padding=cfg.pad_crop, padding_mode="reflect", p=1.0))
    if cfg.resized_crop:
        steps.append(K.RandomResizedCrop((size, size), scale=cfg.crop_scale, p=cfg.resized_crop))
    if cfg.color_jitter:
        b, c, s, h = cfg.jitter_strength
        steps.append(K.ColorJitter(b, c, s, h, p=cfg.color_jitter))
    if cfg.blur:
        steps.append(K.RandomGaussianBlur((3, 3), cfg.blur_sigma, p=cfg.blur))
    if cfg.jpeg:
        steps.append(K.RandomJPEG(jpeg_quality=cfg.jpeg_quality, p=cfg.jpeg))
    return BatchAugment(nn.Sequential(*steps))


class BatchAugment(nn.Module):
    """Apply a kornia pipeline to a float (B,3,H,W) batch in [0,1], in float32 and without autograd."""

    def __init__(self, pipeline: nn.Module) -> None:
        super().__init__()
        self.pipeline = pipeline

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.pipeline(x.float()).clamp_(0.0, 1.0)
