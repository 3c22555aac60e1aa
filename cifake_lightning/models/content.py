"""A real-only detector of implausible content: a CIFAR-10 classifier of the train reals, whose energy
score flags images no class explains.

Pixel-level detectors trained on genset-v2 rank published generators at chance (README, issue 29);
generators at 32x32 still fail at *content*: PixelCNN++ samples are locally sharp but globally
incoherent, GAN samples mix object parts, and Stable Diffusion's prompts show scenes CIFAR-10 has no
class for. A classifier trained on the real photos' content classes (the CIFAR-10 labels genset-v2's
file names carry) is less sure of such images. The score is the energy -logsumexp(logits) of Liu et al.
("Energy-based Out-of-distribution Detection", NeurIPS 2020), the classic out-of-distribution score
(Hendrycks & Gimpel's max-softmax is its cousin). Like every real-only score it also flags real photos
unlike the training reals (genset-v2's ood/real_photos): that is its cost, reported beside its gain.

It never sees a fake: `training.RealOnlyDetector` trains it on the reals of each batch, with their
content classes. With `outlier_exposure > 0` it does see the batch's fakes, and is no longer real-only:
outlier exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019) in the energy form of Liu et al. (2020,
"energy-bounded learning"): the energies of the batch's reals are pushed below a margin and those of its
fakes above it, so that the score also learns what the training generators' images look like while the
reals' classes keep the content signal. Liu et al. use two hand-set margins on a squared hinge; here one
margin is learned and the penalty is logistic, softplus(E_real - m) + softplus(m - E_fake), so that no
margin has to be chosen for this model's energy scale. (The original outlier-exposure loss, fakes'
posteriors pulled to the uniform, does not raise the energy: equal logits can be large.)

`outliers` chooses what the exposure is to. `fakes` (the default) are the batch's training fakes.
`mixup` and `jigsaw` make the outliers from the batch's own reals, so the detector stays real-only:
mixup blends each real with a real of another class (Mixture Outlier Exposure, Zhang et al., WACV 2023:
outliers near the reals), jigsaw permutes the four 16x16 quadrants of each real (the synthetic anomalies
of self-supervised anomaly detection, as in CutPaste, Li et al., CVPR 2021). Both keep the reals' local
statistics and break what a class explains: an image of two objects at once, or of parts in the wrong
places, as generators at 32x32 often make. Measured on pubgen-dev, both lower the content detector's
AUROC (benchmarks/results/pubgen_dev.md): the option is kept, not recommended.

With `rotation > 0` it also learns to tell which of four quarter-turns each real was given (Hendrycks,
Mazeika, Kadavath & Song, "Using Self-Supervised Learning Can Improve Model Robustness and Uncertainty",
NeurIPS 2019): still real-only. Their out-of-distribution score adds the rotation head's cross-entropy,
averaged over the four turns, to the class score; `score: rotation` is that sum with the energy as the
class score. Each training step rotates each real once (a random turn) rather than four times, so a step
costs two forward passes instead of five.
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, check_choice
from .registry import register_model


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )  # fmt: skip


#: the 23 orders of an image's four quadrants that move at least one
_QUADRANT_MOVES = torch.tensor([p for p in itertools.permutations(range(4)) if p != (0, 1, 2, 3)])


def synthetic_outliers(
    x: torch.Tensor, content_class: torch.Tensor, kind: Literal["mixup", "jigsaw"]
) -> torch.Tensor:
    """Outliers made from a batch of reals (B, C, H, W). jigsaw: one per real, its four quadrants permuted
    by one of the 23 permutations that move at least one. mixup: each real blended, with a weight drawn
    from U(0.35, 0.65), with the real a random shift further along the batch, kept only where the two
    classes differ (so none when every real has the same class)."""
    b, h, w = x.shape[0], x.shape[2], x.shape[3]
    if kind == "mixup":
        partner = (torch.arange(b, device=x.device) + int(torch.randint(1, max(b, 2), ()))) % b
        keep = content_class != content_class[partner]
        lam = torch.empty(b, 1, 1, 1, device=x.device).uniform_(0.35, 0.65)
        return (lam * x + (1 - lam) * x[partner])[keep]
    c, hh, hw = x.shape[1], h // 2, w // 2
    quads = x[..., : 2 * hh, : 2 * hw].reshape(b, c, 2, hh, 2, hw).permute(0, 2, 4, 1, 3, 5)
    perms = _QUADRANT_MOVES.to(x.device)
    order = perms[torch.randint(0, len(perms), (b,), device=x.device)]
    moved = quads.reshape(b, 4, c, hh, hw)[torch.arange(b, device=x.device)[:, None], order]
    return moved.reshape(b, 2, 2, c, hh, hw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, 2 * hh, 2 * hw)


@register_model("content_energy")
class ContentEnergyDetector(nn.Module):
    """Real-only: CIFAR-10 content classifier of the train reals; score = energy of its logits.

    Args:
        width: channels of the first of three conv blocks (doubled per block).
        classes: number of content classes (10 for CIFAR-10).
        score: energy (-logsumexp of the logits, Liu et al. 2020) or knn: the distance of the image's
            L2-normalised penultimate features to their k-th nearest neighbour among `bank` train reals
            (Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022), which
            uses what the features say about an image beyond the class scores.
        k, bank: the neighbour and the number of train reals kept (score knn; RealOnlyDetector's
            reference_size must be at least `bank`).
        outlier_exposure: weight of the energy outlier-exposure loss on the batch's reals and outliers
            (0: off).
        outliers: fakes (the batch's training fakes, whose generator kinds are then seen kinds), mixup
            or jigsaw (made from the batch's reals in training: still real-only).
        rotation: weight of the self-supervised rotation-prediction loss on the reals (0: no rotation head).
            score rotation (energy + the rotation head's mean cross-entropy over the four quarter-turns,
            Hendrycks et al. 2019) needs rotation > 0.
    Use `normalize: cifar10` in RealOnlyDetector (inputs are normalised images).
    """

    needs_content_class = True

    def __init__(
        self, width: int = 32, classes: int = 10, score: Literal["energy", "knn", "rotation"] = "energy",
        k: int = 10, bank: int = 4096, outlier_exposure: float = 0.0,
        outliers: Literal["fakes", "mixup", "jigsaw"] = "fakes", rotation: float = 0.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if width < 1 or classes < 2:
            raise ConfigError(
                "model.backbone", f"width must be >= 1 and classes >= 2, got {width}, {classes}"
            )
        check_choice("model.backbone.score", score, ("energy", "knn", "rotation"))
        if not 1 <= k < bank:
            raise ConfigError("model.backbone.k", f"must be in [1, bank), got k={k}, bank={bank}")
        if outlier_exposure < 0:
            raise ConfigError("model.backbone.outlier_exposure", f"must be >= 0, got {outlier_exposure}")
        if rotation < 0:
            raise ConfigError("model.backbone.rotation", f"must be >= 0, got {rotation}")
        if score == "rotation" and rotation == 0:
            raise ConfigError(
                "model.backbone.score",
                "score rotation needs a rotation head: set model.backbone.rotation > 0",
            )
        self.score, self.k = score, k
        self.outlier_exposure = outlier_exposure
        check_choice("model.backbone.outliers", outliers, ("fakes", "mixup", "jigsaw"))
        self.outliers = outliers
        # RealOnlyDetector passes the batch's fakes to loss() only if the model uses them
        self.uses_fakes = outlier_exposure > 0 and outliers == "fakes"
        if outlier_exposure > 0:  # the learned energy margin between the reals and the outliers
            self.oe_margin = nn.Parameter(torch.tensor(0.0))
        self.features = nn.Sequential(
            _block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.head = nn.Linear(4 * width, classes)
        self.rotation = rotation
        if rotation > 0:  # which of the four quarter-turns the image was given
            self.rotation_head = nn.Linear(4 * width, 4)
        self.classes = classes
        self.register_buffer("ref_offset", torch.tensor(0.0))
        if score == "knn":  # the train reals' features the kNN score measures against
            self.register_buffer("ref_bank", torch.zeros(bank, 4 * width))
        self.register_buffer("ref_fitted", torch.tensor(False))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def loss(
        self, x: torch.Tensor, content_class: torch.Tensor | None = None, fakes: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Cross-entropy of the reals' content classes (each real must have one), plus, with
        outlier_exposure, that weight times the logistic energy-margin loss of the reals and the fakes."""
        if (
            content_class is None
            or bool((content_class < 0).any())
            or bool((content_class >= self.classes).any())
        ):
            raise ConfigError(
                "model.backbone",
                f"ContentEnergyDetector trains on content classes 0..{self.classes - 1} of every real image; "
                "this data has reals without one (file names must carry the class, as CIFAKE's and genset's do)",
            )
        logits = self.logits(x)
        loss = F.cross_entropy(logits, content_class)
        if self.outlier_exposure > 0 and self.outliers != "fakes":
            fakes = synthetic_outliers(x, content_class, self.outliers) if self.training else None
        if self.outlier_exposure > 0 and fakes is not None and fakes.shape[0] > 0:
            e_real = -torch.logsumexp(logits.float(), dim=1)
            e_fake = -torch.logsumexp(self.logits(fakes).float(), dim=1)
            margin = F.softplus(e_real - self.oe_margin).mean() + F.softplus(self.oe_margin - e_fake).mean()
            loss = loss + self.outlier_exposure * margin
        if self.rotation > 0:
            turns = torch.randint(0, 4, (x.shape[0],), device=x.device)
            rotated = torch.stack([torch.rot90(x, k, (2, 3)) for k in range(4)])[
                turns, torch.arange(x.shape[0])
            ]
            loss = loss + self.rotation * F.cross_entropy(self.rotation_head(self.features(rotated)), turns)
        return loss

    def rotation_loss(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) the rotation head's cross-entropy averaged over the four quarter-turns of each image."""
        losses = []
        for k in range(4):
            logits = self.rotation_head(self.features(torch.rot90(x, k, (2, 3)))).float()
            losses.append(
                F.cross_entropy(logits, logits.new_full((x.shape[0],), k, dtype=torch.long), reduction="none")
            )
        return torch.stack(losses).mean(0)

    def selected_features(self, x: torch.Tensor) -> torch.Tensor:
        """energy: (B, 1) energies; rotation: (B, 1) energies + rotation losses; knn: (B, D) L2-normalised
        penultimate features."""
        if self.score == "knn":
            return F.normalize(self.features(x).float(), dim=1)
        energy = -torch.logsumexp(self.logits(x).float(), dim=1, keepdim=True)
        if self.score == "rotation":
            return energy + self.rotation_loss(x)[:, None]
        return energy

    def _kth_distance(self, feats: torch.Tensor, leave_one_out: bool = False) -> torch.Tensor:
        d = torch.cdist(feats.float(), self.ref_bank)
        return d.topk(self.k + int(leave_one_out), dim=1, largest=False).values[:, -1]

    @torch.no_grad()
    def fit_reference(self, feats: torch.Tensor) -> None:
        """Put the train reals' 95th-percentile score at 0 (logit > 0: more unusual than 95% of them);
        knn also keeps `bank` of the reals' features (their own scores leave themselves out)."""
        if feats.shape[0] < 16 or not torch.isfinite(feats).all():
            raise ValueError(f"need >= 16 finite reference rows, got {feats.shape[0]}")
        if self.score == "knn":
            bank = self.ref_bank.shape[0]
            if feats.shape[0] < bank:
                raise ConfigError(
                    "model.reference_size",
                    f"the knn bank keeps {bank} train reals; got only {feats.shape[0]}",
                )
            self.ref_bank.copy_(feats[:bank].to(self.ref_bank))
            own = torch.cat([self._kth_distance(c, leave_one_out=True) for c in self.ref_bank.split(1024)])
        else:
            own = feats.flatten().float()
        self.ref_offset.fill_(float(torch.quantile(own, 0.95)))
        self.ref_fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.score == "knn":
            return self._kth_distance(self.selected_features(x)) - self.ref_offset
        return self.selected_features(x)[:, 0] - self.ref_offset
