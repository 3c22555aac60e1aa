"""FusionDetector: fit a `models.fusion.ScoreFusion` of trained detectors on validation data only.

Nothing is trained by gradient: `cifake fit` runs one validation pass in which the members score the
validation images, the fusion's standardisation (and, for rule logistic, its weights) is fitted on
those scores, and the threshold is chosen on the fused validation scores as for any ImageClassifier.
The checkpoint is then an ordinary one: `cifake test / predict / compare` read it.

The validation images must be images no member trained on, or the members' scores of them are
optimistic and the threshold lets through more false positives than it promises. A member's split is
`stratified_split(train, val_size, seed)`, so the same seed with a val_size no larger than every
member's gives a subset of every member's held-out images; this is checked against each member's saved
config.yaml (beside its checkpoints folder) when fitting starts, and refused naming the option.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ..errors import ConfigError
from ..models.fusion import ScoreFusion
from .classifier import ImageClassifier


class FusionDetector(ImageClassifier):
    """ImageClassifier around a ScoreFusion, fitted on the validation split (see module docstring).

    Args:
        backbone: a `models.fusion.ScoreFusion` naming the member checkpoints and the rule.
        calibration, threshold: as ImageClassifier; defaults none and fpr:0.05 (validation reals).
        Other arguments as ImageClassifier (normalize must stay none: each member normalises itself).
    """

    def __init__(
        self,
        backbone: nn.Module,
        normalize: str = "none",
        channels_last: bool = False,
        preprocess: nn.Module | None = None,
        calibration: str = "none",
        threshold: str | float = "fpr:0.05",
        **kwargs,
    ) -> None:
        if not isinstance(backbone, ScoreFusion):
            raise ConfigError(
                "model.backbone",
                f"FusionDetector fuses a models.fusion.ScoreFusion, got {type(backbone).__name__}",
            )
        if normalize != "none" or preprocess is not None:
            raise ConfigError(
                "model.normalize",
                f"must be none, without preprocess: each member normalises itself (got {normalize!r}, {preprocess!r})",
            )
        super().__init__(
            backbone,
            normalize=normalize,
            channels_last=channels_last,
            calibration=calibration,
            threshold=threshold,
            **kwargs,
        )
        self._member_parts: list[tuple[torch.Tensor, torch.Tensor]] = []

    def configure_optimizers(self):
        return None  # nothing is trained by gradient

    def training_step(self, batch, batch_idx):
        return None

    def on_fit_start(self) -> None:
        check_held_out(self.trainer.datamodule, self.backbone.member_paths)

    def validation_step(self, batch, batch_idx):
        logits = self.backbone.member_logits(batch["image"])
        if not self.trainer.sanity_checking:
            self._member_parts.append((logits.detach().float(), batch["label"].detach().long()))  # on device
        return logits

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._member_parts = []

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._member_parts:
            self._member_parts = []
            return
        if self.trainer.world_size > 1:
            raise ConfigError("trainer.devices", "fusion is fitted on one device (it trains nothing)")
        members = torch.cat([p[0] for p in self._member_parts])  # on the module's device, as its buffers
        label = torch.cat([p[1] for p in self._member_parts])
        self._member_parts = []
        self.backbone.fit(members, label)
        fused = self.backbone.fuse(members)
        probs = torch.sigmoid(fused)
        self.val_metrics.update(probs, label)
        self.val_confusion.update(probs, label)
        self.log("val/loss", F.binary_cross_entropy_with_logits(fused, label.float()), prog_bar=True)
        self.log_dict(self.val_metrics.compute())
        self.val_metrics.reset()
        self._store_confusion("val")
        self.val_scores = {"logit": fused.cpu(), "label": label.cpu()}  # one device-to-host copy per epoch
        self._calibration = None


def check_held_out(datamodule, members: list[str]) -> None:
    """Refuse a fusion whose validation split may hold a member's training images (module docstring)."""
    seed, val_size = getattr(datamodule, "seed", None), getattr(datamodule, "val_size", None)
    root = Path(str(getattr(datamodule, "root", ""))).name
    for member in members:
        config = Path(member).parent.parent / "config.yaml"
        if not config.is_file():
            warnings.warn(
                f"{member}: no config.yaml beside its checkpoints folder, so it cannot be checked that the "
                "fusion's validation images were held out from its training",
                stacklevel=2,
            )
            continue
        saved = yaml.safe_load(config.read_text()) or {}
        data = (saved.get("data") or {}).get("init_args") or {}
        their_seed, their_val = saved.get("seed_everything"), data.get("val_size")
        their_root = Path(str(data.get("root", ""))).name
        if their_root and root and their_root != root:
            raise ConfigError(
                "data.root", f"the fusion validates on {root!r}, member {member} on {their_root!r}"
            )
        if their_seed != seed:
            raise ConfigError(
                "seed_everything",
                f"is {seed}, member {member} was trained with {their_seed}: its validation split differs, so "
                "the fusion would be fitted on images it trained on",
            )
        smaller = isinstance(val_size, int) and isinstance(their_val, int) and val_size <= their_val
        if not (smaller or val_size == their_val):
            raise ConfigError(
                "data.val_size",
                f"is {val_size}, member {member} held out {their_val}: use a val_size no larger than every "
                "member's (same seed), so that every validation image was held out from every member",
            )
