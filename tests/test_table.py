"""The predictions table (issue 17): reports are functions of tables + manifests; results keyed by
(checkpoint, data), so no test overwrites another's."""

from __future__ import annotations

import csv
import io
import json

import torch
from helpers.run import QUIET

from cifake_lightning.evaluate.table import (
    PredictionTable,
    SplitManifest,
    checkpoint_key,
    latest_results,
    results_folder,
)


def _manifest(n=6, split="test") -> SplitManifest:
    return SplitManifest(
        split=split,
        data="Tiny",
        root="/data",
        files=tuple(f"{'REAL' if i % 2 == 0 else 'FAKE'}/{i}.jpg" for i in range(n)),
        labels=torch.tensor([i % 2 for i in range(n)]),
        source=torch.tensor([i % 2 for i in range(n)]),
        content_class=torch.tensor([i % 3 for i in range(n)]),
        source_names=("REAL", "FAKE"),
        content_hash="abcdef0123456789" * 2,
    )


def test_table_is_sorted_by_row_and_reads_metadata_from_the_manifest():
    m = _manifest()
    t = PredictionTable(
        torch.tensor([5, 0, 3, 1, 4, 2]), torch.tensor([5.0, 0.0, 3.0, 1.0, 4.0, 2.0]), m, "x.ckpt"
    )
    assert t.index.tolist() == list(range(6)) and t.logit.tolist() == [0, 1, 2, 3, 4, 5]
    assert t.label.tolist() == [0, 1, 0, 1, 0, 1] and t.files[3] == "FAKE/3.jpg"
    assert t.source_names[:2] == ["REAL", "FAKE"] and t.content_class.tolist() == [0, 1, 2, 0, 1, 2]
    rows = list(csv.DictReader(io.StringIO(t.to_csv(threshold=0.5))))
    assert [r["file"] for r in rows] == list(m.files) and rows[0][
        "predicted"
    ] == "fake"  # p = 0.5: at the threshold
    assert (
        rows[1]["label"] == "fake" and abs(float(rows[1]["p_fake"]) - torch.sigmoid(torch.tensor(1.0))) < 1e-6
    )
    sub = t.select(t.label == 1)
    assert sub.index.tolist() == [1, 3, 5] and sub.manifest is m


def test_calibration_scales_every_consumers_probabilities():
    from cifake_lightning.evaluate.calibration import Calibration

    t = PredictionTable(torch.arange(6), torch.tensor([-3.0, 2.0, -1.0, 2.0, 0.5, 2.0]), _manifest())
    t.calibration = Calibration(method="temperature", scale=0.5, threshold_logit=1.0, threshold=0.62)
    assert torch.allclose(t.prob, torch.sigmoid(t.logit * 0.5))
    assert torch.allclose(t.raw_prob, torch.sigmoid(t.logit))
    assert t.decision.tolist() == [0, 1, 0, 1, 0, 1]  # logit >= 1.0
    assert t.decision_at(0.5).tolist() == [0, 1, 0, 1, 1, 1]
    rows = list(csv.DictReader(io.StringIO(t.to_csv())))
    assert [r["predicted"] for r in rows] == ["real", "fake", "real", "fake", "real", "fake"]
    assert {r["threshold"] for r in rows} == {"0.62"}


def test_results_are_keyed_by_checkpoint_and_data(tmp_path):
    run_ckpt = tmp_path / "runs" / "base" / "version_3" / "checkpoints" / "best-epoch07.ckpt"
    assert checkpoint_key(run_ckpt) == "base/version_3/best-epoch07"
    a, b = tmp_path / "a" / "last.ckpt", tmp_path / "b" / "last.ckpt"
    assert checkpoint_key(a) != checkpoint_key(b)  # two loose last.ckpt files never collide
    t1 = PredictionTable(torch.arange(6), torch.zeros(6), _manifest(split="test"), str(run_ckpt))
    t2 = PredictionTable(torch.arange(6), torch.zeros(6), _manifest(split="ood"), str(run_ckpt))
    assert results_folder("results", t1) != results_folder("results", t2)


def test_report_is_a_pure_function_of_the_table(tmp_path):
    from cifake_lightning.evaluate.ood_report import write_source_report

    m = _manifest(40)
    logit = torch.where(m.labels == 1, 2.0, -2.0) + torch.linspace(-0.5, 0.5, 40)
    logit[0] = 3.0  # one confident false positive
    table = PredictionTable(torch.arange(40), logit, m, "some.ckpt")
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    rep = write_source_report(tmp_path, table, images=images, gallery_size=4)
    assert rep["sources"][-1]["n"] == 40 and rep["data"]["content_hash"] == m.content_hash
    assert rep["false_positives"][0] == {
        "file": "REAL/0.jpg",
        "source": "REAL",
        "p_fake": float(table.prob[0]),
    }
    assert (tmp_path / "false_positives.png").is_file() and "some.ckpt" in (
        tmp_path / "report.md"
    ).read_text()


def test_one_checkpoint_tested_on_two_data_sets_keeps_both_results(
    demo_ckpt, cifake_root, tmp_path, monkeypatch
):
    from cifake_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    common = ["test", "--ckpt", str(demo_ckpt), *QUIET, "--trainer.callbacks", "[]"]
    main([*common, "--data.root", str(cifake_root), "--data.val_size", "0"])
    ood = tmp_path / "ood.yaml"
    ood.write_text(
        f"class_path: cifake_lightning.data.ImageFolderOOD\ninit_args:\n  root: {cifake_root / 'test'}\n"
        "  sources: {REAL: real, FAKE: fake}\n  limit_per_source: 20\n  progress: false\n"
    )
    main([*common, "--data", str(ood)])
    base = tmp_path / "results" / checkpoint_key(demo_ckpt)
    folders = sorted(p.parent for p in base.glob("*/report.json"))
    assert len(folders) == 2, folders
    sizes = sorted(json.loads((f / "report.json").read_text())["data"]["n"] for f in folders)
    assert sizes == [40, 100]
    assert latest_results(tmp_path / "results", demo_ckpt) in folders
