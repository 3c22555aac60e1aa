"""Per-source detection metrics: the table `cifake test` prints for in-distribution and OOD sources.

For every source (generator or real-photo set) and for all images together: accuracy at 0.5 (overall,
on real images and on fake images separately), negative log-likelihood of P(fake), AUROC,
average precision, TPR at 1% and 5% FPR, expected calibration error of P(fake) (torchmetrics' binary
ECE: 15 equal-width bins of P(fake) over [0, 1], |mean P(fake) - fraction fake| weighted by bin size)
and mean confidence (mean of max(P, 1-P)). A source holds one class, so its ranking metrics
need the other class: a fake source is scored against *all real test images* (the negatives), a real
source against *all fake test images* (its images are the negatives, whose scores set the FPR
thresholds). AUROC, AP, ECE and TPR at a fixed FPR all come from torchmetrics.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_calibration_error,
    binary_sensitivity_at_specificity,
)

COLUMNS = [
    "source",
    "label",
    "n",
    "accuracy",
    "real_acc",
    "fake_acc",
    "auroc",
    "ap",
    "tpr@1%fpr",
    "tpr@5%fpr",
    "ece",
    "nll",
    "mean_conf",
    "mean_p_fake",
]


def tpr_at_fpr(prob: torch.Tensor, label: torch.Tensor, fpr_target: float) -> float:
    """Highest TPR whose FPR does not exceed `fpr_target` (torchmetrics' sensitivity at specificity
    1 - fpr_target; nan without both classes)."""
    if label.min() == label.max():
        return math.nan
    tpr, _ = binary_sensitivity_at_specificity(prob.float(), label.long(), min_specificity=1.0 - fpr_target)
    return float(tpr)


def _both_class_metrics(prob: torch.Tensor, label: torch.Tensor) -> dict[str, float]:
    if label.min() == label.max():
        return {"auroc": math.nan, "ap": math.nan, "tpr@1%fpr": math.nan, "tpr@5%fpr": math.nan}
    return {
        "auroc": float(binary_auroc(prob, label)),
        "ap": float(binary_average_precision(prob, label)),
        "tpr@1%fpr": tpr_at_fpr(prob, label, 0.01),
        "tpr@5%fpr": tpr_at_fpr(prob, label, 0.05),
    }


def group_metrics(prob: torch.Tensor, label: torch.Tensor, ece_bins: int = 15) -> dict[str, float]:
    """Accuracy, calibration and confidence of one group of predictions (any class mix)."""
    prob, label = prob.float().cpu(), label.long().cpu()
    conf = torch.maximum(prob, 1 - prob)
    right = ((prob >= 0.5).long() == label).float()
    per_class = {
        f"{name}_acc": float(right[label == v].mean()) if (label == v).any() else math.nan
        for name, v in (("real", 0), ("fake", 1))
    }
    p = prob.clamp(1e-7, 1 - 1e-7)  # NLL of the probabilities as reported (float32 floor)
    return {
        "n": int(label.numel()),
        "accuracy": float(right.mean()),
        **per_class,
        "ece": float(binary_calibration_error(prob, label, n_bins=ece_bins, norm="l1")),
        "nll": float(torch.nn.functional.binary_cross_entropy(p, label.float())),
        "mean_conf": float(conf.mean()),
        "mean_p_fake": float(prob.mean()),
    }


def source_table(
    prob: torch.Tensor,
    label: torch.Tensor,
    source: torch.Tensor,
    source_names: list[str],
    ece_bins: int = 15,
    reference_real: str | None = None,
    reference_fake: str | None = None,
) -> list[dict]:
    """One row per source present in the predictions, then an "all" row.

    A one-class source is ranked against the images of the other class: all of them, or only those of
    `reference_real` / `reference_fake` (e.g. the in-distribution test folders, so that an unseen
    generator's row does not depend on which other unseen generators happen to be in the table).
    """
    prob, label, source = prob.float().cpu(), label.long().cpu(), source.long().cpu()
    ref = {0: reference_real, 1: reference_fake}
    for name in ref.values():
        if name is not None and name not in source_names:
            raise ValueError(f"reference source {name!r} is not one of {source_names}")
    rows = []
    for s in sorted(set(source.tolist())):
        sel = source == s
        p, y = prob[sel], label[sel]
        labels = sorted(set(y.tolist()))
        row = {
            "source": source_names[s] if s < len(source_names) else str(s),
            "label": "/".join("fake" if v else "real" for v in labels),
        }
        row.update(group_metrics(p, y, ece_bins))
        if len(labels) == 2:
            row.update(_both_class_metrics(p, y))
        else:
            other_cls = 1 - labels[0]
            other = label == other_cls
            if ref[other_cls] is not None:
                other &= source == source_names.index(ref[other_cls])
            pp = torch.cat([p, prob[other]])
            yy = torch.cat([y, label[other]])
            row.update(_both_class_metrics(pp, yy))
        rows.append(row)
    all_row = {"source": "all", "label": "real/fake"}
    all_row.update(group_metrics(prob, label, ece_bins))
    all_row.update(_both_class_metrics(prob, label))
    rows.append(all_row)
    return rows


def per_class_accuracy(prob: torch.Tensor, label: torch.Tensor, content_class: torch.Tensor) -> list[dict]:
    """Accuracy per CIFAR-10 content class, for real and fake images separately (bias analysis, seed 002)."""
    from ..data.layout import CIFAR10_CLASSES

    rows = []
    pred = (prob.float().cpu() >= 0.5).long()
    label, cc = label.long().cpu(), content_class.long().cpu()
    for c in sorted(v for v in set(cc.tolist()) if v >= 0):
        row = {"class": CIFAR10_CLASSES[c] if c < len(CIFAR10_CLASSES) else str(c)}
        for name, v in (("real", 0), ("fake", 1)):
            sel = (cc == c) & (label == v)
            row[f"{name}_n"] = int(sel.sum())
            row[f"{name}_accuracy"] = float((pred[sel] == v).float().mean()) if sel.any() else math.nan
        sel = cc == c
        row["accuracy"] = float((pred[sel] == label[sel]).float().mean())
        rows.append(row)
    return rows


def markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c, "")
            cells.append(
                "n/a"
                if isinstance(v, float) and math.isnan(v)
                else f"{v:.4f}"
                if isinstance(v, float)
                else str(v)
            )
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def real_bias_by_class(prob: torch.Tensor, label: torch.Tensor, content_class: torch.Tensor) -> list[dict]:
    """False positives on real images per content class (seed 002's bias question): how often, and how
    confidently, the detector calls a real photograph of each CIFAR-10 class fake (threshold 0.5)."""
    from ..data.layout import CIFAR10_CLASSES

    prob, label, cc = prob.float().cpu(), label.long().cpu(), content_class.long().cpu()
    rows = []
    for c in sorted(v for v in set(cc[label == 0].tolist()) if v >= 0):
        sel = (cc == c) & (label == 0)
        p = prob[sel]
        rows.append(
            {
                "class": CIFAR10_CLASSES[c] if c < len(CIFAR10_CLASSES) else str(c),
                "n_real": int(sel.sum()),
                "fpr": float((p >= 0.5).float().mean()),
                "mean_p_fake": float(p.mean()),
                "max_p_fake": float(p.max()),
            }
        )
    return rows
