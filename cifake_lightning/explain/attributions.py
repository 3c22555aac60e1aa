"""Pixel attributions for a binary real/fake classifier, one function per method (captum underneath).

All maps are computed in float32 with autocast off (bf16 gradients are too coarse for IG's completeness
check), on the classifier in eval mode, towards the *predicted* class by default: for an image judged
fake the map shows evidence for "fake", for one judged real evidence for "real" (the sign of the logit
is flipped), as Grad-CAM in the paper does. Inputs are (B, 3, H, W) images in [0, 1]; every method
returns a (B, H, W) map (channels summed) so methods can be compared pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion
from kornia.filters import gaussian_blur2d
from torch import nn

from ..errors import ConfigError
from ..models.attention import attention_map, has_attention
from ..models.calibration import calibrated_prob
from .bands import BandAblation

METHODS = ("integrated_gradients", "occlusion", "grad_cam", "attention", "band_ablation")


class SignedLogit(nn.Module):
    """classifier(x) * sign: the logit of the class each image's attribution should explain."""

    def __init__(self, classifier: nn.Module, sign: torch.Tensor | None = None) -> None:
        super().__init__()
        self.classifier = classifier
        self.sign = sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.classifier(x).float()
        if self.sign is None:
            return out
        n = out.shape[0]
        s = self.sign.to(out.device)
        return out * (s.repeat(n // s.shape[0]) if n != s.shape[0] else s)


def target_sign(classifier: nn.Module, x: torch.Tensor, target: str = "predicted") -> torch.Tensor:
    """+1 where the map should explain "fake", -1 for "real"."""
    if target == "fake":
        return torch.ones(x.shape[0], device=x.device)
    if target == "real":
        return -torch.ones(x.shape[0], device=x.device)
    if target != "predicted":
        raise ConfigError("explain.target", f"must be predicted, fake or real, got {target!r}")
    with torch.no_grad():
        return torch.where(classifier(x).float() >= 0, 1.0, -1.0)


def make_baseline(x: torch.Tensor, kind: str = "black") -> torch.Tensor:
    """IG baseline: black (zeros), blur (heavily blurred image), mean (per-image mean colour), uniform noise."""
    if kind == "black":
        return torch.zeros_like(x)
    if kind == "mean":
        return x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    if kind == "blur":
        return gaussian_blur2d(x, (15, 15), (5.0, 5.0))
    if kind == "noise":
        g = torch.Generator(device="cpu").manual_seed(0)
        return torch.rand(x.shape, generator=g).to(x.device)
    raise ConfigError("explain.ig_baseline", f"must be black, blur, mean or noise, got {kind!r}")


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    baseline: str = "black",
    steps: int = 32,
    internal_batch_size: int | None = None,
    noise_samples: int = 0,
    noise_std: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated Gradients; returns (attributions (B,3,H,W), convergence delta (B,)).

    noise_samples > 0 averages IG over that many noisy copies of the input (SmoothGrad on IG, captum's
    NoiseTunnel), which de-speckles maps at the cost of that many IG runs; the noise uses the global RNG.
    """
    ig = IntegratedGradients(model)
    kwargs = dict(
        baselines=make_baseline(x, baseline),
        n_steps=steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    if noise_samples:
        attr, delta = NoiseTunnel(ig).attribute(
            x, nt_type="smoothgrad", nt_samples=noise_samples, stdevs=noise_std, **kwargs
        )
        delta = delta.view(noise_samples, -1).mean(0) if delta.numel() != x.shape[0] else delta
        return attr, delta
    return ig.attribute(x, **kwargs)


def occlusion(
    model: nn.Module, x: torch.Tensor, window: int = 8, stride: int = 4, fill: float = 0.5
) -> torch.Tensor:
    """Occlusion sensitivity: drop in the target logit when a window x window patch is grey (B,3,H,W)."""
    return Occlusion(model).attribute(
        x,
        sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride),
        baselines=fill,
        perturbations_per_eval=16,
    )


def grad_cam(model: SignedLogit, x: torch.Tensor) -> torch.Tensor:
    """Grad-CAM on the backbone's `cam_layer`, upsampled to the input size (B, H, W), ReLU'd as in the paper."""
    layer = model.classifier.backbone.cam_layer
    cam = LayerGradCam(model, layer).attribute(x, relu_attributions=True)
    return LayerAttribution.interpolate(cam, x.shape[-2:], interpolate_mode="bilinear")[:, 0]


def attention(model: SignedLogit, x: torch.Tensor) -> torch.Tensor:
    return attention_map(model.classifier, x)


def explain_batch(
    classifier: nn.Module,
    x: torch.Tensor,
    methods: tuple[str, ...] | list[str] = ("integrated_gradients", "occlusion", "grad_cam"),
    target: str = "predicted",
    ig_baseline: str = "black",
    ig_steps: int = 32,
    occlusion_window: int = 8,
    occlusion_stride: int = 4,
    bands: object | None = None,
    ig_noise_samples: int = 0,
) -> dict[str, torch.Tensor]:
    """Run the requested methods on one batch; returns maps (B,H,W) plus "prob", "ig_delta", "band_drop".

    Methods a model cannot support (Grad-CAM without a conv layer, attention without attention) are
    skipped silently, so one method list works for every model.
    """
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ConfigError(
            "explain.methods", f"unknown explanation method(s) {sorted(unknown)}; choose from {METHODS}"
        )
    was_training = classifier.training
    classifier.eval()
    out: dict[str, torch.Tensor] = {}
    try:
        with (
            torch.autocast(device_type=x.device.type, enabled=False),
            torch.inference_mode(False),
            torch.enable_grad(),
        ):
            x = x.detach().float().clone()
            with torch.no_grad():
                out["prob"] = calibrated_prob(classifier, classifier(x).float())
            sign = target_sign(classifier, x, target)
            model = SignedLogit(classifier, sign)
            runners: dict[str, Callable[[], torch.Tensor]] = {
                "integrated_gradients": lambda: _ig(model, x, ig_baseline, ig_steps, out, ig_noise_samples),
                "occlusion": lambda: occlusion(model, x, occlusion_window, occlusion_stride).sum(1),
                "grad_cam": lambda: grad_cam(model, x),
                "attention": lambda: attention(model, x),
                "band_ablation": lambda: _bands(classifier, x, bands, out),
            }
            for m in methods:
                if m == "grad_cam" and not hasattr(getattr(classifier, "backbone", None), "cam_layer"):
                    continue
                if m == "attention" and not has_attention(classifier):
                    continue
                res = runners[m]()
                if res is not None:
                    out[m] = res.detach()
    finally:
        classifier.train(was_training)
    return out


def _ig(model, x, baseline, steps, out, noise_samples=0):
    attr, delta = integrated_gradients(model, x, baseline, steps, noise_samples=noise_samples)
    with torch.no_grad():
        gap = (model(x) - model(make_baseline(x, baseline))).abs()
    out["ig_delta"] = delta.detach()
    out["ig_relative_delta"] = (
        delta.abs() / gap.clamp_min(1e-6)
    ).detach()  # completeness error / |f(x)-f(b)|
    return attr.sum(1)


def _bands(classifier, x, bands, out):
    ablation = bands if bands is not None else BandAblation()
    res = ablation(classifier, x)
    out["band_drop"] = res.drop
    out["band_names"] = res.band_names
    return res.coefficient_map


def normalise_map(m: torch.Tensor, absolute: bool = True) -> torch.Tensor:
    """Scale each (H, W) map to [0, 1] (absolute values by default) for display and statistics."""
    m = m.abs() if absolute else m.clamp_min(0)
    hi = m.flatten(1).max(1).values[:, None, None]
    return m / hi.clamp_min(1e-12)
