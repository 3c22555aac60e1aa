"""Detection metrics of a PredictionTable: the numbers `cifake test` reports per source and per kind.

For every source (generator or real-photo set) and for all images together: accuracy at raw P(fake)
0.5 and at the validation threshold (overall, on reals and on fakes), negative log-likelihood of the
calibrated P(fake), AUROC, average precision, TPR at 1% and 5% FPR, expected calibration error
(torchmetrics' binary ECE: equal-width bins of P(fake), |mean P(fake) - fraction fake| weighted by bin
size) and mean confidence (mean of max(P, 1-P)). A source holds one class, so its ranking metrics
need the other class: a fake source is ranked against all real test images (or only a reference
source's), a real source against all fake ones (its images are the negatives, whose scores set the
FPR thresholds). Every function takes the table; ranking metrics rank its logits.
"""

from __future__ import annotations

import math

import torch
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
    binary_sensitivity_at_specificity,
)

from ..data.layout import CIFAR10_CLASSES
from ..models.calibration import ece
from .table import PredictionTable

COLUMNS = [
    "source", "label", "n", "accuracy", "real_acc", "fake_acc", "acc@thr", "real_acc@thr", "fake_acc@thr",
    "auroc", "ap", "tpr@1%fpr", "tpr@5%fpr", "ece", "nll", "mean_conf", "mean_p_fake",
]  # fmt: skip
UNSEEN_COLUMNS = [
    "source", "n", "auroc_vs_test_real", "ap_vs_test_real", "auroc_vs_ood_real", "ap_vs_ood_real",
    "tpr@1%fpr_ood_real", "tpr@5%fpr_ood_real", "detected@thr", "detected@0.5",
]  # fmt: skip
NAN_RANKING = {"auroc": math.nan, "ap": math.nan, "tpr@1%fpr": math.nan, "tpr@5%fpr": math.nan}


def rank_score(score: torch.Tensor) -> torch.Tensor:
    """A monotone map of any score (logits) onto [0, 1] that keeps ties and never saturates: the dense
    rank over all values, divided by the number of distinct values - 1.

    Ranking metrics depend only on the order of the scores, but torchmetrics takes probabilities: a
    sigmoid of large or sharpened logits rounds to exactly 0 or 1 in float32 and turns distinct scores
    into ties (a calibrated temperature of 0.05 made every AUROC 0.5 that way)."""
    _, inverse = torch.unique(score.double(), return_inverse=True)
    top = max(int(inverse.max()) if inverse.numel() else 0, 1)
    return inverse.double().div(top).float()


