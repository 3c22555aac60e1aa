"""Forensic self-descriptions, sized for 32x32 images: a real-only detector of residual structure.

FSD (Nguyen, Azizpour, Stamm, "Forensic Self-Descriptions Are All You Need for Zero-Shot Detection,
Open-Set Source Attribution, and Clustering of AI-generated Images", CVPR 2025) describes each image
by how its own forensic residuals predict themselves, and models the descriptions of real images only:

1. Residuals: K prediction-error filters (a constrained convolution: the centre tap is 0 and the
   others sum to 1, so conv(x) predicts each pixel from its neighbours) give r_k = x - conv_k(x).
2. Self-description: per image, the weights psi that best predict the sum over k of each residual's
   centre from the b x b neighbourhoods (centre excluded) of all K residuals, pooled over the residual
   and its 2x, 4x ... bilinear reductions; ridge least squares with each channel's weights summing to
   one, solved exactly (the KKT system). psi has K * (b^2 - 1) entries, a fingerprint of the local
   correlations the generator (or the camera and JPEG) left.
3. A Gaussian mixture of train reals' psi; the score is the negative log-likelihood.

psi does not change when the residuals are scaled, so an image twice as noisy as the reals but with
the same correlations would pass; we append each residual's log energy to psi (our addition).

Sizing for 32x32 (our design, not FSD's code): K = 4 filters on the 0..255 luma, each with its own
support (3x3, 5x5, the causal half of a 5x5, a 5x5 cross) so that they differ by construction; they
are trained on the train reals to minimise the mean squared residual (the filters are the only
parameters, a few hundred). b = 3 and two scales keep psi at 32 numbers (36 with the energies) for 1,024 + 256 equations.
`RealOnlyDetector` trains it through `cifake fit`; no fake image is ever used.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .registry import register_model

LUMA = (0.299, 0.587, 0.114)


def _supports(size: int) -> torch.Tensor:
    """(4, size, size) masks of the four filters' supports, centre excluded."""
    c = size // 2
    full = torch.ones(size, size)
    small = torch.zeros(size, size)
    small[c - 1 : c + 2, c - 1 : c + 2] = 1
    causal = torch.zeros(size, size)
    causal[:c] = 1
    causal[c, :c] = 1
    cross = torch.zeros(size, size)
    cross[c] = 1
    cross[:, c] = 1
    masks = torch.stack([small, full, causal, cross])
    masks[:, c, c] = 0
    return masks


