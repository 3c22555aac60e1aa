"""Paired comparison of two detectors on the same images: is one really better, or is it seed noise?

Two results of `cifake test` on the same data (same content hash) are paired image by image:
- decisions: McNemar's exact test on the discordant pairs (images one model gets right and the other
  wrong), the standard paired test for two classifiers (Dietterich 1998);
- ranking: a paired bootstrap of the AUROC difference (images resampled with replacement, both models
  scored on the same resample; torchmetrics' AUROC), reported as the difference and its 95% interval.

Pure functions of two PredictionTables (or the predictions.csv files `cifake test` writes).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import torch

from ..errors import ConfigError


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


def compare_scores(
    label: torch.Tensor,
    prob_a: torch.Tensor,
    prob_b: torch.Tensor,
    threshold_a: float = 0.5,
    threshold_b: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    score_a: torch.Tensor | None = None,
    score_b: torch.Tensor | None = None,
) -> dict:
    """Paired comparison of two score vectors on the same labelled images (see module docstring).

    Decisions are prob >= threshold; AUROCs rank `score_a`/`score_b` (e.g. logits) when given, which
    keeps the order of probabilities that round to 0 or 1."""
    from torchmetrics.functional.classification import binary_auroc

    from .ood import rank_score

    label = label.long().cpu()
    prob_a, prob_b = prob_a.float().cpu(), prob_b.float().cpu()
    rank_a = rank_score(prob_a if score_a is None else score_a.cpu())
    rank_b = rank_score(prob_b if score_b is None else score_b.cpu())
    if not (len(label) == len(prob_a) == len(prob_b)):
        raise ValueError("label and both score vectors must have the same length")
    right_a = (prob_a >= threshold_a).long() == label
    right_b = (prob_b >= threshold_b).long() == label
    b = int((right_a & ~right_b).sum())
    c = int((~right_a & right_b).sum())
    out = {
        "n": len(label),
        "accuracy_a": float(right_a.float().mean()),
        "accuracy_b": float(right_b.float().mean()),
        "a_right_b_wrong": b,
        "a_wrong_b_right": c,
        "mcnemar_p": mcnemar_exact(b, c),
    }
    if label.min() == label.max():
        out.update(
            auroc_a=math.nan, auroc_b=math.nan, auroc_diff=math.nan, auroc_diff_ci95=[math.nan, math.nan]
        )
        return out
    auc_a, auc_b = float(binary_auroc(rank_a, label)), float(binary_auroc(rank_b, label))
    g = torch.Generator().manual_seed(seed)
    diffs = []
    n = len(label)
    for _ in range(n_boot):
        idx = torch.randint(0, n, (n,), generator=g)
        y = label[idx]
        if y.min() == y.max():
            continue
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


def read_result(folder: str | Path) -> tuple[dict[int, tuple[int, float, str, float]], str, dict]:
    """{row index: (label, p_fake, source, logit)}, the data's content hash and the report of a
    `cifake test` folder."""
    folder = Path(folder)
    report_path, csv_path = folder / "report.json", folder / "predictions.csv"
    for p in (report_path, csv_path):
        if not p.is_file():
            raise ConfigError("compare", f"{p} not found: give result folders written by `cifake test`")
    try:
        report = json.loads(report_path.read_text())
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
        raise ConfigError(
            "compare", f"{report_path} is unreadable ({e}); test the checkpoint again"
        ) from None
    rows = {}
    try:
        with open(csv_path, newline="") as f:
            for r in csv.DictReader(f):
                label = {"real": 0, "fake": 1}.get(r["label"])
                if label is None:
                    raise ConfigError("compare", f"{csv_path}: row {r.get('index')} has no real/fake label")
                p = float(r["p_fake"])
                logit = float(r["logit"]) if r.get("logit") else p
                rows[int(r["index"])] = (label, p, r.get("source", ""), logit)
    except ConfigError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:  # a truncated or edited file
        raise ConfigError(
            "compare", f"{csv_path} is unreadable ({type(e).__name__}: {e}); test again"
        ) from None
    return rows, (report.get("data") or {}).get("content_hash", ""), report


def compare_results(
    a: str | Path, b: str | Path, n_boot: int = 1000, seed: int = 0, sources: list[str] | None = None
) -> dict:
    """Compare two `cifake test` result folders of the same data (refused when the data differ).

    Decisions use each run's own validation-chosen threshold (stored in its report; 0.5 for reports
    without one), on its calibrated P(fake) as written in predictions.csv. `sources` restricts the
    comparison to those sources' rows (e.g. the unseen generators plus the test reals)."""
    rows_a, hash_a, rep_a = read_result(a)
    rows_b, hash_b, rep_b = read_result(b)
    if not hash_a or hash_a != hash_b or rows_a.keys() != rows_b.keys():
        raise ConfigError(
            "compare",
            f"the two results were not measured on the same images ({hash_a[:10] or '?'} vs {hash_b[:10] or '?'}); "
            "test both checkpoints on the same data first",
        )
    keys = sorted(rows_a)
    if sources:
        present = {v[2] for v in rows_a.values()}
        missing = [x for x in sources if x not in present]
        if missing:
            raise ConfigError(
                "compare --source", f"{missing} not in the results (sources: {sorted(present)})"
            )
        keys = [k for k in keys if rows_a[k][2] in sources]
    label = torch.tensor([rows_a[k][0] for k in keys])
    if any(rows_a[k][0] != rows_b[k][0] for k in keys):
        raise ConfigError("compare", "the two results disagree on the labels of the same images")
    out = compare_scores(
        label, torch.tensor([rows_a[k][1] for k in keys]), torch.tensor([rows_b[k][1] for k in keys]),
        threshold_a=_threshold(rep_a), threshold_b=_threshold(rep_b), n_boot=n_boot, seed=seed,
        score_a=torch.tensor([rows_a[k][3] for k in keys]), score_b=torch.tensor([rows_b[k][3] for k in keys]),
    )  # fmt: skip
    out["threshold_a"], out["threshold_b"] = _threshold(rep_a), _threshold(rep_b)
    out["sources"] = sources or "all"
    out["a"], out["b"] = (
        {"folder": str(a), "checkpoint": rep_a.get("checkpoint")},
        {
            "folder": str(b),
            "checkpoint": rep_b.get("checkpoint"),
        },
    )
    out["data_content_hash"] = hash_a
    return out


def _threshold(report: dict) -> float:
    return float((report.get("threshold") or {}).get("validation", 0.5))
