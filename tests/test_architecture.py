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


def test_cifake_models_finds_parametric_names_and_rejects_unknown_ones(capsys):
    from cifake_lightning.commands.models_cmd import main as models

    models(["conv32x2-dense64x1"])  # valid without being listed one by one
    out = capsys.readouterr().out
    assert out.startswith("conv32x2-dense64x1") and '"topology": "conv32x2-dense64x1"' in out
    with pytest.raises(Exception, match="no model matches 'nosuch'"):
        models(["nosuch"])


@pytest.mark.parametrize("name", ["lightweight_cnn", "conv64x2-dense128x1", "dualstream_small"])
def test_model_names_from_cifake_models_work_on_the_command_line(cifake_root, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), "--data.val_size", "40", *QUIET]
    args += ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]"]
    main([*args, "--model.backbone", name, "--name", "named"])
    cfg = next((tmp_path / "runs" / "named").glob("version_*/config.yaml")).read_text()
    from cifake_lightning.models.registry import model_spec

    assert model_spec(name)["class_path"] in cfg


@pytest.mark.parametrize("data", ["cifake.yaml", "genset.yaml", "genset_v2.yaml"])
def test_a_data_config_does_not_change_the_experiments_batch_size(monkeypatch, capsys, data):
    import yaml

    monkeypatch.chdir(REPO)
    data_root = yaml.safe_load((REPO / "configs" / "data" / data).read_text())["init_args"]["root"]
    for exp in ("baseline.yaml", "dualstream.yaml", "resnet18.yaml"):
        with pytest.raises(SystemExit):
            main(["fit", "--config", f"configs/{exp}", "--data", f"configs/data/{data}", "--print_config"])
        with_data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
        own = yaml.safe_load((REPO / "configs" / exp).read_text())["data"]["init_args"]
        assert with_data["batch_size"] == own["batch_size"], exp
        assert with_data["root"] == data_root
