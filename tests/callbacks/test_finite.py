"""callbacks/finite.FiniteGuard and the gates behind it: no metric, threshold, table or checkpoint is ever
made from NaN/inf losses or scores (issue: a diverged fit was saved as "best" with val/auroc 1.0)."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers.run import QUIET, fit_demo

from cifake_lightning.console import main
from cifake_lightning.data.split import SplitManifest
from cifake_lightning.errors import CheckpointError, NonFiniteError
from cifake_lightning.evaluate.table import PredictionTable
from cifake_lightning.models.calibration import fit
from cifake_lightning.models.checkpoint import read_checkpoint


def test_diverged_fit_stops_with_exit_2_and_no_checkpoint_or_metric(
    cifake_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        fit_demo(
            cifake_root, "--trainer.max_epochs", "2", "--model.optimizer.init_args.lr", "1e9", "--name", "nan"
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cifake: error: the training loss became NaN or infinite in epoch 1")
    version = tmp_path / "runs" / "nan" / "version_0"
    assert not list(version.rglob("*.ckpt")), "a diverged model must never be saved (as best or last)"
    metrics = version / "metrics.csv"
    if metrics.is_file():  # whatever was logged holds no validation metric of the NaN model
        for row in csv.DictReader(open(metrics)):
            assert not row.get("val/auroc"), row


def test_checkpoint_with_nan_weights_is_refused_by_every_reader(demo_ckpt, cifake_root, tmp_path, capsys):
    ckpt = torch.load(demo_ckpt, weights_only=True)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = torch.full_like(ckpt["state_dict"][name], float("nan"))
    bad = tmp_path / "diverged.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        read_checkpoint(bad)
    img = next(cifake_root.rglob("*.jpg"))
    for argv in (
        ["test", "--ckpt", str(bad), "--data.root", str(cifake_root), *QUIET],
        ["predict", "--ckpt", str(bad), str(img)],
        ["export", "--ckpt", str(bad), "--out", str(tmp_path / "x.onnx")],
    ):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2, argv
        assert "holds NaN or infinite values" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_nan_validation_scores_stored_in_a_checkpoint_are_refused(demo_ckpt, tmp_path):
    ckpt = torch.load(demo_ckpt, weights_only=True)
    ckpt["cifake_val_scores"]["logit"][0] = float("inf")
    bad = tmp_path / "inf-scores.ckpt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match="cifake_val_scores"):
        read_checkpoint(bad)


def _manifest(n):
    return SplitManifest("test", "X", "/", tuple(f"{i}.png" for i in range(n)), torch.tensor([0, 1] * (n // 2)),
                         torch.zeros(n, dtype=torch.long), torch.full((n,), -1), ("s",), "h" * 32)  # fmt: skip


def test_no_table_and_no_calibration_from_non_finite_logits():
    logit = torch.tensor([0.1, float("nan"), -2.0, 3.0])
    with pytest.raises(NonFiniteError, match="1 of 4 images"):
        PredictionTable(torch.arange(4), logit, _manifest(4), checkpoint="x.ckpt")
    with pytest.raises(NonFiniteError, match="validation logits"):
        fit(logit, torch.tensor([0, 1, 0, 1]))
    PredictionTable(torch.arange(4), torch.tensor([0.1, 0.2, -2.0, 3.0]), _manifest(4))  # finite: fine


def test_guard_checks_eval_outputs_of_any_module():
    from cifake_lightning.callbacks import FiniteGuard

    class T:
        ckpt_path = "m.ckpt"

    guard = FiniteGuard()
    guard.on_test_batch_end(T(), None, {"index": torch.arange(2), "logit": torch.ones(2)}, None, 0)
    with pytest.raises(NonFiniteError, match="test logit of m.ckpt"):
        guard.on_test_batch_end(
            T(), None, {"index": torch.arange(2), "logit": torch.tensor([1, -float("inf")])}, None, 0
        )
    with pytest.raises(NonFiniteError):  # a grid's per-topology dict of logits
        guard.on_validation_batch_end(T(), None, {"conv16x1": torch.tensor([float("nan")])}, None, 0)
    guard.on_train_epoch_start(type("Tr", (), {"current_epoch": 4})(), None)
    guard.on_train_batch_end(None, None, {"loss": torch.tensor(0.3)}, None, 0)
    guard.on_validation_epoch_start(None, None)  # finite so far
    guard.on_train_batch_end(None, None, {"loss": torch.tensor(float("nan"))}, None, 1)
    guard.on_train_batch_end(
        None, None, {"loss": torch.tensor(0.3)}, None, 2
    )  # a later finite step hides nothing
    with pytest.raises(NonFiniteError, match="epoch 5"):
        guard.on_train_epoch_end(None, None)
