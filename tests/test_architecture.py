"""Issue 17: what reports and the CLI say must be true (each test failed on the behaviour before)."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers.run import QUIET, REPO

from cifake_lightning.cli import main

DEMO = str(REPO / "configs" / "demo.yaml")


def test_a_bug_in_a_constructor_keeps_its_traceback(cifake_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET]
    with pytest.raises(ValueError, match="invalid literal for int"):  # not "option config: ..." and exit 2
        main([*args, "--model.backbone", "helpers.buggy.BuggyBackbone"])


def test_a_bad_option_value_is_one_line(cifake_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET]
    with pytest.raises(SystemExit) as e:
        main([*args, "--model.init_args.normalize", "bogus"])
    assert e.value.code == 2
    assert "option model.normalize: must be one of" in capsys.readouterr().err


def test_explain_callback_does_not_fall_back_to_test_images(cifake_root, caplog):
    from cifake_lightning.data import CIFAKEDataModule
    from cifake_lightning.explain.callbacks import ExplainCallback

    dm = CIFAKEDataModule(root=str(cifake_root), val_size=0, progress=False)
    dm.setup("fit")

    class T:  # the two things the callback reads from a trainer here
        datamodule = dm

    cb = ExplainCallback(split="val")
    with caplog.at_level(logging.WARNING):
        assert cb._probe(T()) is None
    assert cb.every_n_epochs == 0 and "no 'val' split" in caplog.text
    probe = ExplainCallback(split="test")._probe(T())
    assert probe is not None and all(f.startswith("test/") for f in probe.files)


def test_reliability_diagram_uses_the_ece_bins(tmp_path, monkeypatch):
    from cifake_lightning.evaluate import ood_report
    from cifake_lightning.evaluate.table import PredictionTable, SplitManifest

    seen = {}

    def spy(*a, bins=None, **k):
        seen["bins"] = bins

    monkeypatch.setattr(ood_report, "reliability_png", spy)
    m = SplitManifest(
        "test", "X", "/", tuple(f"{i}.jpg" for i in range(8)), torch.arange(8) % 2, torch.arange(8) % 2,
        torch.full((8,), -1), ("REAL", "FAKE"), "0" * 32,
    )  # fmt: skip
    ood_report.write_source_report(tmp_path, PredictionTable(torch.arange(8), torch.randn(8), m), ece_bins=12)
    assert seen["bins"] == 12
