"""Rebuild a trained detector as a plain nn.Module, without Lightning or jsonargparse (fast start-up).

`cifake predict FILES` needs only the network: preprocessing, normalisation and backbone, built from
the class specs the checkpoint's hyper-parameters hold, plus its calibration. Anything this cannot
rebuild (a class outside the project's allow-list, a nested spec it does not understand) falls back to
`models.checkpoint.load_classifier`, which goes through Lightning.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from ..evaluate.calibration import CALIBRATION_VERSION, IDENTITY, Calibration, fit
from .normalize import Normalize


class Detector(nn.Module):
    """preprocess -> normalise -> backbone -> (B,) logits; what ImageClassifier.forward computes."""

    def __init__(self, backbone: nn.Module, normalize: str | nn.Module, preprocess: nn.Module | None) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.normalize = Normalize(normalize) if isinstance(normalize, str) else normalize
        self.backbone = backbone
        self.calibration: Calibration = IDENTITY

    @classmethod
    def of(cls, classifier) -> Detector:
        """The network of an ImageClassifier (shared modules, its calibration), without the LightningModule."""
        det = cls(classifier.backbone, classifier.normalize, classifier.preprocess)
        det.calibration = classifier.calibration
        return det

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preprocess is not None:
            x = self.preprocess(x)
        out = self.backbone(self.normalize(x))
        return out.reshape(out.shape[0])


def _build(spec):
    if not (isinstance(spec, dict) and "class_path" in spec):
        raise ValueError(f"not a class spec: {spec!r}")
    path = spec["class_path"]
    if not path.startswith("cifake_lightning.models."):
        raise ValueError(f"{path} is not a project model")
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    args = {k: (_build(v) if isinstance(v, dict) and "class_path" in v else v)
            for k, v in (spec.get("init_args") or {}).items()}  # fmt: skip
    return cls(**args)


def stored_calibration(ckpt: dict, method: str, rule) -> Calibration:
    """The checkpoint's calibration when it was fitted by this version with these options, else refit
    from its validation scores (identity without them)."""
    from ..evaluate.calibration import check_rule

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


def load_detector(path: str | Path, map_location="cpu") -> nn.Module:
    """A Detector (eval mode, `.calibration` set) from a `cifake fit` checkpoint; falls back to the
    Lightning loader for anything it cannot rebuild itself."""
    from .checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    hp = ckpt.get("hyper_parameters", {})
    try:
        backbone = _build(hp["backbone"])
        pre = _build(hp["preprocess"]) if hp.get("preprocess") else None
        det = Detector(backbone, hp.get("normalize", "cifar10"), pre)
        state = {
            k: v
            for k, v in ckpt["state_dict"].items()
            if k.split(".", 1)[0] in ("backbone", "preprocess", "normalize")
        }
        det.load_state_dict(state, strict=True)
    except (KeyError, ValueError, TypeError, ImportError, AttributeError, RuntimeError):
        from .checkpoint import load_classifier

        return load_classifier(path, map_location=map_location).eval()
    det.calibration = stored_calibration(
        ckpt, hp.get("calibration", "temperature"), hp.get("threshold", "fpr:0.01")
    )
    return det.to(map_location).eval()
