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
    "acc@thr",
    "real_acc@thr",
    "fake_acc@thr",
    "auroc",
    "ap",
    "tpr@1%fpr",
    "tpr@5%fpr",
    "ece",
    "nll",
    "mean_conf",
    "mean_p_fake",
]


def rank_score(score: torch.Tensor) -> torch.Tensor:
    """A monotone map of any score (logits) onto [0, 1] that keeps ties and never saturates: the dense
    rank over all values, divided by the number of distinct values - 1.

    Ranking metrics (AUROC, AP, TPR at a fixed FPR) depend only on the order of the scores, but
    torchmetrics takes probabilities: a sigmoid of large or sharpened logits rounds to exactly 0 or 1
    in float32 and turns distinct scores into ties (a calibrated temperature of 0.05 made every AUROC
    0.5 that way). Ranks keep the order exactly."""
    _, inverse = torch.unique(score.double(), return_inverse=True)
    top = max(int(inverse.max()) if inverse.numel() else 0, 1)
    return inverse.double().div(top).float()


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


def _accuracies(pred: torch.Tensor, label: torch.Tensor, suffix: str = "") -> dict[str, float]:
    right = (pred.long() == label).float()
    out = {f"accuracy{suffix}" if not suffix else f"acc{suffix}": float(right.mean())}
    for name, v in (("real", 0), ("fake", 1)):
        out[f"{name}_acc{suffix}"] = float(right[label == v].mean()) if (label == v).any() else math.nan
    return out


def group_metrics(
    prob: torch.Tensor,
    label: torch.Tensor,
    ece_bins: int = 15,
    raw_prob: torch.Tensor | None = None,
    decision: torch.Tensor | None = None,
) -> dict[str, float]:
    """Accuracy, calibration and confidence of one group of predictions (any class mix).

    `accuracy`, `real_acc`, `fake_acc` use the fixed threshold 0.5 on the raw P(fake) (`raw_prob`,
    default `prob`); `acc@thr`, `real_acc@thr`, `fake_acc@thr` use `decision` (the validation-chosen
    threshold's 0/1 calls) when given. ECE, NLL and confidences are of `prob` (calibrated if it is).
    """
    prob, label = prob.float().cpu(), label.long().cpu()
    raw = prob if raw_prob is None else raw_prob.float().cpu()
    conf = torch.maximum(prob, 1 - prob)
    p = prob.clamp(1e-7, 1 - 1e-7)  # NLL of the probabilities as reported (float32 floor)
    out = {"n": int(label.numel()), **_accuracies((raw >= 0.5).long(), label)}
    if decision is not None:
        out.update(_accuracies(decision.cpu(), label, "@thr"))
    out.update(
        {
            "ece": float(binary_calibration_error(prob, label, n_bins=ece_bins, norm="l1")),
            "nll": float(torch.nn.functional.binary_cross_entropy(p, label.float())),
            "mean_conf": float(conf.mean()),
            "mean_p_fake": float(prob.mean()),
        }
    )
    return out


def source_table(
    prob: torch.Tensor,
    label: torch.Tensor,
    source: torch.Tensor,
    source_names: list[str],
    ece_bins: int = 15,
    reference_real: str | None = None,
    reference_fake: str | None = None,
    raw_prob: torch.Tensor | None = None,
    decision: torch.Tensor | None = None,
    score: torch.Tensor | None = None,
) -> list[dict]:
    """One row per source present in the predictions, then an "all" row (see `group_metrics` for
    which threshold each accuracy uses). Ranking metrics use `score` (the logits; default `prob`)
    through `rank_score`, so saturated probabilities never tie.

    A one-class source is ranked against the images of the other class: all of them, or only those of
    `reference_real` / `reference_fake` (e.g. the in-distribution test folders, so that an unseen
    generator's row does not depend on which other unseen generators happen to be in the table).
    """
    prob, label, source = prob.float().cpu(), label.long().cpu(), source.long().cpu()
    rank = rank_score((prob if score is None else score).float().cpu())
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
        row.update(
            group_metrics(
                p,
                y,
                ece_bins,
                None if raw_prob is None else raw_prob[sel],
                None if decision is None else decision[sel],
            )
        )
        if len(labels) == 2:
            row.update(_both_class_metrics(rank[sel], y))
        else:
            other_cls = 1 - labels[0]
            other = label == other_cls
            if ref[other_cls] is not None:
                other &= source == source_names.index(ref[other_cls])
            pp = torch.cat([rank[sel], rank[other]])
            yy = torch.cat([y, label[other]])
            row.update(_both_class_metrics(pp, yy))
        rows.append(row)
    all_row = {"source": "all", "label": "real/fake"}
    all_row.update(group_metrics(prob, label, ece_bins, raw_prob, decision))
    all_row.update(_both_class_metrics(rank, label))
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


