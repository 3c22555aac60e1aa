"""The predictions table (issue 17): reports are functions of tables + manifests; results keyed by
(checkpoint, data), so no test overwrites another's."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch
from helpers.run import QUIET

from cifake_lightning.data.split import SplitManifest
from cifake_lightning.evaluate.table import (
    PredictionTable,
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
    from cifake_lightning.models.calibration import Calibration

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
    page = (tmp_path / "report.html").read_text()  # the same report as a page that shows its figures
    assert "<table>" in page and '<img src="false_positives.png"' in page and "some.ckpt" in page


def test_report_says_which_fake_sources_are_of_a_seen_kind(tmp_path):
    """A run's own test split: its FAKE is the kind it trained on, said in report.md and report.json,
    with no generalisation section; declared unseen, it gets one."""
    from cifake_lightning.evaluate.ood_report import write_source_report

    m = _manifest(40)
    table = PredictionTable(torch.arange(40), torch.where(m.labels == 1, 2.0, -2.0), m, "some.ckpt")
    rep = write_source_report(tmp_path / "seen", table, gallery_size=0, seen=["FAKE"])
    text = (tmp_path / "seen" / "report.md").read_text()
    assert rep["seen"] == ["FAKE"] and "unseen" not in rep
    assert "made training fakes): FAKE; no fake source of an unseen kind" in text
    rep = write_source_report(tmp_path / "unseen", table, gallery_size=0)
    assert rep["seen"] == [] and rep["unseen"]["unseen"] == ["FAKE"]
    assert "## Generalisation" in (tmp_path / "unseen" / "report.md").read_text()


def test_one_checkpoint_tested_on_two_data_sets_keeps_both_results(
    demo_ckpt, cifake_root, tmp_path, monkeypatch
):
    from cifake_lightning.console import main

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


def test_results_folder_names_everything_that_changes_the_numbers(tmp_path):
    """Another checkpoint file of the same name (a namesake from another runs tree, a retrained
    last.ckpt), another calibration/threshold or other writer options give another folder."""
    from cifake_lightning.models.calibration import Calibration

    a = tmp_path / "runs" / "A" / "version_0" / "checkpoints" / "best-epoch01.ckpt"
    b = tmp_path / "other" / "runs" / "A" / "version_0" / "checkpoints" / "best-epoch01.ckpt"
    for p, content in ((a, b"weights of A"), (b, b"weights of another A")):
        p.parent.mkdir(parents=True)
        p.write_bytes(content)
    m = _manifest()
    ta, tb = (PredictionTable(torch.arange(6), torch.zeros(6), m, str(p)) for p in (a, b))
    assert checkpoint_key(a) == checkpoint_key(b)  # same run name and version ...
    assert results_folder("r", ta) != results_folder("r", tb)  # ... but other bytes: never the same folder
    youden = PredictionTable(
        torch.arange(6), torch.zeros(6), m, str(a), calibration=Calibration(rule="youden")
    )
    assert results_folder("r", youden) != results_folder("r", ta)
    assert results_folder("r", ta, {"robustness": True}) != results_folder("r", ta, {"robustness": False})
    assert results_folder("r", ta, {"robustness": True}) == results_folder("r", ta, {"robustness": True})
    before = results_folder("r", ta)
    a.write_bytes(b"retrained")  # the same path after more epochs is another model
    assert results_folder("r", PredictionTable(torch.arange(6), torch.zeros(6), m, str(a))) != before


def test_data_hash_covers_pixels_and_labels_not_only_files():
    from cifake_lightning.data.split import DecodedSplit

    def split(images, labels):
        return DecodedSplit(images, labels, torch.zeros(2, dtype=torch.long), torch.full((2,), -1),
                            ["a.png", "b.png"], ["h1", "h2"], ["s"])  # fmt: skip

    img = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    base = split(img, torch.tensor([0, 1])).manifest_hash()
    resized_otherwise = img.clone()
    resized_otherwise[0, 0, 0, 0] = 1  # same files, another resize policy's pixels
    assert split(resized_otherwise, torch.tensor([0, 1])).manifest_hash() != base
    assert split(img, torch.tensor([1, 1])).manifest_hash() != base
    assert split(img.clone(), torch.tensor([0, 1])).manifest_hash() == base


def test_retesting_with_other_options_keeps_the_earlier_result(demo_ckpt, cifake_root, tmp_path, monkeypatch):
    """`cifake test` of one checkpoint with --model.threshold youden after the default wrote another
    folder; the first result is still there byte for byte."""
    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    args = ["test", "--ckpt", str(demo_ckpt), "--data.root", str(cifake_root), *QUIET]
    main(args)
    (first,) = [p.parent for p in (tmp_path / "results").rglob("report.json")]
    before = {p: p.read_bytes() for p in first.rglob("*") if p.is_file()}
    main([*args, "--model.threshold", "youden"])
    folders = {p.parent for p in (tmp_path / "results").rglob("report.json")}
    assert len(folders) == 2 and first in folders
    assert {p: p.read_bytes() for p in first.rglob("*") if p.is_file()} == before


def test_a_written_result_reads_back_as_the_same_table(tmp_path):
    """PredictionTable.read is the one reader of results (issue 25): what write_source_report wrote
    comes back with the same rows, logits, labels, sources, data hash and threshold."""
    from cifake_lightning.evaluate.ood_report import write_source_report
    from cifake_lightning.models.calibration import fit

    m = _manifest(40)
    logit = torch.where(m.labels == 1, 2.0, -2.0) + torch.linspace(-0.5, 0.5, 40)
    cal = fit(logit, m.labels, "temperature", "fpr:0.1")
    table = PredictionTable(torch.arange(40), logit, m, "some.ckpt", calibration=cal)
    write_source_report(tmp_path, table, images=torch.zeros(40, 3, 32, 32, dtype=torch.uint8), gallery_size=2)
    back = PredictionTable.read(tmp_path)
    assert torch.equal(back.index, table.index) and torch.allclose(back.logit, table.logit, atol=1e-5)
    assert torch.equal(back.label, table.label) and back.source_names == table.source_names
    assert back.files == table.files and back.manifest.content_hash == m.content_hash
    assert back.threshold == pytest.approx(table.threshold) and torch.equal(back.decision, table.decision)
