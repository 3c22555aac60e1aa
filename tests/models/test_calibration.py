"""Calibration and the validation-chosen threshold: fitted on validation logits only, stored in every
checkpoint, used by test reports, prediction files and the generalisation summary."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from helpers.run import QUIET, cifake

from cifake_lightning.errors import ConfigError
from cifake_lightning.evaluate.metrics import unseen_summary
from cifake_lightning.evaluate.table import PredictionTable
from cifake_lightning.models import calibration as C


def _scores(n=2000, sep=3.0, scale=4.0, seed=0):
    """Logits of a well-separated but over-confident model: true logit * `scale`."""
    g = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    true = torch.where(y == 1, sep, -sep) + torch.randn(2 * n, generator=g) * 2.0
    # labels drawn from the true logit so that sigmoid(true) is calibrated
    y = (torch.rand(2 * n, generator=g) < torch.sigmoid(true)).long()
    return true * scale, y


def test_temperature_recovers_the_overconfidence_factor_and_lowers_nll():
    z, y = _scores(scale=4.0)
    cal = C.fit(z, y, "temperature", "fpr:0.05")
    assert 3.3 < cal.temperature < 4.8
    assert cal.val_nll < cal.val_nll_raw - 0.1 and cal.val_ece < cal.val_ece_raw
    # temperature keeps the 0.5 decision: sigmoid(z*s) >= 0.5 iff z >= 0
    assert torch.equal(cal.prob(z) >= 0.5, z >= 0)


def test_platt_can_move_the_decision_and_fits_a_bias():
    z, y = _scores(scale=1.0)
    cal = C.fit(z + 2.0, y, "platt", "youden")  # a constant shift is undone by the bias
    assert abs(cal.bias + 2.0 * cal.scale) < 0.3 and 0.8 < cal.scale < 1.25


@pytest.mark.parametrize("target", [0.01, 0.05, 0.2])
def test_fpr_rule_is_the_lowest_threshold_within_the_target(target):
    z, y = _scores(scale=1.0, seed=1)
    cal = C.fit(z, y, "none", f"fpr:{target}")
    real = z[y == 0]
    assert cal.val_fpr <= target
    assert float((real >= cal.threshold_logit).float().mean()) == pytest.approx(cal.val_fpr)
    # any lower threshold among the real scores breaks the target
    below = real[real < cal.threshold_logit].max()
    assert float((real >= below).float().mean()) > target


def test_youden_and_fixed_rules():
    z, y = _scores(scale=1.0, seed=2)
    cal = C.fit(z, y, "none", "youden")
    j = cal.val_tpr - cal.val_fpr
    for t in torch.linspace(-6, 6, 121):
        pred = z >= t
        assert float(pred[y == 1].float().mean() - pred[y == 0].float().mean()) <= j + 1e-6
    fixed = C.fit(z, y, "temperature", 0.8)
    assert fixed.threshold == pytest.approx(0.8)
    assert torch.equal(fixed.decide(z), (fixed.prob(z) >= 0.8 - 1e-6).long())


def test_separable_validation_holds_the_temperature_at_its_bound():
    z = torch.cat([torch.full((50,), -8.0), torch.full((50,), 8.0)])
    y = torch.cat([torch.zeros(50), torch.ones(50)]).long()
    cal = C.fit(z, y, "temperature", "fpr:0.01")
    assert cal.at_bound and cal.temperature == pytest.approx(C.T_MIN, rel=1e-3)
    assert "at its bound" in cal.describe()


def test_one_class_validation_gives_the_identity():
    cal = C.fit(torch.randn(10), torch.ones(10).long(), "temperature", "fpr:0.01")  # fakes only
    assert cal.scale == 1.0 and cal.threshold == 0.5
    cal = C.fit(torch.randn(10), torch.zeros(10).long(), "temperature", "youden")  # Youden needs both
    assert cal.scale == 1.0 and cal.threshold == 0.5


@pytest.mark.parametrize("bad", ["fpr:0", "fpr:1.5", "fpr:x", "median", 1.0, 0.0, -0.1])
def test_bad_rules_name_the_option(bad):
    with pytest.raises(ConfigError, match="model.threshold"):
        C.check_rule(bad)
    with pytest.raises(ConfigError, match="model.calibration"):
        C.check_method("isotonic")


def test_unseen_summary_mean_worst_and_ood_real_fpr():
    # sources: 0 test real, 1 ood real photos, 2 seen fake, 3 unseen easy, 4 unseen hard (like reals)
    g = torch.Generator().manual_seed(0)
    n = 400
    logit = torch.cat(
        [
            torch.randn(n, generator=g) - 4,  # test reals
            torch.randn(n, generator=g) - 1,  # ood reals: scored higher than test reals
            torch.randn(n, generator=g) + 5,
            torch.randn(n, generator=g) + 3,
            torch.randn(n, generator=g) - 4,  # indistinguishable from test reals
        ]
    )
    label = torch.tensor([0] * 2 * n + [1] * 3 * n)
    source = torch.arange(5).repeat_interleave(n)
    names = ["test/REAL", "ood/real_photos", "test/FAKE", "ood/easy", "ood/hard"]
    t = PredictionTable.of(logit, label, source, names)  # no calibration: the decision is logit >= 0
    s = unseen_summary(t, seen=["test/FAKE"], reference_real="test/REAL")
    assert s["unseen"] == ["ood/easy", "ood/hard"] and s["seen"] == ["test/FAKE"]
    assert s["ood_real"] == ["ood/real_photos"]
    rows = {r["source"]: r for r in s["rows"]}
    assert rows["ood/easy"]["auroc_vs_test_real"] > 0.99
    assert 0.4 < rows["ood/hard"]["auroc_vs_test_real"] < 0.6
    assert rows["ood/hard"]["auroc_vs_ood_real"] < 0.2  # the OOD reals score higher than these fakes
    assert s["worst"]["auroc_vs_test_real"] == rows["ood/hard"]["auroc_vs_test_real"]
    assert s["mean"]["auroc_vs_test_real"] == pytest.approx(
        (rows["ood/easy"]["auroc_vs_test_real"] + rows["ood/hard"]["auroc_vs_test_real"]) / 2
    )
    fpr = {r["source"]: r for r in s["real_fpr"]}
    assert fpr["ood/real_photos"]["kind"] == "ood real"
    assert fpr["ood/real_photos"]["fpr@thr"] == pytest.approx(float((logit[n : 2 * n] >= 0).float().mean()))
    assert math.isclose(rows["ood/easy"]["detected@thr"], float((logit[3 * n : 4 * n] >= 0).float().mean()))
    # TPR at 5% FPR against the OOD reals: thresholds come from the OOD reals' scores
    ood_sorted = logit[n : 2 * n].sort().values
    t = ood_sorted[int(0.95 * n)]
    assert rows["ood/easy"]["tpr@5%fpr_ood_real"] == pytest.approx(
        float((logit[3 * n : 4 * n] >= t).float().mean()), abs=0.02
    )


@pytest.mark.slow  # ~20 s: the default suite stays under 5 minutes on 2 cores
def test_fit_stores_validation_scores_and_test_uses_them(cifake_root, demo_ckpt, tmp_path):
    """The checkpoint carries its validation logits; `cifake test` reports both thresholds, the
    calibration (val and test NLL/ECE), and honours a different rule given at test time."""
    ckpt = torch.load(demo_ckpt, map_location="cpu", weights_only=False)
    scores = ckpt["cifake_val_scores"]
    assert scores["logit"].shape == scores["label"].shape and len(scores["label"]) == 40
    stored = C.Calibration.from_dict(ckpt["cifake_calibration"])
    refit = C.fit(scores["logit"], scores["label"], "temperature", "fpr:0.01")
    assert stored == refit  # the stored calibration is a function of the validation scores only

    def test(*extra):
        r = cifake(
            "test",
            "--ckpt",
            str(demo_ckpt),
            "--data.root",
            str(cifake_root),
            "--data.val_size",
            "40",
            "--report.results_dir",
            str(tmp_path / "results"),
            *QUIET,
            *extra,
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        out = sorted((tmp_path / "results").rglob("report.json"), key=lambda p: p.stat().st_mtime)[-1].parent
        return json.loads((out / "report.json").read_text()), out

    report, out = test()
    assert report["threshold"]["validation"] == pytest.approx(stored.threshold)
    assert report["calibration"]["val_nll"] == pytest.approx(stored.val_nll)
    allrow = report["sources"][-1]
    for k in ("acc@thr", "real_acc@thr", "fake_acc@thr", "accuracy", "real_acc", "fake_acc"):
        assert 0.0 <= allrow[k] <= 1.0
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    want = [("fake" if float(r["logit"]) >= stored.threshold_logit else "real") for r in rows]
    assert [r["predicted"] for r in rows] == want
    md = (out / "report.md").read_text()
    assert "validation threshold" in md or "chosen on validation" in md
    assert "NLL raw" in md and "rule fpr:0.01" in md

    report2, _ = test("--model.init_args.threshold", "0.9", "--model.init_args.calibration", "none")
    assert report2["threshold"]["validation"] == pytest.approx(0.9)
    assert report2["calibration"]["method"] == "none"
    assert report2["sources"][-1]["accuracy"] == allrow["accuracy"]  # the 0.5 column does not move


def test_own_ece_equals_torchmetrics():
    from torchmetrics.functional.classification import binary_calibration_error

    g = torch.Generator().manual_seed(0)
    for k in range(4):
        p = torch.rand(500, generator=g) ** (k + 1)
        p[:3] = torch.tensor([0.0, 1.0, 0.5])  # bin edges
        y = (torch.rand(500, generator=g) < 0.4).long()
        assert C.ece(p, y) == pytest.approx(
            float(binary_calibration_error(p, y, n_bins=15, norm="l1")), abs=1e-6
        )


def test_calibration_is_kept_only_where_it_lowers_held_out_validation_nll():
    """Issue 27: a temperature that does not make validation probabilities better (scored on rows it was
    not fitted on) is declined, and the description says so in one line."""
    from cifake_lightning.models.calibration import fit

    g = torch.Generator().manual_seed(0)
    true = torch.randn(400, generator=g) * 2
    y = (torch.rand(400, generator=g) < torch.sigmoid(true)).long()
    over = fit(true * 4, y, "temperature", "fpr:0.05")  # overconfident 4x: calibration helps
    assert not over.declined and over.temperature == pytest.approx(4, rel=0.3)
    calibrated = fit(true, y, "temperature", "fpr:0.05")  # already calibrated: nothing to gain
    assert calibrated.declined and calibrated.scale == 1.0 and calibrated.bias == 0.0
    assert "did not lower validation NLL" in calibrated.describe()


def test_an_fpr_threshold_needs_validation_reals_only():
    from cifake_lightning.models.calibration import fit

    reals = torch.arange(100).float()
    cal = fit(reals, torch.zeros(100, dtype=torch.long), "temperature", "fpr:0.05")
    assert cal.method == "none" and cal.val_fpr <= 0.05 + 1e-6 and cal.threshold_logit > 94


def test_one_validation_image_says_why_there_is_no_threshold():
    import torch

    from cifake_lightning.models.calibration import fit

    text = fit(torch.tensor([0.3]), torch.tensor([1])).describe()
    assert "validation held 0 real and 1 fake" in text and "no validation scores stored" not in text
    small = fit(torch.randn(60), torch.arange(60) % 2, rule="fpr:0.01").describe()
    assert "WARNING: 30 validation reals cannot resolve an FPR of 0.01" in small