def ranking(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """AUROC, AP and TPR at 1% / 5% FPR of scores `fake` (positives) against `real` (negatives); nan
    without both."""
    if not len(fake) or not len(real):
        return dict(NAN_RANKING)
    rank = rank_score(torch.cat([fake, real]))
    label = torch.cat([torch.ones(len(fake)), torch.zeros(len(real))]).long()
    tpr = {f: binary_sensitivity_at_specificity(rank, label, min_specificity=1 - f)[0] for f in (0.01, 0.05)}
    return {
        "auroc": float(binary_auroc(rank, label)),
        "ap": float(binary_average_precision(rank, label)),
        "tpr@1%fpr": float(tpr[0.01]),
        "tpr@5%fpr": float(tpr[0.05]),
    }


def _accuracies(pred: torch.Tensor, label: torch.Tensor, suffix: str = "") -> dict[str, float]:
    right = (pred.long() == label).float()
    out = {f"acc{suffix}" if suffix else "accuracy": float(right.mean())}
    for name, v in (("real", 0), ("fake", 1)):
        out[f"{name}_acc{suffix}"] = float(right[label == v].mean()) if (label == v).any() else math.nan
    return out


def group_metrics(t: PredictionTable, ece_bins: int = 15) -> dict[str, float]:
    """Accuracy (raw P(fake) >= 0.5, and `@thr`: the validation threshold), calibration and confidence
    of the table's rows (any class mix); ECE, NLL and confidences are of the calibrated P(fake)."""
    prob, label = t.prob, t.label
    return {
        "n": len(t),
        **_accuracies(t.decision_at(0.5), label),
        **_accuracies(t.decision, label, "@thr"),
        "ece": ece(prob, label, ece_bins),
        "nll": nll(prob, label),
        "mean_conf": float(torch.maximum(prob, 1 - prob).mean()),
        "mean_p_fake": float(prob.mean()),
    }


def nll(prob: torch.Tensor, label: torch.Tensor) -> float:
    """Negative log-likelihood of probabilities as reported (clamped at the float32 floor)."""
    p = prob.double().clamp(1e-7, 1 - 1e-7)
    return float(torch.nn.functional.binary_cross_entropy(p, label.double()))


def _source_index(t: PredictionTable, name: str | None, what: str) -> int | None:
    names = list(t.manifest.source_names)
    if name is not None and name not in names:
        raise ValueError(f"{what} source {name!r} is not one of {names}")
    return None if name is None else names.index(name)


def source_table(
    t: PredictionTable,
    ece_bins: int = 15,
    reference_real: str | None = None,
    reference_fake: str | None = None,
) -> list[dict]:
    """One row per source present in the table, then an "all" row.

    A one-class source is ranked against the images of the other class: all of them, or only those of
    `reference_real` / `reference_fake` (e.g. the in-distribution test folders, so that an unseen
    generator's row does not depend on which other unseen generators happen to be in the table).
    """
    ref = {0: _source_index(t, reference_real, "reference"), 1: _source_index(t, reference_fake, "reference")}
    names, label, source, logit = t.manifest.source_names, t.label, t.source, t.logit
    rows = []
    for s in sorted(set(source.tolist())):
        sel = source == s
        y = label[sel]
        labels = sorted(set(y.tolist()))
        row = {"source": names[s], "label": "/".join("fake" if v else "real" for v in labels)}
        row.update(group_metrics(t.select(sel), ece_bins))
        if len(labels) == 2:
            row.update(ranking(logit[sel][y == 1], logit[sel][y == 0]))
        else:
            other_cls = 1 - labels[0]
            other = label == other_cls
            if ref[other_cls] is not None:
                other &= source == ref[other_cls]
            mine, theirs = logit[sel], logit[other]
            row.update(ranking(mine, theirs) if other_cls == 0 else ranking(theirs, mine))
        rows.append(row)
    rows.append(
        {"source": "all", "label": "real/fake", **group_metrics(t, ece_bins), **ranking(logit[label == 1], logit[label == 0])}
    )  # fmt: skip
    return rows


def per_class_accuracy(t: PredictionTable) -> list[dict]:
    """Accuracy at calibrated P(fake) 0.5 per CIFAR-10 content class, for real and fake images separately (seed 002)."""
    pred, label, cc = (t.prob >= 0.5).long(), t.label, t.content_class
    rows = []
    for c in sorted(v for v in set(cc.tolist()) if v >= 0):
        row = {"class": _class_name(c)}
        for name, v in (("real", 0), ("fake", 1)):
            sel = (cc == c) & (label == v)
            row[f"{name}_n"] = int(sel.sum())
            row[f"{name}_accuracy"] = float((pred[sel] == v).float().mean()) if sel.any() else math.nan
        row["accuracy"] = float((pred[cc == c] == label[cc == c]).float().mean())
        rows.append(row)
    return rows


def real_bias_by_class(t: PredictionTable) -> list[dict]:
    """False positives on real images per content class (seed 002's bias question): how often, and how
    confidently, the detector calls a real photograph of each class fake (`fpr`: raw P(fake) >= 0.5;
    `fpr@thr`: the validation-chosen decision)."""
    prob, label, cc = t.prob, t.label, t.content_class
    at_half, decision = t.decision_at(0.5).float(), t.decision.float()
    rows = []
    for c in sorted(v for v in set(cc[label == 0].tolist()) if v >= 0):
        sel = (cc == c) & (label == 0)
        rows.append(
            {
                "class": _class_name(c),
                "n_real": int(sel.sum()),
                "fpr": float(at_half[sel].mean()),
                "fpr@thr": float(decision[sel].mean()),
                "mean_p_fake": float(prob[sel].mean()),
                "max_p_fake": float(prob[sel].max()),
            }
        )
    return rows


def _class_name(c: int) -> str:
    return CIFAR10_CLASSES[c] if c < len(CIFAR10_CLASSES) else str(c)


def _aggregate(rows: list[dict], how: str, fn) -> dict:
    out = {"source": how, "n": sum(r["n"] for r in rows)}
    for c in UNSEEN_COLUMNS[2:]:
        vals = [r[c] for r in rows if not math.isnan(r[c])]
        out[c] = fn(vals) if vals else math.nan
    return out


def unseen_summary(
    t: PredictionTable,
    seen: list[str] | None = None,
    reference_real: str | None = None,
    ood_real: list[str] | None = None,
) -> dict | None:
    """Generalisation summary over the fake sources whose generator kind was not in training.

    A fake source is *unseen* unless it is named in `seen`. Each unseen source is ranked against the
    in-distribution test reals (`reference_real`, else every real not in `ood_real`) and against real
    photographs the model has never seen (`ood_real`; default: every real source other than
    `reference_real`), where the TPR at 1%/5% FPR takes its thresholds from the OOD reals' scores.
    Returns per-source rows, their mean and worst (minimum) value per column, per generator kind (from
    the manifest's kinds) the mean and worst AUROC against the test reals and the share detected at the
    validation threshold, and the false-positive rate of every real source at the validation threshold
    and at 0.5; None without unseen sources.
    """
    names, label, source, logit = list(t.manifest.source_names), t.label, t.source, t.logit
    decision, at_half, kinds = t.decision, t.decision_at(0.5), t.manifest.kinds()
    present = sorted(set(source.tolist()))
    classes = {s: set(label[source == s].tolist()) for s in present}
    fakes = [s for s in present if classes[s] == {1}]
    reals = [s for s in present if classes[s] == {0}]
    seen = list(seen or [])
    for name in seen + list(ood_real or []):
        _source_index(t, name, "report")
    unseen = [s for s in fakes if names[s] not in seen]
    if not unseen:
        return None
    if ood_real is not None:
        ood = [names.index(n) for n in ood_real]
    else:  # without a reference every real is "test real"; none is declared out of distribution
        ood = [s for s in reals if names[s] != reference_real] if reference_real is not None else []
    ood_mask = torch.isin(source, torch.tensor(ood, dtype=torch.long))
    if reference_real is not None:
        id_real = source == names.index(reference_real)
    else:
        id_real = (label == 0) & ~ood_mask
    rows = []
    for s in unseen:
        sel = source == s
        vs_test, vs_ood = ranking(logit[sel], logit[id_real]), ranking(logit[sel], logit[ood_mask])
        rows.append(
            {
                "source": names[s],
                "n": int(sel.sum()),
                "auroc_vs_test_real": vs_test["auroc"],
                "ap_vs_test_real": vs_test["ap"],
                "auroc_vs_ood_real": vs_ood["auroc"],
                "ap_vs_ood_real": vs_ood["ap"],
                "tpr@1%fpr_ood_real": vs_ood["tpr@1%fpr"],
                "tpr@5%fpr_ood_real": vs_ood["tpr@5%fpr"],
                "detected@thr": float(decision[sel].float().mean()),
                "detected@0.5": float(at_half[sel].float().mean()),
            }
        )
    by_kind = []
    for kind in sorted({kinds.get(r["source"], "") for r in rows} - {""}):
        own = [r for r in rows if kinds.get(r["source"]) == kind]
        auc = [r["auroc_vs_test_real"] for r in own if not math.isnan(r["auroc_vs_test_real"])]
        n = sum(r["n"] for r in own)
        by_kind.append(
            {
                "kind": kind,
                "sources": len(own),
                "n": n,
                "mean_auroc": sum(auc) / len(auc) if auc else math.nan,
                "worst_auroc": min(auc) if auc else math.nan,
                "detected@thr": sum(r["detected@thr"] * r["n"] for r in own) / max(1, n),
            }
        )
    real_fpr = [
        {
            "source": names[s],
            "kind": "ood real" if s in ood else "test real",
            "n": int((source == s).sum()),
            "fpr@thr": float(decision[source == s].float().mean()),
            "fpr@0.5": float(at_half[source == s].float().mean()),
        }
        for s in reals
    ]
    return {
        "seen": [names[s] for s in fakes if names[s] in seen],
        "unseen": [names[s] for s in unseen],
        "ood_real": [names[s] for s in ood],
        "test_real": reference_real or "every real not in ood_real",
        "rows": rows,
        "mean": _aggregate(rows, "mean", lambda v: sum(v) / len(v)),
        "worst": _aggregate(rows, "worst", min),
        "by_kind": by_kind,
        "real_fpr": real_fpr,
    }


def cell(v) -> str:
    """One table cell: floats to 4 decimals, nan as n/a."""
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def markdown(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)\n"
    columns = columns or list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    out += ["| " + " | ".join(cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out) + "\n"
