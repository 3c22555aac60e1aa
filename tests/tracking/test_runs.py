"""tracking/runs.py: what the report reads from each run."""

from __future__ import annotations

import logging
import time

import pytest

from cifake_lightning.tracking.runs import collect_local


def _record(name, topology, val_acc, **kw):
    from cifake_lightning.tracking.runs import RunRecord

    return RunRecord(name, name, "BirdLotfiCNN", topology, 1000, 3, 1.0, best={"val/acc": val_acc}, **kw)


def test_heat_map_averages_repeats_of_validation_accuracy_only():
    from cifake_lightning.tracking.figures import extractor_heatmap_png

    runs = [
        _record("a", "conv16x1", 0.80, test={"test/acc": 0.99}),  # a test accuracy must not enter the map
        _record("b", "conv16x1", 0.90),
    ]
    _, rows = extractor_heatmap_png(runs)
    cell = next(r for r in rows if (r["filters"], r["conv_layers"]) == (16, 1))
    assert cell["ours"] == pytest.approx(85.0) and cell["runs"] == 2  # mean of repeats, not max, not test


def test_a_runs_test_accuracy_is_its_own_test_split_and_says_so(tmp_path):
    import json

    import yaml

    from cifake_lightning.tracking.runs import collect_local

    run = tmp_path / "runs" / "r" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,step,val/acc,val/loss\n0,1,0.7,0.6\n1,2,0.8,0.5\n")
    cfg = {
        "data": {"class_path": "cifake_lightning.data.CIFAKEDataModule", "init_args": {"root": str(tmp_path)}}
    }
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    ckpt = str(run / "checkpoints" / "last.ckpt")
    own = {"data": "CIFAKEDataModule", "split": "test", "root": str(tmp_path), "content_hash": "aa" * 16}
    ood = {"data": "ImageFolderOOD", "split": "test", "root": "/elsewhere", "content_hash": "bb" * 16}
    for i, (data, acc) in enumerate(((own, 0.91), (ood, 0.55))):  # the OOD test is the newer one
        out = tmp_path / "results" / f"t{i}"
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(
            json.dumps({"ckpt_path": ckpt, "metrics": {"test/acc": acc}, "data": data})
        )
        import os

        os.utime(out / "metrics.json", (time.time() + i, time.time() + i))
    (rec,) = collect_local([tmp_path / "runs"], tmp_path / "results")
    row = rec.row()
    assert (
        row["test_acc"] == 0.91
        and "CIFAKEDataModule" in row["test_data"]
        and "ImageFolderOOD" in row["other_tests"]
    )
    assert rec.best["val/acc"] == 0.8 and rec.best["epoch"] == 1


def test_wandb_runs_use_the_same_best_epoch_rule(monkeypatch):
    import sys
    import types

    from cifake_lightning.tracking.runs import collect_wandb

    class FakeRun:
        name, url, config = "w", "http://x", {}
        summary = {"val/acc": 0.5, "val/loss": 0.9, "epoch": 2}  # the last epoch's values

        def history(self, keys, pandas):
            return [
                {"epoch": 0, "val/acc": 0.7, "val/loss": 0.6},
                {"epoch": 1, "val/acc": 0.8, "val/loss": 0.4},  # the best (lowest loss)
                {"epoch": 2, "val/acc": 0.5, "val/loss": 0.9},
            ]

    class FakeApi:
        def __init__(self, timeout):
            pass

        def runs(self, path, per_page):
            return [FakeRun()]

    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(Api=FakeApi))
    (rec,) = collect_wandb("p")
    assert rec.best["val/acc"] == 0.8 and rec.best["epoch"] == 1  # was: the last value, 0.5


def test_report_skips_one_damaged_run_and_names_it(finished_run, tmp_path, caplog):
    import shutil

    for name, damage in (("B", "config.yaml"), ("C", "run_info_fit.json")):
        other = finished_run.parents[1] / name / "version_0"
        shutil.copytree(finished_run, other)
        text = (other / damage).read_text()
        (other / damage).write_text(
            text[: len(text) // 2] + ("\n: [unclosed" if damage.endswith("yaml") else "")
        )
    with caplog.at_level(logging.WARNING):
        runs = collect_local([tmp_path / "runs"], tmp_path / "results")
    assert [r.name for r in runs] == ["A/version_0"]
    for name in ("B", "C"):
        assert any(f"runs/{name}/version_0" in m for m in caplog.messages), caplog.messages


def test_a_runs_explanation_summary_becomes_explain_columns(tmp_path):
    """`cifake explain` writes summary.json naming its checkpoint; the report attaches the newest one to
    that checkpoint's run as flat `explain: <group> <statistic>` columns (issue 25: isitcap as a sweep)."""
    import json

    import yaml

    def run(name):
        d = tmp_path / "runs" / name / "version_0"
        (d / "checkpoints").mkdir(parents=True)
        (d / "metrics.csv").write_text("epoch,step,val/acc,val/loss\n0,1,0.7,0.6\n")
        (d / "config.yaml").write_text(yaml.safe_dump({"model": {"class_path": "x.ImageClassifier"}}))
        return d

    a = run("a")
    run("b")  # a run without an explanation
    results = tmp_path / "results" / "explain"
    for i, (entropy, ckpt) in enumerate([(0.5, a), (0.7, a), (0.9, None)]):  # older, newer, no checkpoint
        out = results / f"e{i}"
        out.mkdir(parents=True)
        summary = {"settings": {}, "n": 4, "real": {"n": 2, "integrated_gradients/entropy": entropy},
                   "fake": {"n": 2, "band_drop": {"ring 0": 0.25}},
                   "fake - real": {"integrated_gradients/entropy": -0.1}, "real/cat": {"n": 1, "gini": 0.3}}  # fmt: skip
        if ckpt:
            summary["ckpt"] = str(ckpt / "checkpoints" / "best.ckpt")
        (out / "summary.json").write_text(json.dumps(summary))
        time.sleep(0.02)  # distinct modification times: the newest summary wins
    runs = {r.name: r for r in collect_local([tmp_path / "runs"], tmp_path / "results")}
    row = runs["a/version_0"].row()
    assert row["explain: real integrated_gradients/entropy"] == 0.7
    assert row["explain: fake band_drop/ring 0"] == 0.25
    assert row["explain: fake - real integrated_gradients/entropy"] == -0.1
    assert row["explain: real/cat gini"] == 0.3
    assert "explain: real n" not in row and not any(k.startswith("explain: settings") for k in row)
    assert not any(k.startswith("explain: ") for k in runs["b/version_0"].row())
