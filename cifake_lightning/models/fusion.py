"""Score fusion: one detector made of trained detectors, each score standardised on held-out reals.

A supervised detector finds the traces it was trained on (genset-v2's DCGAN, resampling) and nothing
else; a real-only detector (models/content.py, models/coding.py) flags what is unlike the real photos,
whatever made it (README "Published generators", issue 29). Fusing them keeps both. Each member's logit
is standardised by the mean and standard deviation of the validation reals' logits,
z_i = (s_i - mean_i) / sd_i, so members of any scale are commensurable, and the fused score is

- ``max``: max_i z_i, "flag what any member finds unusual" (no fake needed to fit it);
- ``mean``: the mean of the z_i;
- ``logistic``: w . z + b, weights fitted by class-balanced logistic regression on the validation set,
  real and fake, so it trusts the member that separates the *validation* fakes best (the trained kind).

Only validation data fits the fusion (training.FusionDetector); the member checkpoints must stay where
the config names them, since the fused model is rebuilt from them (their weights are in its checkpoint).
Standardising on reals alone is what lets ``max`` and ``mean`` be fitted without any fake of an
unseen kind: the threshold (fpr on validation reals) then bounds the false positives of the fused score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_choice
from .detector import Detector

Rule = Literal["max", "mean", "logistic"]


class ScoreFusion(nn.Module):
    """Members' logits, standardised on validation reals, fused by `rule` (see module docstring).

    Args:
        members: checkpoints written by `cifake fit` (any detector, supervised or real-only).
        rule: max | mean | logistic.
    Use with `training.FusionDetector` and `normalize: none` (each member normalises its own input).
    """

    def __init__(self, members: list[str | Path], rule: Rule = "max") -> None:
        super().__init__()
        if len(members) < 2:
            raise ConfigError("model.backbone.members", f"name at least two checkpoints, got {len(members)}")
        check_choice("model.backbone.rule", rule, Rule)
        self.member_paths = [str(p) for p in members]
        self.members = nn.ModuleList(Detector.from_checkpoint(p) for p in members)
        self.members.requires_grad_(False)
        self.rule = rule
        m = len(members)
        self.register_buffer("ref_mean", torch.zeros(m))
        self.register_buffer("ref_std", torch.ones(m))
        self.register_buffer("weight", torch.full((m,), 1.0 / m))
        self.register_buffer("bias", torch.tensor(0.0))
        self.register_buffer("ref_fitted", torch.tensor(False))

    def train(self, mode: bool = True) -> ScoreFusion:
        super().train(mode)
        self.members.eval()  # trained members: batch norm statistics and dropout stay as they were
        return self

    @torch.no_grad()
    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> (B, M) raw member logits."""
        return torch.stack([det(x).float() for det in self.members], dim=1)

    def fuse(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, M) member logits -> (B,) fused score."""
        z = (logits - self.ref_mean) / self.ref_std
        if self.rule == "max":
            return z.max(dim=1).values
        if self.rule == "mean":
            return z.mean(dim=1)
        return z @ self.weight + self.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.member_logits(x))

    @torch.no_grad()
    def fit(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Fit standardisation (on the reals) and, for `logistic`, the weights (on all) of validation."""
        reals = logits[labels == 0]
        if reals.shape[0] < 2:
            raise ConfigError("data.val_size", f"fusion needs validation reals, got {reals.shape[0]}")
        self.ref_mean.copy_(reals.mean(0))
        self.ref_std.copy_(reals.std(0).clamp_min(1e-6))
        if self.rule == "logistic":
            w, b = _logistic((logits - self.ref_mean) / self.ref_std, labels)
            self.weight.copy_(w)
            self.bias.copy_(b)
        self.ref_fitted.fill_(True)


def _logistic(z: torch.Tensor, y: torch.Tensor, steps: int = 200) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced logistic regression (a small L2 penalty keeps separable data finite)."""
    if bool((y == 1).sum() == 0) or bool((y == 0).sum() == 0):
        raise ConfigError("data.val_size", "logistic fusion needs real and fake validation images")
    y = y.float()
    pos = y.mean()
    sample_weight = torch.where(y == 1, 0.5 / pos, 0.5 / (1 - pos))
    w = torch.zeros(z.shape[1], device=z.device, requires_grad=True)
    b = torch.zeros((), device=z.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(z @ w + b, y, reduction="none") * sample_weight).mean()
        loss = loss + 1e-3 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()
