"""evaluate/metrics.py: per-source metrics of a PredictionTable, checked by hand."""

import math

import pytest
import torch

from cifake_lightning.evaluate.metrics import per_class_accuracy, ranking, source_table
from cifake_lightning.evaluate.table import PredictionTable


def test_source_table_matches_hand_computed_values():
    # real: 0.1 0.2 0.3 0.6 (one false positive); fake: 0.4 0.7 0.8 0.9 (one false negative)
    prob = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    label = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    source = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    t = PredictionTable.of(torch.logit(prob), label, source, ("photos", "gan"))
    rows = {r["source"]: r for r in source_table(t, ece_bins=2)}
    assert rows["photos"]["n"] == 4 and rows["photos"]["accuracy"] == 0.75 and rows["gan"]["accuracy"] == 0.75
    # AUROC = ordered (fake, real) pairs / 16: 0.4 beats 3 reals, 0.7/0.8/0.9 beat all 4 -> 15/16
    assert math.isclose(rows["all"]["auroc"], 15 / 16, abs_tol=1e-6)
    assert math.isclose(rows["gan"]["auroc"], 15 / 16, abs_tol=1e-6)  # one-class source vs the other class
    # TPR at FPR <= 1% (of 4 reals: none): threshold above 0.6 -> fakes 0.7, 0.8, 0.9 -> 3/4
    assert math.isclose(ranking(prob[4:], prob[:4])["tpr@1%fpr"], 0.75, abs_tol=1e-6)
    assert math.isclose(rows["all"]["tpr@5%fpr"], 0.75, abs_tol=1e-6)
    assert rows["all"]["acc@thr"] == 0.75  # no calibration stored: the threshold is 0.5
    # mean confidence of the real source: max(p, 1-p) = 0.9 0.8 0.7 0.6 -> 0.75
    assert math.isclose(rows["photos"]["mean_conf"], 0.75, abs_tol=1e-6)
    # ECE of P(fake), 2 bins [0,.5),[.5,1]: photos bin1 {0.1,0.2,0.3} fraction fake 0, mean .2; bin2 {0.6}
    # fraction fake 0, mean .6 -> ECE = 3/4*.2 + 1/4*.6 = 0.30
    assert math.isclose(rows["photos"]["ece"], 0.30, abs_tol=1e-6)


def test_reference_sources_restrict_the_ranking():
    prob = torch.tensor([0.1, 0.9, 0.2, 0.95, 0.3])
    label = torch.tensor([0, 0, 1, 1, 1])
    source = torch.tensor([0, 1, 2, 3, 2])  # real-in, real-odd, fake-a, fake-b
    names = ["real_in", "real_odd", "fake_a", "fake_b"]
    t = PredictionTable.of(torch.logit(prob), label, source, names)
    all_rows = {r["source"]: r for r in source_table(t)}
    ref_rows = {r["source"]: r for r in source_table(t, reference_real="real_in")}
    assert all_rows["fake_a"]["auroc"] == 0.5 and ref_rows["fake_a"]["auroc"] == 1.0
    with pytest.raises(ValueError, match="reference source"):
        source_table(t, reference_real="nope")


def test_per_class_accuracy():
    prob, label = torch.tensor([0.1, 0.9, 0.8, 0.2]), torch.tensor([0, 1, 0, 1])
    rows = per_class_accuracy(
        PredictionTable.of(torch.logit(prob), label, content_class=torch.tensor([0, 0, 3, 3]))
    )
    assert [r["class"] for r in rows] == ["airplane", "cat"]
    assert rows[0]["accuracy"] == 1.0 and rows[1]["accuracy"] == 0.0 and rows[1]["fake_n"] == 1
