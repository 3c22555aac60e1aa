"""evaluate/test_report.py: which fake sources a test report counts as seen."""

from __future__ import annotations

from types import SimpleNamespace

import torch
import yaml

from cifake_lightning.evaluate.test_report import trained_sources


def _run(tmp_path, data: dict):
    run = tmp_path / "runs" / "r" / "version_0"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    return run / "checkpoints" / "best.ckpt"


def _manifest(root, data: str, names: list[str], labels: list[int]):
    return SimpleNamespace(
        root=str(root),
        data=data,
        source_names=names,
        source=torch.arange(len(names)),
        labels=torch.tensor(labels),
    )


def test_sources_a_run_trained_on_are_seen_by_default(tmp_path):
    """evaluate.test_report.trained_sources: test folders that are the run's extra training fakes."""
    ckpt = _run(
        tmp_path,
        {
            "class_path": "x.CIFAKEDataModule",
            "init_args": {"root": str(tmp_path / "d"), "extra_fakes": ["ood/a"]},
        },
    )
    manifest = _manifest(
        tmp_path / "d", "ImageFolderOOD", ["test/REAL", "test/FAKE", "ood/a", "ood/b"], [0, 1, 1, 1]
    )
    assert trained_sources(ckpt, manifest, "test/FAKE") == ["test/FAKE", "ood/a"]
    other = _manifest(tmp_path / "elsewhere", "ImageFolderOOD", ["ood/a"], [1])
    assert trained_sources(ckpt, other, "test/FAKE") is None  # same name, other folder: not trained on
    assert trained_sources(ckpt, manifest, "test/FAKE", trains_on_fakes=False) is None  # a real-only model
    _run(tmp_path, {"init_args": {"root": "x"}})
    assert trained_sources(ckpt, manifest, "test/FAKE") is None


def test_the_fakes_of_the_runs_own_data_are_seen_by_default(tmp_path):
    """`cifake test` of a checkpoint on its own data module's test split: FAKE is the kind it trained on,
    not an unseen generator (the demo's report used to call it unseen); for a real-only model it is
    unseen, and the same module class over another root is other data."""
    ckpt = _run(
        tmp_path,
        {"class_path": "cifake_lightning.data.CIFAKEDataModule", "init_args": {"root": str(tmp_path / "d")}},
    )
    own = _manifest(tmp_path / "d", "CIFAKEDataModule", ["REAL", "FAKE"], [0, 1])
    assert trained_sources(ckpt, own, None) == ["FAKE"]
    assert trained_sources(ckpt, own, "FAKE") == ["FAKE"]
    assert trained_sources(ckpt, own, None, trains_on_fakes=False) is None
    assert (
        trained_sources(ckpt, _manifest(tmp_path / "e", "CIFAKEDataModule", ["REAL", "FAKE"], [0, 1]), None)
        is None
    )
    assert (
        trained_sources(ckpt, _manifest(tmp_path / "d", "ImageFolderOOD", ["REAL", "FAKE"], [0, 1]), None)
        is None
    )


def test_testing_a_run_on_its_own_split_reports_its_fakes_as_seen(finished_run, cifake_root, capsys):
    """End to end: `cifake test` of a fitted run's checkpoint on its own test split says its FAKE is a
    seen kind (report.json, report.md) and prints no "unseen fakes" summary for it."""
    import json

    from helpers.run import cifake_test_args, run_main

    from cifake_lightning.evaluate.table import latest_results

    ckpt = finished_run / "checkpoints" / "last.ckpt"
    code, err = run_main(cifake_test_args(cifake_root, "--ckpt", str(ckpt)), capsys)
    assert code == 0, err
    out = latest_results("results", ckpt)
    report = json.loads((out / "report.json").read_text())
    assert report["seen"] == ["FAKE"] and "unseen" not in report
    assert "made training fakes): FAKE" in (out / "report.md").read_text()
