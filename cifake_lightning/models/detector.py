"""Detector: the one inference path, a plain torch module from [0, 1] pixels to a calibrated score.

    images in [0, 1] -> preprocess (optional, e.g. NPR residuals) -> normalise -> backbone -> logit
                                                                           calibration -> P(fake), decision

Training wraps it (`ImageClassifier` holds one as `.detector`, as anomalib's Lightning models hold their
torch model); `cifake test` / `predict --data` run it inside Lightning, `cifake predict FILES`, `export`
and `explain` load it with `Detector.from_checkpoint` without Lightning. The checkpoint's saved config
is instantiated by jsonargparse, the same path LightningCLI trains with, so there is one way to build a
model from its config.
"""

from __future__ import annotations

from pathlib import Path

import torch
from jsonargparse import ArgumentParser
from torch import nn

from ..errors import CheckpointError
from .calibration import CALIBRATION_VERSION, IDENTITY, Calibration, check_rule, fit
from .checkpoint import read_checkpoint
from .normalize import Normalize


class Detector(nn.Module):
    """preprocess -> normalise -> backbone: (B, 3, H, W) float images in [0, 1] -> (B,) logits.

    `calibration` (models/calibration.py, fitted on validation logits) turns logits into P(fake) and
    the decision at the validation-chosen threshold; `score` applies it.
    """

    def __init__(
        self,
        backbone: nn.Module,
        normalize: str = "cifar10",
        preprocess: nn.Module | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.normalize = Normalize(normalize)
        self.backbone = backbone.to(memory_format=torch.channels_last) if channels_last else backbone
        self.channels_last = channels_last
        self.calibration: Calibration = IDENTITY

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        x = self.normalize(x)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out = self.backbone(x)
        return out.reshape(out.shape[0])

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logit, calibrated P(fake), is_fake at the validation-chosen threshold) of a batch."""
        logit = self(x).float()
        return logit, self.calibration.prob(logit), self.calibration.decide(logit).bool()

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str | torch.device = "cpu") -> Detector:
        """The detector a `cifake fit` checkpoint holds, in eval mode with its calibration; no Lightning."""
        ckpt = read_checkpoint(path)
        hp = ckpt.get("hyper_parameters", {})
        if "backbone" not in hp:
            raise CheckpointError("has no saved model config (it was not written by `cifake fit`)", path)
        built = _instantiate(hp, path)
        det = cls(built["backbone"], hp.get("normalize", "cifar10"), built["preprocess"])
        prefix = "detector."
        state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
        try:
            det.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise CheckpointError(
                f"does not fit its own model config ({str(e).splitlines()[0]})", path
            ) from None
        det.calibration = stored_calibration(
            ckpt, hp.get("calibration", "temperature"), hp.get("threshold", "fpr:0.01")
        )
        return det.to(map_location).eval()


def _instantiate(hp: dict, path) -> dict:
    """backbone and preprocess modules from a checkpoint's saved class specs, by jsonargparse."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--backbone", type=nn.Module)
    parser.add_argument("--preprocess", type=nn.Module | None, default=None)
    try:
        cfg = parser.parse_object({"backbone": hp["backbone"], "preprocess": hp.get("preprocess")})
        return parser.instantiate(cfg)
    except Exception as e:  # noqa: BLE001 - jsonargparse reports any constructor failure as its own error
        first = (str(e).splitlines() or [""])[0][:200]
        raise CheckpointError(f"cannot rebuild the model it was saved from ({first})", path) from None


def stored_calibration(ckpt: dict, method: str, rule) -> Calibration:
    """The checkpoint's calibration when it was fitted by this version with these options, else refit
    from its validation scores (identity without them)."""
    stored = ckpt.get("cifake_calibration")
    if (
        isinstance(stored, dict)
        and stored.get("version") == CALIBRATION_VERSION
        and stored.get("method") == method
        and stored.get("rule") == str(check_rule(rule))
    ):
        return Calibration.from_dict(stored)
    scores = ckpt.get("cifake_val_scores")
    if isinstance(scores, dict) and {"logit", "label"} <= set(scores):
        return fit(scores["logit"], scores["label"], method, rule)
    return IDENTITY
