"""RealOnlyDetector: train a one-class (real-only) backbone through `cifake fit`.

A real-only detector never sees a fake image in training, so no test generator can be "seen": it
models the train reals and scores how unlike them an image is. Lightning-wise it is an
`ImageClassifier` (same Detector, checkpoints, calibration, predictions table, `cifake test / predict /
compare / export`), with three differences:

- training minimises the backbone's own `loss(reals)` (e.g. the coding cost of `CodingCostDetector`)
  on the real images of each batch; the fakes the data module yields are dropped unseen, unless the
  backbone sets `uses_fakes` (`ContentEnergyDetector(outlier_exposure > 0)`: its loss then also takes the
  batch's fakes in training, and the detector is no longer real-only);
- before every validation the backbone's reference (e.g. the reals' Gaussian) is refitted with the
  current weights on a fixed, seeded sample of `reference_size` train reals (the same on every DDP rank);
- `val/loss` is the loss of the validation reals (lower = better model of reals), which is what
  checkpointing and early stopping should monitor. Validation AUROC against the data's own fakes is
  logged for information; the threshold rule (default fpr:0.05) uses validation reals only.

The backbone must provide `loss(x)` (or `loss(x, content_class)` when it sets `needs_content_class`),
`selected_features(x)` and `fit_reference(features)`, and its forward is the score (higher = more likely
fake): `models.coding.CodingCostDetector` (coding cost), `models.content.ContentEnergyDetector` (content),
`models.self_description.SelfDescriptionDetector` (FSD-style residual self-descriptions).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .classifier import ImageClassifier


class RealOnlyDetector(ImageClassifier):
    """ImageClassifier for real-only backbones (see module docstring).

    Args:
        backbone: a real-only model (`loss`, `selected_features`, `fit_reference`; forward = score).
        normalize: none (default): the backbone codes the [0, 1] pixels themselves.
        reference_size: train reals the reference is fitted on before each validation.
        calibration, threshold: as ImageClassifier; the defaults (none, fpr:0.05) keep the score as the
            logit and choose the threshold on validation reals alone.
        Other arguments (optimizer, scheduler, compile, ...) as ImageClassifier.
    """

    def __init__(
        self,
        backbone: nn.Module,
        normalize: str = "none",
        channels_last: bool = False,
        calibration: str = "none",
        threshold: str | float = "fpr:0.05",
        reference_size: int = 2048,
        **kwargs,
    ) -> None:
        super().__init__(
            backbone,
            normalize=normalize,
            channels_last=channels_last,
            calibration=calibration,
            threshold=threshold,
            **kwargs,
        )
        for method in ("loss", "selected_features", "fit_reference"):
            if not callable(getattr(backbone, method, None)):
                raise ConfigError(
                    "model.backbone",
                    f"{type(backbone).__name__} is not a real-only model (it has no {method}()); "
                    "use cifake_lightning.training.ImageClassifier for supervised backbones",
                )
        if reference_size < 16:
            raise ConfigError("model.reference_size", f"must be >= 16, got {reference_size}")
        self.reference_size = reference_size

    @property
    def trains_on_fakes(self) -> bool:
        """Whether training took the data's fakes (outlier exposure); otherwise every fake is unseen."""
        return bool(getattr(self.backbone, "uses_fakes", False))

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.detector.normalize(self.detector.preprocess(x) if self.detector.preprocess else x)

    def _real_loss(self, batch, with_fakes: bool = False) -> tuple[torch.Tensor, int]:
        """The backbone's loss of the batch's reals (and, in training, of its fakes if it uses them)."""
        real = batch["label"] == 0
        reals = batch["image"][real]
        if reals.shape[0] == 0:  # a batch of fakes only: nothing to learn, a zero that still backpropagates
            return sum(p.sum() for p in self.backbone.parameters()) * 0.0, 0
        if getattr(self.backbone, "needs_content_class", False):  # e.g. models.content: classes of the reals
            classes = batch["content_class"][real]
            if not self.training and bool((classes < 0).any()):
                return None, 0  # test data without content classes (an OOD set): scores only, no loss
            if with_fakes and getattr(self.backbone, "uses_fakes", False):
                fakes = self._inputs(batch["image"][batch["label"] == 1])
                return self.backbone.loss(self._inputs(reals), classes, fakes), reals.shape[0]
            return self.backbone.loss(self._inputs(reals), classes), reals.shape[0]
        return self.backbone.loss(self._inputs(reals)), reals.shape[0]

    def training_step(self, batch, batch_idx):
        loss, n = self._real_loss(batch, with_fakes=True)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=max(n, 1))
        return loss

    def _eval_loss(self, batch):
        """The reals' loss (val/loss: how well the reals are modelled) beside every image's score."""
        loss, n = self._real_loss(batch)
        return loss, n, self(batch["image"]).float(), batch["label"].long()

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self.fit_reference()

    @torch.no_grad()
    def fit_reference(self) -> None:
        """Refit the backbone's reference on a seeded sample of train reals with the current weights."""
        dm = self.trainer.datamodule
        train = dm.decoded("train")
        reals = torch.nonzero(train.labels == 0).flatten()
        if reals.numel() < 16:
            raise ConfigError("data", f"the training split has {reals.numel()} real images; need >= 16")
        g = torch.Generator().manual_seed(0)
        pick = reals[torch.randperm(reals.numel(), generator=g)[: self.reference_size]]
        was_training = self.training
        self.eval()
        feats = []
        for i in range(0, pick.numel(), 256):
            x = train.images[pick[i : i + 256]].to(self.device).float().div_(255.0)
            feats.append(self.backbone.selected_features(self._inputs(x)).float())
        self.backbone.fit_reference(torch.cat(feats).cpu())
        self.train(was_training)
