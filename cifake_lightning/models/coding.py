"""A multi-resolution lossless-coding model of real images, and the ZED-style score built on it.

ZED (Cozzolino, Poggi, Niessner, Verdoliva, "Zero-Shot Detection of AI-Generated Images", ECCV 2024)
trains a lossless image coder on real images only and asks how *surprising* an image is to it: the
coding cost (negative log-likelihood, NLL) of each pixel minus its expected value under the model's own
predicted distribution (the entropy H). For images like the training reals the gap D = NLL - H is
centred near zero; a generated image is coded more cheaply (or dearly) than the model expects. The gap
is computed at several resolutions, as ZED's SReC coder does, so that both fine and coarse structure
count. No fake image is needed to train it, so no generator can be "seen".

This is that idea sized for 32x32 images on a CPU (our design, not ZED's code):

- Pyramid by decimation: y0 = the image in 0..255, y(l+1) = y(l)[::2, ::2]. Level l codes y(l) given
  y(l+1), which is exactly its anchor sub-image (0, 0); the other three sub-images (0, 1), (1, 0), (1, 1)
  are coded in that order, each given the anchor and the sub-images before it (SReC's sub-image order).
  One small residual CNN per level, run on the three groups at once, at half the level's resolution.
- Each sub-pixel's value has a discretised logistic mixture (PixelCNN++, Salimans et al. 2017) as its
  distribution; training minimises the NLL of the train reals in bits per coded sub-pixel.
- H is the expectation of -log2 p under the predicted mixture, evaluated deterministically by a
  quantile rule (per mixture component, `quadrature` stratified quantiles, rounded to the 256 levels),
  so the score of an image never depends on a random draw (test, predict FILES and export agree).

`features(x)` returns per image and level l = 0 (full resolution), 1, 2 ...: NLL_l, H_l and D_l (bits
per sub-pixel), and ZED's cross-level gap D_l - D_(l+1). `CodingCostDetector` (the backbone that
`cifake fit` trains through `RealOnlyDetector`) turns them into one score: the Mahalanobis distance of
the (D_l, NLL_l) vector to a Gaussian of train reals' vectors, so images coded unusually cheaply *or*
dearly both score high (two-sided, as the ZED paper's |D| statistic).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_choice
from .registry import register_model

LOG2 = math.log(2.0)
Score = Literal["mahalanobis", "gap", "abs_gap", "cross_gap"]


def _to_levels(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> integer grey levels 0..255 as floats (what a lossless coder codes)."""
    return (x.clamp(0, 1) * 255).round()


def _scale(v: torch.Tensor) -> torch.Tensor:
    """0..255 -> [-1, 1], the range the logistic mixture is parameterised in (PixelCNN++)."""
    return v / 127.5 - 1.0


def discretized_logistic_logp(v: torch.Tensor, params: torch.Tensor, k: int) -> torch.Tensor:
    """log p(v) under a discretised logistic mixture, for values on the 256-level grid in [-1, 1].

    v: (..., n) values, params: (..., 3k) = k mixture logits, k means, k log-scales (one mixture for
    all n values of a row) -> (..., n).
    """
    logit_pi, mean, log_s = (t.unsqueeze(-2) for t in params.split(k, dim=-1))  # (..., 1, k)
    log_s = log_s.clamp(min=-7.0)
    vv = v.unsqueeze(-1)  # (..., n, 1)
    c = vv - mean
    inv_s = torch.exp(-log_s)
    plus = inv_s * (c + 1.0 / 255.0)
    minus = inv_s * (c - 1.0 / 255.0)
    log_cdf_plus = plus - F.softplus(plus)  # log sigmoid(plus): the lowest bin (v = -1)
    log_one_minus_cdf_minus = -F.softplus(minus)  # the highest bin (v = 1)
    delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    mid = inv_s * c
    log_pdf_mid = mid - log_s - 2.0 * F.softplus(mid) - math.log(127.5)  # for bins too thin for delta
    inner = torch.where(delta > 1e-5, torch.log(delta.clamp(min=1e-12)), log_pdf_mid)
    logp = torch.where(vv < -0.999, log_cdf_plus, torch.where(vv > 0.999, log_one_minus_cdf_minus, inner))
    return torch.logsumexp(logp + F.log_softmax(logit_pi, dim=-1), dim=-1)


