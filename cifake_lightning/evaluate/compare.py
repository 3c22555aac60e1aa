"""Paired comparison of two detectors on the same images: is one really better, or is it seed noise?

Two results of `cifake test` on the same data (same content hash) are paired image by image:
- decisions: McNemar's exact test on the discordant pairs (images one model gets right and the other
  wrong), the standard paired test for two classifiers (Dietterich 1998);
- ranking: a paired bootstrap of the AUROC difference (images resampled with replacement, both models
  scored on the same resample; torchmetrics' AUROC), reported as the difference and its 95% interval.

Pure functions of two PredictionTables (read from `cifake test` result folders by PredictionTable.read).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torchmetrics.functional.classification import binary_auroc

from ..errors import ConfigError
from .metrics import rank_score
from .table import PredictionTable


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b (A right, B wrong) and c (A wrong, B right)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    # P(X <= k), X ~ Binomial(n, 1/2), summed in log space (2**n overflows a float beyond n = 1023)
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2)
        for i in range(k + 1)
    ]
    top = max(logs)
    tail = math.exp(top) * sum(math.exp(v - top) for v in logs)
    return min(1.0, 2.0 * tail)


def compare_tables(a: PredictionTable, b: PredictionTable, n_boot: int = 1000, seed: int = 0) -> dict:
    """Paired comparison of two tables of the same labelled images, row for row (see module
    docstring): decisions at each table's own validation-chosen threshold, AUROCs of their logits."""
    if not torch.equal(a.index, b.index) or not torch.equal(a.label, b.label):
        raise ValueError("the two tables do not hold the same images and labels")
    label = a.label
    rank_a, rank_b = rank_score(a.logit), rank_score(b.logit)
    right_a, right_b = a.decision == label, b.decision == label
    n_ab, n_ba = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    out = {
        "n": len(label),
        "accuracy_a": float(right_a.float().mean()),
        "accuracy_b": float(right_b.float().mean()),
        "a_right_b_wrong": n_ab,
        "a_wrong_b_right": n_ba,
        "mcnemar_p": mcnemar_exact(n_ab, n_ba),
        "auroc_a": math.nan,
        "auroc_b": math.nan,
        "auroc_diff": math.nan,
        "auroc_diff_ci95": [math.nan, math.nan],
    }
    if label.min() == label.max():
        return out
    auc_a, auc_b = float(binary_auroc(rank_a, label)), float(binary_auroc(rank_b, label))
    g = torch.Generator().manual_seed(seed)
    diffs = []
    for _ in range(n_boot):
        idx = torch.randint(0, len(label), (len(label),), generator=g)
        y = label[idx]
        if y.min() != y.max():
            diffs.append(float(binary_auroc(rank_a[idx], y)) - float(binary_auroc(rank_b[idx], y)))
    d = torch.tensor(diffs)
    lo, hi = (torch.quantile(d, torch.tensor([0.025, 0.975])).tolist()) if len(d) else (math.nan, math.nan)
    out.update(
        auroc_a=auc_a,
        auroc_b=auc_b,
        auroc_diff=auc_a - auc_b,
        auroc_diff_ci95=[lo, hi],
        bootstrap_resamples=len(diffs),
    )
    return out


def compare_results(
    a: str | Path, b: str | Path, n_boot: int = 1000, seed: int = 0, sources: list[str] | None = None
) -> dict:
    """Compare two `cifake test` result folders of the same data (refused when the data differ).

    Each folder is read as a PredictionTable; decisions use each table's own validation-chosen
    threshold on its calibrated P(fake), AUROCs rank the logits. `sources` restricts the comparison to
    those sources' rows (e.g. the unseen generators plus the test reals)."""
    ta, tb = (_read(f) for f in (a, b))
    hash_a, hash_b = ta.manifest.content_hash, tb.manifest.content_hash
    if not hash_a or hash_a != hash_b or not torch.equal(ta.index, tb.index):
        raise ConfigError(
            "compare",
            f"the two results were not measured on the same images ({hash_a[:10] or '?'} vs {hash_b[:10] or '?'}); "
            "test both checkpoints on the same data first",
        )
    if not torch.equal(ta.label, tb.label):
        raise ConfigError("compare", "the two results disagree on the labels of the same images")
    if (ta.label < 0).any():
        raise ConfigError("compare", "the results hold unlabelled images: nothing to compare on")
    if sources:
        present = set(ta.source_names)
        missing = [x for x in sources if x not in present]
        if missing:
            raise ConfigError(
                "compare --source", f"{missing} not in the results (sources: {sorted(present)})"
            )
        keep = torch.tensor([n in sources for n in ta.source_names], dtype=torch.bool)
        ta, tb = ta.select(keep), tb.select(keep)
    out = compare_tables(ta, tb, n_boot, seed)
    out["threshold_a"], out["threshold_b"] = ta.threshold, tb.threshold
    out["sources"] = sources or "all"
    out["a"] = {"folder": str(a), "checkpoint": ta.checkpoint}
    out["b"] = {"folder": str(b), "checkpoint": tb.checkpoint}
    out["data_content_hash"] = hash_a
    return out


def _read(folder: str | Path) -> PredictionTable:
    try:
        return PredictionTable.read(folder)
    except ConfigError as e:
        raise ConfigError("compare", e.message) from None