class PredictionErrorFilters(nn.Module):
    """K constrained filters r_k = x - conv_k(x) (Bayar & Stamm's constraint, as FSD's residual
    extractor): each filter's taps are zero at the centre and outside its support and sum to one."""

    def __init__(self, size: int = 5) -> None:
        super().__init__()
        if size < 3 or size % 2 == 0:
            raise ConfigError("model.backbone.filter_size", f"must be an odd number >= 3, got {size}")
        masks = _supports(size)
        self.register_buffer("mask", masks.unsqueeze(1))
        self.weight = nn.Parameter(masks.unsqueeze(1) / masks.sum((1, 2)).view(-1, 1, 1, 1))

    def filters(self) -> torch.Tensor:
        w = self.weight * self.mask
        n = self.mask.sum((1, 2, 3), keepdim=True)
        return w + self.mask * (1 - w.sum((1, 2, 3), keepdim=True)) / n  # project onto sum = 1

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) luma -> (B, K, H, W) residuals (reflect padding at the border)."""
        p = self.mask.shape[-1] // 2
        return y - F.conv2d(F.pad(y, (p, p, p, p), mode="reflect"), self.filters())


def describe(residuals: torch.Tensor, size: int, scales: int, ridge: float) -> torch.Tensor:
    """Each image's self-description: (B, K, H, W) residuals -> (B, K * (size^2 - 1)) weights psi."""
    b, k = residuals.shape[:2]
    p, centre = size // 2, size * size // 2
    xs, ys = [], []
    for s in range(scales):
        r = residuals if s == 0 else F.interpolate(residuals, scale_factor=0.5**s, mode="bilinear")
        patches = F.unfold(F.pad(r, (p, p, p, p), mode="reflect"), size)  # (B, K*size^2, H*W)
        patches = patches.view(b, k, size * size, -1)
        ys.append(patches[:, :, centre].sum(1))
        xs.append(torch.cat([patches[:, :, :centre], patches[:, :, centre + 1 :]], 2).flatten(1, 2))
    x = torch.cat(xs, 2).double()  # (B, F, N)
    y = torch.cat(ys, 1).double()  # (B, N)
    n_feat = x.shape[1]
    gram = x @ x.transpose(1, 2)
    scale = ridge * gram.diagonal(dim1=1, dim2=2).mean(1) + 1e-6  # the floor: a flat image has no residual
    gram = gram + scale.view(b, 1, 1) * torch.eye(n_feat, dtype=gram.dtype, device=gram.device)
    # KKT system [[G, A^T], [A, 0]] [psi; lambda] = [X y; 1], A: each channel's weights sum to one
    groups = torch.eye(k, dtype=gram.dtype, device=gram.device).repeat_interleave(n_feat // k, dim=1)
    lhs = gram.new_zeros(b, n_feat + k, n_feat + k)
    lhs[:, :n_feat, :n_feat] = gram
    lhs[:, :n_feat, n_feat:] = groups.T
    lhs[:, n_feat:, :n_feat] = groups
    rhs = torch.cat([(x @ y.unsqueeze(2)).squeeze(2), y.new_ones(b, k)], 1)
    return torch.linalg.solve(lhs, rhs)[:, :n_feat].float()


class GaussianMixture(nn.Module):
    """A full-covariance Gaussian mixture fitted by EM (k-means++-style seeded initialisation, shrunk
    covariances); `nll(f)` is each row's negative log-likelihood."""

    def __init__(self, components: int, dim: int, shrinkage: float = 1e-2) -> None:
        super().__init__()
        self.shrinkage = shrinkage
        self.register_buffer("log_weight", torch.full((components,), -math.log(components)))
        self.register_buffer("mean", torch.zeros(components, dim))
        self.register_buffer("chol", torch.eye(dim).repeat(components, 1, 1))  # of the precision

    def _log_prob(self, f: torch.Tensor) -> torch.Tensor:
        z = torch.einsum("nd,kde->nke", f, self.chol) - torch.einsum("kd,kde->ke", self.mean, self.chol)
        log_det = self.chol.diagonal(dim1=1, dim2=2).log().sum(1)
        return self.log_weight + log_det - 0.5 * (z * z).sum(2) - 0.5 * f.shape[1] * math.log(2 * math.pi)

    def nll(self, f: torch.Tensor) -> torch.Tensor:
        return -torch.logsumexp(self._log_prob(f), dim=1)

    @torch.no_grad()
    def fit(self, f: torch.Tensor, iterations: int = 50) -> None:
        f = f.double()
        n, d = f.shape
        k = self.mean.shape[0]
        g = torch.Generator().manual_seed(0)
        centres = [f[torch.randint(0, n, (1,), generator=g)].squeeze(0)]
        for _ in range(1, k):  # k-means++ seeding, deterministic
            dist = torch.cdist(f, torch.stack(centres)).min(1).values ** 2
            centres.append(f[torch.multinomial(dist / dist.sum(), 1, generator=g)].squeeze(0))
        resp = F.one_hot(torch.cdist(f, torch.stack(centres)).argmin(1), k).double()
        eye = torch.eye(d, dtype=f.dtype)
        for _ in range(iterations):
            nk = resp.sum(0) + 1e-9
            mean = (resp.T @ f) / nk[:, None]
            cov = torch.stack(
                [((resp[:, j, None] * (f - mean[j])).T @ (f - mean[j])) / nk[j] for j in range(k)]
            )
            cov = cov + self.shrinkage * cov.diagonal(dim1=1, dim2=2).mean(1).view(k, 1, 1) * eye + 1e-9 * eye
            self.log_weight.copy_((nk / n).log())
            self.mean.copy_(mean)
            self.chol.copy_(torch.linalg.cholesky(torch.linalg.inv(cov)))
            resp = torch.softmax(self._log_prob(f.float()).double(), dim=1)


@register_model("self_description")
class SelfDescriptionDetector(nn.Module):
    """Real-only: FSD-style self-descriptions of an image's residuals, scored by a Gaussian mixture of
    the train reals' descriptions (see module docstring). Train with `RealOnlyDetector`
    (`normalize: none`); the score is the NLL minus the train reals' 95th percentile.

    Args:
        filter_size: side of the prediction-error filters (odd, >= 3).
        patch: side b of the self-description's neighbourhood (odd, >= 3); psi has 4 * (b^2 - 1) entries.
        scales: the residual and its 2x ... reductions pooled into one least-squares problem.
        components: Gaussian-mixture components of the reals' descriptions (1 = one Gaussian).
        ridge: ridge weight, relative to the mean diagonal of each image's normal equations.
    """

    def __init__(
        self, filter_size: int = 5, patch: int = 3, scales: int = 2, components: int = 4, ridge: float = 1e-3
    ) -> None:
        super().__init__()
        if patch < 3 or patch % 2 == 0:
            raise ConfigError("model.backbone.patch", f"must be an odd number >= 3, got {patch}")
        if not 1 <= scales <= 3:
            raise ConfigError("model.backbone.scales", f"must be 1, 2 or 3 at 32x32, got {scales}")
        if components < 1 or ridge <= 0:
            raise ConfigError(
                "model.backbone", f"need components >= 1 and ridge > 0, got {components}, {ridge}"
            )
        self.patch, self.scales, self.ridge = patch, scales, ridge
        self.residual = PredictionErrorFilters(filter_size)
        self.mixture = GaussianMixture(components, 4 * (patch * patch - 1) + 4)
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1))
        self.register_buffer("ref_offset", torch.tensor(0.0))
        self.register_buffer("ref_fitted", torch.tensor(False))

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual((x.float() * self.luma).sum(1, keepdim=True) * 255.0)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared residual of the reals (grey levels^2): the filters learn to predict real pixels."""
        return self.residuals(x).pow(2).mean()

    def selected_features(self, x: torch.Tensor) -> torch.Tensor:
        """psi (scale-free: it describes how residuals correlate) and each residual's log energy."""
        r = self.residuals(x)
        energy = r.pow(2).mean((2, 3)).clamp(min=1e-6).log()
        return torch.cat([describe(r, self.patch, self.scales, self.ridge), energy], 1)

    @torch.no_grad()
    def fit_reference(self, feats: torch.Tensor) -> None:
        """Fit the mixture to train reals' descriptions; put their 95th-percentile NLL at 0."""
        if feats.shape[0] < 4 * feats.shape[1]:
            raise ConfigError(
                "model.reference_size",
                f"the mixture of {feats.shape[1]}-d descriptions needs >= {4 * feats.shape[1]} train reals, "
                f"got {feats.shape[0]}",
            )
        if not torch.isfinite(feats).all():
            raise ValueError("non-finite self-descriptions of train reals")
        self.mixture.fit(feats.to(self.mixture.mean.device))
        own = self.mixture.nll(feats.float().to(self.mixture.mean.device))
        self.ref_offset.fill_(float(torch.quantile(own, 0.95)))
        self.ref_fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mixture.nll(self.selected_features(x)) - self.ref_offset
