"""Perturbations real-world fakes go through (re-compression, blur, resizing), applied to test images.

Each takes and returns float (B, 3, H, W) images in [0, 1]. A robustness pass (TestReport.run_robustness)
feeds the model the test images through one of them (`perturbed_logits`): the data module is never asked
to perturb. JPEG uses the real codec (PIL, libjpeg) rather than a differentiable approximation, since the
point is to match what platforms do to images.
"""

from __future__ import annotations

import functools
import io

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from PIL import Image


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    out = []
    for img in (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255).to(x.device)


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = 2 * int(round(3 * sigma)) + 1
    return gaussian_blur2d(x, (k, k), (sigma, sigma), border_type="reflect")


def rescale(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Downscale by `factor` (area) and back up (bilinear): loses detail like a thumbnail round trip."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h * factor)), max(1, round(w * factor))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


#: CNNDetection's grid (Wang et al., CVPR 2020): JPEG quality 100..30 and Gaussian blur sigma 0.5..3,
#: applied to real and fake images alike; plus a thumbnail round trip. Each is one predict pass.
PERTURBATIONS = {
    **{f"jpeg{q}": functools.partial(jpeg, quality=q) for q in (100, 90, 75, 60, 45, 30)},
    **{f"blur{s:.1f}": functools.partial(blur, sigma=s) for s in (0.5, 1.0, 2.0, 3.0)},
    "scale0.75": functools.partial(rescale, factor=0.75),
    "scale0.5": functools.partial(rescale, factor=0.5),
}


@torch.no_grad()
def perturbed_logits(model, images: torch.Tensor, perturb, batch_size: int = 512) -> torch.Tensor:
    """(N,) logits of `model` (float [0, 1] images in, logits out) on uint8 (N, 3, H, W) `images`
    perturbed by `perturb`, batch by batch on the model's device."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255.0)
        out.append(model(perturb(x)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
