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
    from cifake_lightning.data.split import SplitManifest
    from cifake_lightning.evaluate import ood_report
    from cifake_lightning.evaluate.table import PredictionTable

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


def test_mistyped_checkpoint_monitor_stops_and_no_validation_keeps_last(
    cifake_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET, "--trainer.callbacks", "[]"]
    args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--data.val_size", "40", "--checkpoint.monitor", "val/los", "--name", "typo"])
    assert e.value.code == 2 and "val/los" in capsys.readouterr().err  # was: silently no best checkpoint
    main([*args, "--data.val_size", "0", "--early_stopping.patience", "null", "--name", "noval"])
    assert (tmp_path / "runs" / "noval" / "version_0" / "checkpoints" / "last.ckpt").is_file()


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
        import time

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


def test_top_level_help_and_version_answer_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['cifake', '{flag}']; from cifake_lightning.console import main; main(); "
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    env = {"PYTHONPATH": str(REPO)}
    for flag in ("--help", "--version"):
        r = subprocess.run(
            [sys.executable, "-c", code.format(flag=flag)], capture_output=True, text=True, env=env
        )
        assert r.returncode == 0 and r.stdout.strip().endswith("False False"), r.stderr
    from cifake_lightning import __version__
    from cifake_lightning.commands import PROJECT_COMMANDS
    from cifake_lightning.help import TOP_LEVEL

    assert all(f"cifake {name}" in TOP_LEVEL for name in PROJECT_COMMANDS)  # the help lists every command
    r = subprocess.run(
        [sys.executable, "-c", code.format(flag="--version")], capture_output=True, text=True, env=env
    )
    assert r.stdout.startswith(f"cifake-lightning {__version__}")
