"""Statistics of attribution maps that the seeds ask about.

- agreement between methods (seed 002: Grad-CAM vs attention; seed 000: Grad-CAM vs IG):
  IoU of the top-k% pixels and Spearman rank correlation;
- dispersion of importance (seed 001: does the autoencoder spread it?): normalised entropy and Gini;
- where the evidence sits (the paper: fakes are judged on small background regions): the fraction of
  attribution mass in the central region versus the border.
All take (B, H, W) maps and use absolute values; they return one value per image. A map with no
attribution at all (Grad-CAM's ReLU leaves nothing where the predicted class has no positive evidence)
has no dispersion, location or ranking: its statistics are NaN, and `map_statistics` counts such maps
(`<method>/empty`) instead of scoring them as perfectly concentrated on the border.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional import spearman_corrcoef


def _mass(m: torch.Tensor) -> torch.Tensor:
    a = m.abs().flatten(1).double()
    return a / a.sum(1, keepdim=True).clamp_min(1e-30)


def is_empty(m: torch.Tensor) -> torch.Tensor:
    """Per image: the map holds no attribution (every value zero)."""
    return m.abs().flatten(1).amax(1) == 0


def _undefined_where_empty(value: torch.Tensor, *maps: torch.Tensor) -> torch.Tensor:
    empty = torch.stack([is_empty(m) for m in maps]).any(0)
    return torch.where(empty, torch.full_like(value, math.nan), value)


def topk_iou(a: torch.Tensor, b: torch.Tensor, fraction: float = 0.1) -> torch.Tensor:
    """IoU of the top `fraction` most important pixels of two maps."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    fa, fb = a.abs().flatten(1), b.abs().flatten(1)
    k = max(1, int(round(fraction * fa.shape[1])))
    ma = torch.zeros_like(fa, dtype=torch.bool).scatter_(1, fa.topk(k, dim=1).indices, True)
    mb = torch.zeros_like(fb, dtype=torch.bool).scatter_(1, fb.topk(k, dim=1).indices, True)
    return _undefined_where_empty((ma & mb).sum(1).double() / (ma | mb).sum(1).double(), a, b)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of absolute map values, per image (torchmetrics; ties share ranks)."""
    fa, fb = a.abs().flatten(1).cpu().double(), b.abs().flatten(1).cpu().double()
    rho = spearman_corrcoef(fa.T.contiguous(), fb.T.contiguous()).reshape(-1).double()
    return _undefined_where_empty(rho, a.cpu(), b.cpu())


def entropy(m: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of the normalised |map|, divided by log(#pixels): 1 = uniform, 0 = one pixel."""
    p = _mass(m)
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(1)
    return _undefined_where_empty(h / math.log(p.shape[1]), m)


def gini(m: torch.Tensor) -> torch.Tensor:
    """Gini coefficient of |map|: 0 = importance spread evenly, -> 1 = concentrated on few pixels."""
    p = torch.sort(_mass(m), dim=1).values
    n = p.shape[1]
    idx = torch.arange(1, n + 1, dtype=torch.double)
    return _undefined_where_empty(((2 * idx - n - 1) * p).sum(1) / n, m)


def centre_fraction(m: torch.Tensor, border: float = 0.25) -> torch.Tensor:
    """Share of |map| mass inside the central square that leaves `border` of the side on each edge.

    With border 0.25 the centre is the middle half of each side (a quarter of the pixels), so a map that
    ignores position scores 0.25; the paper's "fakes are judged on the background" predicts less.
    """
    h, w = m.shape[-2:]
    t, l_ = int(round(border * h)), int(round(border * w))
    centre = torch.zeros(h, w, dtype=torch.bool)
    centre[t : h - t, l_ : w - l_] = True
    p = _mass(m).view(-1, h, w)
    return _undefined_where_empty(p[:, centre].sum(1), m)


def map_statistics(maps: dict[str, torch.Tensor], fraction: float = 0.1) -> dict[str, torch.Tensor]:
    """Per-image dispersion/location of each map and pairwise agreement between methods."""
    stats: dict[str, torch.Tensor] = {}
    names = [
        k for k, v in maps.items() if isinstance(v, torch.Tensor) and v.dim() == 3 and k != "band_ablation"
    ]
    for k in names:
        stats[f"{k}/empty"] = is_empty(maps[k].cpu()).double()
        stats[f"{k}/entropy"] = entropy(maps[k].cpu())
        stats[f"{k}/gini"] = gini(maps[k].cpu())
        stats[f"{k}/centre_fraction"] = centre_fraction(maps[k].cpu())
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            stats[f"{a}~{b}/top{int(fraction * 100)}_iou"] = topk_iou(maps[a].cpu(), maps[b].cpu(), fraction)
            stats[f"{a}~{b}/spearman"] = spearman(maps[a].cpu(), maps[b].cpu())
    return stats