def real_bias_by_class(
    prob: torch.Tensor,
    label: torch.Tensor,
    content_class: torch.Tensor,
    raw_prob: torch.Tensor | None = None,
    decision: torch.Tensor | None = None,
) -> list[dict]:
    """False positives on real images per content class (seed 002's bias question): how often, and how
    confidently, the detector calls a real photograph of each CIFAR-10 class fake (`fpr`: raw P(fake)
    >= 0.5; `fpr@thr`: the validation-chosen decision, when given)."""
    from ..data.layout import CIFAR10_CLASSES

    prob, label, cc = prob.float().cpu(), label.long().cpu(), content_class.long().cpu()
    raw = prob if raw_prob is None else raw_prob.float().cpu()
    rows = []
    for c in sorted(v for v in set(cc[label == 0].tolist()) if v >= 0):
        sel = (cc == c) & (label == 0)
        p = prob[sel]
        row = {
            "class": CIFAR10_CLASSES[c] if c < len(CIFAR10_CLASSES) else str(c),
            "n_real": int(sel.sum()),
            "fpr": float((raw[sel] >= 0.5).float().mean()),
        }
        if decision is not None:
            row["fpr@thr"] = float(decision.cpu()[sel].float().mean())
        row.update({"mean_p_fake": float(p.mean()), "max_p_fake": float(p.max())})
        rows.append(row)
    return rows


UNSEEN_COLUMNS = [
    "source",
    "n",
    "auroc_vs_test_real",
    "ap_vs_test_real",
    "auroc_vs_ood_real",
    "ap_vs_ood_real",
    "tpr@1%fpr_ood_real",
    "tpr@5%fpr_ood_real",
    "detected@thr",
    "detected@0.5",
]


