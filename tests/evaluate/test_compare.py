"""`cifake compare` (issue 15): a planted difference between two detectors is found, no difference is not."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cifake_lightning.evaluate.compare import compare_results, compare_tables, mcnemar_exact
from cifake_lightning.evaluate.table import PredictionTable


def _scores(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    label = (torch.rand(n, generator=g) < 0.5).long()
    noise = lambda s: torch.randn(n, generator=g) * s  # noqa: E731
    good = torch.sigmoid(3.0 * (2 * label - 1) + noise(1.5))
    return label, good, noise


def test_mcnemar_exact_matches_the_binomial():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 10) == pytest.approx(1.0)
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 2**10)


def test_planted_difference_is_found():
    label, good, noise = _scores()
    worse = torch.sigmoid(1.0 * (2 * label - 1) + noise(1.5))  # a weaker detector on the same images
    r = compare_tables(*(PredictionTable.of(torch.logit(p), label) for p in (good, worse)), n_boot=300)
    assert r["accuracy_a"] > r["accuracy_b"] and r["mcnemar_p"] < 1e-6
    lo, hi = r["auroc_diff_ci95"]
    assert 0 < lo <= r["auroc_diff"] <= hi


def test_no_difference_is_not_reported_as_one():
    label, good, noise = _scores(seed=1)
    twin = (good + noise(1e-4)).clamp(1e-6, 1 - 1e-6)  # the same detector, up to rounding
    r = compare_tables(*(PredictionTable.of(torch.logit(p), label) for p in (good, twin)), n_boot=300)
    assert r["mcnemar_p"] > 0.05
    lo, hi = r["auroc_diff_ci95"]
    assert lo <= 0 <= hi


def _write_result(folder, label, prob, content_hash):
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(
        json.dumps({"checkpoint": str(folder), "data": {"content_hash": content_hash}})
    )
    rows = ["index,file,source,content_class,label,logit,p_fake"]
    rows += [
        f"{i},{i}.jpg,s,-1,{'fake' if y else 'real'},{math.log(max(p, 1e-9) / max(1 - p, 1e-9)):.6f},{p:.6f}"
        for i, (y, p) in enumerate(zip(label.tolist(), prob.tolist()))
    ]
    (folder / "predictions.csv").write_text("\n".join(rows) + "\n")


def test_compare_command_on_result_folders(tmp_path, capsys):
    from cifake_lightning.console import main
    from cifake_lightning.errors import ConfigError

    label, good, noise = _scores(n=400)
    worse = torch.sigmoid(0.5 * (2 * label - 1) + noise(1.5))
    _write_result(tmp_path / "a", label, good, "h" * 32)
    _write_result(tmp_path / "b", label, worse, "h" * 32)
    main(
        [
            "compare",
            str(tmp_path / "a"),
            str(tmp_path / "b"),
            "--n-boot",
            "100",
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    out = capsys.readouterr().out
    assert "McNemar" in out and "AUROC" in out
    assert json.loads((tmp_path / "c.json").read_text())["auroc_diff"] > 0
    _write_result(tmp_path / "other", label, worse, "x" * 32)
    with pytest.raises(ConfigError, match="not measured on the same images"):
        compare_results(tmp_path / "a", tmp_path / "other")


def test_report_rows_carry_real_and_fake_accuracy_and_nll():
    from cifake_lightning.evaluate.metrics import source_table
    from cifake_lightning.evaluate.table import PredictionTable

    label = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    prob = torch.tensor([0.1, 0.2, 0.7, 0.3, 0.9, 0.8, 0.6, 0.4])  # 3/4 real right, 3/4 fake right
    source = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    rows = {
        r["source"]: r
        for r in source_table(PredictionTable.of(torch.logit(prob), label, source, ("REAL", "FAKE")))
    }
    assert rows["all"]["real_acc"] == 0.75 and rows["all"]["fake_acc"] == 0.75
    assert rows["REAL"]["real_acc"] == 0.75 and rows["REAL"]["fake_acc"] != rows["REAL"]["fake_acc"]  # nan
    expected = -torch.log(torch.where(label == 1, prob, 1 - prob)).mean()
    assert rows["all"]["nll"] == pytest.approx(float(expected), rel=1e-5)


def test_real_false_positives_per_content_class(tmp_path):
    from cifake_lightning.data.split import SplitManifest
    from cifake_lightning.evaluate.metrics import real_bias_by_class
    from cifake_lightning.evaluate.ood_report import write_source_report
    from cifake_lightning.evaluate.table import PredictionTable

    cc = torch.arange(40) % 10
    label = (torch.arange(40) >= 30).long()  # 30 reals (3 per class), 10 fakes
    prob = torch.where(label == 1, 0.9, 0.1)
    prob[(cc == 3) & (label == 0)] = 0.8  # every real cat is called fake: a planted class bias
    m = SplitManifest(
        "test", "X", "/", tuple(f"{i}.jpg" for i in range(40)), label, label, cc, ("REAL", "FAKE"), "0" * 32
    )
    t = PredictionTable(torch.arange(40), torch.logit(prob), m)
    rows = {r["class"]: r for r in real_bias_by_class(t)}
    assert rows["cat"]["fpr"] == 1.0 and rows["dog"]["fpr"] == 0.0 and rows["cat"]["n_real"] == 3
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    rep = write_source_report(tmp_path, t, images=images)
    assert [r["class"] for r in rep["real_bias_by_class"] if r["fpr"] > 0] == ["cat"]
    assert (tmp_path / "false_positives_by_class.png").is_file()


def test_mcnemar_exact_on_many_discordant_images():
    from cifake_lightning.evaluate.compare import mcnemar_exact

    assert mcnemar_exact(3, 3) == 1.0
    assert abs(mcnemar_exact(0, 10) - 2 / 1024) < 1e-12  # exact small case
    assert mcnemar_exact(1000, 1000) > 0.9  # n = 2000: no overflow
    assert 0 < mcnemar_exact(600, 400) < 1e-8


def test_truncated_result_files_are_one_clear_error(tmp_path):
    from cifake_lightning.errors import ConfigError

    label, good, _ = _scores(n=40)
    for name in ("a", "b"):
        _write_result(tmp_path / name, label, good, "h" * 32)
    report = tmp_path / "b" / "report.json"
    report.write_text(report.read_text()[:25])
    with pytest.raises(ConfigError, match="report.json is unreadable"):
        compare_results(tmp_path / "a", tmp_path / "b")
    _write_result(tmp_path / "c", label, good, "h" * 32)
    preds = tmp_path / "c" / "predictions.csv"
    preds.write_text(preds.read_text()[:-9])  # cut inside the last row
    with pytest.raises(ConfigError, match="predictions.csv is unreadable"):
        compare_results(tmp_path / "a", tmp_path / "c")
