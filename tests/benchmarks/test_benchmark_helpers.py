"""The helpers the benchmark scripts share: one flat row per test report, mean ± sd, the bootstrap
difference of the centre-vs-border benchmark."""

import json
import math

import pytest

from benchmarks._common import mean_sd, ood_row
from benchmarks.centre_border import boot_diff


def _src(source, label, n, acc, acc_thr, auroc=math.nan):
    return {"source": source, "label": label, "n": n, "accuracy": acc, "acc@thr": acc_thr, "auroc": auroc}


def test_ood_row_flattens_a_report(tmp_path):
    rep = {
        "threshold": {"validation": 0.3},
        "sources": [
            _src("test/REAL", "real", 100, 1.0, 0.99),
            _src("test/FAKE", "fake", 300, 1.0, 0.95, 0.999),
            _src("ood/photos", "real", 50, 0.9, 0.8),
            _src("ood/gan", "fake", 50, 0.1, 0.2, 0.7),
            _src("ood/ae", "fake", 50, 0.5, 0.6, 0.95),
        ],
        "unseen": {
            "unseen": ["ood/gan"],
            "seen": ["test/FAKE", "ood/ae"],
            "rows": [{"source": "ood/gan", "auroc_vs_test_real": 0.7, "detected@thr": 0.2}],
            "mean": {"auroc_vs_test_real": 0.7, "auroc_vs_ood_real": 0.6},
            "worst": {"auroc_vs_test_real": 0.7},
            "real_fpr": [{"source": "test/REAL", "fpr@thr": 0.01}, {"source": "ood/photos", "fpr@thr": 0.2}],
        },
    }
    (tmp_path / "report.json").write_text(json.dumps(rep))
    row = ood_row(tmp_path)
    assert row["in_acc@thr"] == pytest.approx((100 * 0.99 + 300 * 0.95) / 400)  # weighted by images
    assert row["in_acc@0.5"] == 1.0 and row["real_acc@thr"] == 0.99 and row["fake_acc@thr"] == 0.95
    assert row["fpr@thr:ood/photos"] == 0.2 and row["fpr@thr:test/REAL"] == 0.01
    assert row["auroc:ood/gan"] == 0.7 and row["mean_auroc"] == 0.7 and row["worst_auroc"] == 0.7
    # seen fake sources keep their numbers under the same keys; real sources get no AUROC key
    assert row["auroc:ood/ae"] == 0.95 and row["auroc:test/FAKE"] == 0.999 and "auroc:ood/photos" not in row
    assert row["seen"] == ["test/FAKE", "ood/ae"]


def test_mean_sd():
    assert mean_sd([0.5, 0.7]) == "0.600 ± 0.141"
    assert mean_sd([0.25]) == "0.250 ± 0.000"
    assert mean_sd([math.nan, 1.0, 3.0], 1) == "2.0 ± 1.4"
    assert mean_sd([]) == "n/a" and mean_sd([math.nan]) == "n/a"


def test_boot_diff_finds_a_planted_difference_and_not_a_missing_one():
    import torch

    g = torch.Generator().manual_seed(0)
    a = (0.30 + 0.05 * torch.randn(300, generator=g)).tolist()
    b = (0.20 + 0.05 * torch.randn(300, generator=g)).tolist()
    c = (0.30 + 0.05 * torch.randn(300, generator=g)).tolist()
    d, lo, hi = boot_diff(a, b)
    assert d == pytest.approx(0.1, abs=0.02) and lo > 0
    d, lo, hi = boot_diff(a, c)
    assert lo < 0 < hi