def unseen_summary(
    prob: torch.Tensor,
    label: torch.Tensor,
    source: torch.Tensor,
    source_names: list[str],
    decision: torch.Tensor,
    raw_prob: torch.Tensor | None = None,
    seen: list[str] | None = None,
    reference_real: str | None = None,
    ood_real: list[str] | None = None,
    score: torch.Tensor | None = None,
    kinds: dict[str, str] | None = None,
) -> dict | None:
    """Generalisation summary over the fake sources whose generator kind was not in training.

    A fake source is *unseen* unless it is named in `seen`. Each unseen source is ranked against the
    in-distribution test reals (`reference_real`, else every real not in `ood_real`) and against real
    photographs the model has never seen (`ood_real`; default: every real source other than
    `reference_real`), where the TPR at 1%/5% FPR takes its thresholds from the OOD reals' scores.
    Returns per-source rows, their mean and worst (minimum) value per column, per generator kind (when
    `kinds` maps source names to kinds) the mean and worst AUROC against the test reals and the share
    detected at the validation threshold, and the false-positive rate of every real source at the
    validation threshold and at 0.5; None without unseen sources.
    """
    prob, label, source = prob.float().cpu(), label.long().cpu(), source.long().cpu()
    raw = prob if raw_prob is None else raw_prob.float().cpu()
    rank = rank_score((prob if score is None else score).float().cpu())
    decision = decision.long().cpu()
    present = sorted(set(source.tolist()))
    one_class = {s: sorted(set(label[source == s].tolist())) for s in present}
    fakes = [s for s in present if one_class[s] == [1]]
    reals = [s for s in present if one_class[s] == [0]]
    seen = list(seen or [])
    for name in seen + list(ood_real or []):
        if name not in source_names:
            raise ValueError(f"report source {name!r} is not one of {list(source_names)}")
    unseen = [s for s in fakes if source_names[s] not in seen]
    if not unseen:
        return None
    if (
        ood_real is None
    ):  # without a reference every real is "test real"; none is declared out of distribution
        ood = [s for s in reals if source_names[s] != reference_real] if reference_real is not None else []
    else:
        ood = [source_names.index(n) for n in ood_real]
    if reference_real is not None:
        id_real = source == source_names.index(reference_real)
    else:
        id_real = (label == 0) & ~torch.isin(source, torch.tensor(ood, dtype=torch.long))
    ood_mask = (
        torch.isin(source, torch.tensor(ood, dtype=torch.long))
        if ood
        else torch.zeros_like(label, dtype=torch.bool)
    )
    rows = []
    for s in unseen:
        sel = source == s
        p = rank[sel]
        row = {"source": source_names[s], "n": int(sel.sum())}
        for tag, neg in (("test_real", id_real), ("ood_real", ood_mask)):
            if neg.any():
                pp = torch.cat([p, rank[neg]])
                yy = torch.cat(
                    [torch.ones(len(p), dtype=torch.long), torch.zeros(int(neg.sum()), dtype=torch.long)]
                )
                m = _both_class_metrics(pp, yy)
                row[f"auroc_vs_{tag}"], row[f"ap_vs_{tag}"] = m["auroc"], m["ap"]
                if tag == "ood_real":
                    row["tpr@1%fpr_ood_real"], row["tpr@5%fpr_ood_real"] = m["tpr@1%fpr"], m["tpr@5%fpr"]
            else:
                row[f"auroc_vs_{tag}"] = row[f"ap_vs_{tag}"] = math.nan
                if tag == "ood_real":
                    row["tpr@1%fpr_ood_real"] = row["tpr@5%fpr_ood_real"] = math.nan
        row["detected@thr"] = float(decision[sel].float().mean())
        row["detected@0.5"] = float((raw[sel] >= 0.5).float().mean())
        rows.append(row)
    numeric = [c for c in UNSEEN_COLUMNS if c not in ("source", "n")]
    agg = {}
    for how, fn in (("mean", lambda v: sum(v) / len(v)), ("worst", min)):
        agg[how] = {"source": how, "n": sum(r["n"] for r in rows)}
        for c in numeric:
            vals = [r[c] for r in rows if not math.isnan(r[c])]
            agg[how][c] = fn(vals) if vals else math.nan
    by_kind = []
    for kind in sorted({(kinds or {}).get(r["source"], "") for r in rows} - {""}):
        own = [r for r in rows if (kinds or {}).get(r["source"]) == kind]
        auc = [r["auroc_vs_test_real"] for r in own if not math.isnan(r["auroc_vs_test_real"])]
        by_kind.append(
            {
                "kind": kind,
                "sources": len(own),
                "n": sum(r["n"] for r in own),
                "mean_auroc": sum(auc) / len(auc) if auc else math.nan,
                "worst_auroc": min(auc) if auc else math.nan,
                "detected@thr": sum(r["detected@thr"] * r["n"] for r in own)
                / max(1, sum(r["n"] for r in own)),
            }
        )
    real_fpr = []
    for s in reals:
        sel = source == s
        real_fpr.append(
            {
                "source": source_names[s],
                "kind": "ood real" if s in ood else "test real",
                "n": int(sel.sum()),
                "fpr@thr": float(decision[sel].float().mean()),
                "fpr@0.5": float((raw[sel] >= 0.5).float().mean()),
            }
        )
    return {
        "seen": [source_names[s] for s in fakes if source_names[s] in seen],
        "unseen": [source_names[s] for s in unseen],
        "ood_real": [source_names[s] for s in ood],
        "test_real": reference_real or "every real not in ood_real",
        "rows": rows,
        "mean": agg["mean"],
        "worst": agg["worst"],
        "by_kind": by_kind,
        "real_fpr": real_fpr,
    }