def expected_logp(params: torch.Tensor, k: int, quadrature: int) -> torch.Tensor:
    """E[log p(V)] for V drawn from the mixture itself (minus the entropy), by stratified quantiles.

    Per component j, V takes the values mean_j + s_j * logit(u) at u = (i + 0.5) / quadrature, rounded to
    the 256-level grid; the components are weighted by their mixture weights. Deterministic.
    """
    logit_pi, mean, log_s = params.split(k, dim=-1)
    u = (torch.arange(quadrature, device=params.device, dtype=params.dtype) + 0.5) / quadrature
    z = torch.log(u) - torch.log1p(-u)  # logistic quantiles
    s = torch.exp(log_s.clamp(min=-7.0))
    draws = mean.unsqueeze(-1) + s.unsqueeze(-1) * z  # (..., k, q)
    draws = ((draws.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1
    lp = discretized_logistic_logp(draws.flatten(-2), params, k)  # (..., k*q)
    lp = lp.unflatten(-1, (k, quadrature)).mean(-1)  # (..., k)
    return (F.softmax(logit_pi, dim=-1) * lp).sum(-1)


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(width, width, 3, padding=1)
        self.c2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.c2(F.silu(self.c1(F.silu(h))))


class LevelCoder(nn.Module):
    """Mixture parameters of sub-images (0,1), (1,0), (1,1) of a level given its anchor and the ones before.

    Input per group: anchor (3), the earlier sub-images (3 + 3, zero where not yet coded) and a one-hot
    of the group (3), all at half the level's resolution.
    """

    def __init__(self, width: int, depth: int, mixtures: int) -> None:
        super().__init__()
        self.k = mixtures
        self.inp = nn.Conv2d(12, width, 3, padding=1)
        self.blocks = nn.Sequential(*[_Block(width) for _ in range(depth)])
        self.out = nn.Conv2d(width, 3 * 3 * mixtures, 1)

    def forward(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """level (B, 3, H, W) in [-1, 1] -> (targets (3, B, 3, H/2, W/2), params (..., 3k))."""
        a = level[..., 0::2, 0::2]
        g1, g2, g3 = level[..., 0::2, 1::2], level[..., 1::2, 0::2], level[..., 1::2, 1::2]
        zero = torch.zeros_like(a)
        b = a.shape[0]
        onehot = torch.eye(3, device=a.device, dtype=a.dtype)
        groups = []
        for i, (c1, c2) in enumerate(((zero, zero), (g1, zero), (g1, g2))):
            code = onehot[i].view(1, 3, 1, 1).expand(b, 3, *a.shape[-2:])
            groups.append(torch.cat([a, c1, c2, code], dim=1))
        h = self.blocks(self.inp(torch.cat(groups, dim=0)))  # the three groups in one batch
        params = self.out(F.silu(h))  # (3B, 3*3k, h, w)
        params = params.unflatten(1, (3, 3 * self.k)).permute(0, 1, 3, 4, 2)  # (3B, 3, h, w, 3k)
        targets = torch.stack([g1, g2, g3])  # (3, B, 3, h, w)
        return targets, params.unflatten(0, (3, b))


class CodingCostModel(nn.Module):
    """Multi-resolution lossless coder of 0..255 images (see module docstring); levels >= 1."""

    def __init__(
        self, levels: int = 3, width: int = 32, depth: int = 2, mixtures: int = 3, quadrature: int = 4
    ):
        super().__init__()
        if levels < 1 or width < 1 or depth < 0 or mixtures < 1 or quadrature < 1:
            raise ConfigError(
                "model.backbone", "levels, width, mixtures and quadrature must be >= 1 and depth >= 0"
            )
        self.levels = levels
        self.k = mixtures
        self.quadrature = quadrature
        self.coders = nn.ModuleList(LevelCoder(width, depth, mixtures) for _ in range(levels))

    def _pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        size = x.shape[-1]
        if x.shape[-2] != size or size % (2**self.levels):
            raise ValueError(
                f"coding model with {self.levels} levels needs square images whose side divides by "
                f"{2**self.levels}, got {tuple(x.shape[-2:])}"
            )
        y = [_scale(_to_levels(x))]
        for _ in range(self.levels - 1):
            y.append(y[-1][..., 0::2, 0::2])
        return y

    def nll_bits(self, x: torch.Tensor) -> torch.Tensor:
        """Mean coding cost of the train batch, bits per coded sub-pixel (the training loss)."""
        total, count = 0.0, 0
        for coder, level in zip(self.coders, self._pyramid(x)):
            targets, params = coder(level)
            lp = discretized_logistic_logp(targets.unsqueeze(-1), params, self.k).squeeze(-1)
            total = total - lp.sum()
            count += lp.numel()
        return total / (count * LOG2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4 * levels - 1): NLL_l, H_l, D_l for each level, then D_l - D_(l+1); bits per sub-pixel."""
        nll, ent = [], []
        for coder, level in zip(self.coders, self._pyramid(x)):
            targets, params = coder(level)
            lp = discretized_logistic_logp(targets.unsqueeze(-1), params, self.k).squeeze(-1)
            elp = expected_logp(params, self.k, self.quadrature)
            dims = tuple(range(2, lp.dim()))
            nll.append(-lp.permute(1, 0, *dims).flatten(1).mean(1) / LOG2)
            ent.append(-elp.permute(1, 0, *dims).flatten(1).mean(1) / LOG2)
        nll_t, ent_t = torch.stack(nll, 1), torch.stack(ent, 1)
        gap = nll_t - ent_t
        return torch.cat([nll_t, ent_t, gap, gap[:, :-1] - gap[:, 1:]], dim=1)


@register_model("coding_cost")
class CodingCostDetector(nn.Module):
    """Real-only detector: ZED-style coding-cost gaps of a lossless coder of real images -> one score.

    Train it with `RealOnlyDetector` (training/real_only.py), which minimises the coder's NLL on the train
    reals and fits the reference Gaussian on train reals; it maps [0, 1] images (use `normalize: none`)
    to a score that is high for images unlike the reals.

    Args:
        levels, width, depth, mixtures, quadrature: the coder (`CodingCostModel`).
        score: mahalanobis (default; distance of the per-level (D_l, NLL_l) vector to the train reals'
            Gaussian) | gap (-D_0: coded more cheaply than expected) | abs_gap (|D_0 - mean|, ZED's
            two-sided gap) | cross_gap (|(D_0 - D_1) - mean|, ZED's cross-level statistic).
    """

    def __init__(
        self,
        levels: int = 3,
        width: int = 32,
        depth: int = 2,
        mixtures: int = 3,
        quadrature: int = 4,
        score: Score = "mahalanobis",
    ) -> None:
        super().__init__()
        check_choice("model.backbone.score", score, Score)
        self.coder = CodingCostModel(levels, width, depth, mixtures, quadrature)
        self.score = score
        n = len(self._selected())
        self.register_buffer("ref_mean", torch.zeros(n))
        self.register_buffer("ref_precision", torch.eye(n))
        self.register_buffer("ref_offset", torch.tensor(0.0))
        self.register_buffer("ref_fitted", torch.tensor(False))

    def _selected(self) -> list[int]:
        """Columns of `CodingCostModel.features` the score uses."""
        lv = self.coder.levels
        nll, gap, cross = list(range(lv)), list(range(2 * lv, 3 * lv)), 3 * lv
        return {"mahalanobis": gap + nll, "gap": gap[:1], "abs_gap": gap[:1], "cross_gap": [cross]}[
            self.score
        ]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.coder.nll_bits(x)

    def selected_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.coder.features(x)[:, self._selected()]

    @torch.no_grad()
    def fit_reference(self, feats: torch.Tensor) -> None:
        """Fit the reals' Gaussian (mean, shrunk covariance) to `selected_features` of train reals, and
        the offset that puts their 95th-percentile score at 0 (so logit > 0 reads "more unusual than 95%
        of the train reals"; the operating threshold still comes from validation)."""
        feats = feats.double()
        if feats.shape[0] < 2 * feats.shape[1] or not torch.isfinite(feats).all():
            raise ValueError(
                f"need >= {2 * feats.shape[1]} finite reference feature rows, got {feats.shape[0]}"
            )
        mean = feats.mean(0)
        cov = torch.cov(feats.T).reshape(feats.shape[1], feats.shape[1])
        cov = cov + 1e-3 * cov.diagonal().mean() * torch.eye(cov.shape[0], dtype=cov.dtype)
        self.ref_mean.copy_(mean.float())
        self.ref_precision.copy_(torch.linalg.inv(cov).float())
        self.ref_offset.fill_(
            float(torch.quantile(self._score(feats.float().to(self.ref_mean.device)), 0.95))
        )
        self.ref_fitted.fill_(True)

    def _score(self, f: torch.Tensor) -> torch.Tensor:
        if self.score == "gap":
            return -f[:, 0]
        z = f - self.ref_mean
        if self.score in ("abs_gap", "cross_gap"):
            return z[:, 0].abs()
        return torch.sqrt(((z @ self.ref_precision) * z).sum(1).clamp(min=0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._score(self.selected_features(x.float())) - self.ref_offset
