"""GPU checks: the fast path (data resident on the device, bf16-mixed, channels-last), the explain callback
under mixed precision, a DDP fit with one device, grid training with CUDA graphs.

Skipped without CUDA (`pytest -m gpu` on a GPU machine). `CIFAKE_TEST_DEVICE=cpu pytest -m gpu` runs the
same code on the CPU (bf16 autocast works there) to check the tests themselves where no GPU is at hand.
"""

import csv
import json
import os

import lightning as L
import pytest
import torch
from helpers.run import DEMO, QUIET, REPO, cifake

from cifake_lightning.data import CIFAKEDataModule
from cifake_lightning.models import DualStreamDetector, LightweightCNN
from cifake_lightning.training import GridClassifier, ImageClassifier

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("CIFAKE_TEST_DEVICE", "cuda")
ACCEL = "gpu" if DEVICE == "cuda" else "cpu"


class _BatchDevices(L.Callback):
    """Records where and in which dtype training batches arrive, and the autocast dtype of the step."""

    def __init__(self):
        self.seen: set[tuple[str, torch.dtype]] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.add((batch["image"].device.type, batch["image"].dtype))


def _val_acc(metrics_csv) -> float:
    with open(metrics_csv, newline="") as f:
        return [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")][-1]


def test_bf16_fit_keeps_data_on_device_and_learns(cifake_root, tmp_path):
    L.seed_everything(0)
    dm = CIFAKEDataModule(root=str(cifake_root), val_size=60, batch_size=64, progress=False, decode_workers=1)
    model = ImageClassifier(LightweightCNN())
    seen = _BatchDevices()
    trainer = L.Trainer(
        accelerator=ACCEL, devices=1, precision="bf16-mixed", max_epochs=3, callbacks=[seen],
        logger=L.pytorch.loggers.CSVLogger(tmp_path), enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, dm)
    assert {d for d, _ in seen.seen} == {DEVICE}
    if DEVICE == "cuda":  # resident: the uint8 tensor was moved once, not a float copy per batch
        assert dm._device_copies and all(t.is_cuda for t in next(iter(dm._device_copies.values())).values())
    assert _val_acc(trainer.logger.log_dir + "/metrics.csv") > 0.75


def test_dualstream_bf16_forward_backward_reaches_both_streams():
    model = DualStreamDetector().to(DEVICE).to(memory_format=torch.channels_last)
    x = torch.rand(16, 3, 32, 32, device=DEVICE).contiguous(memory_format=torch.channels_last)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        out = model(x)
    assert out.shape == (16,) and out.dtype == torch.bfloat16
    out.float().sum().backward()
    grads = {n.split(".")[0]: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert {"spatial", "frequency"} <= set(grads)
    assert all(torch.isfinite(g).all() for g in grads.values())


def test_cli_fit_with_trainer_configs_and_explain_callback(cifake_root, tmp_path):
    # configs/trainer/ddp.yaml with devices=1: the same config path a multi-GPU user takes
    trainer_cfg = ["--trainer", str(REPO / "configs" / "trainer" / "ddp.yaml"), "--trainer.devices", "1"]
    if DEVICE != "cuda":
        trainer_cfg += ["--trainer.accelerator", "cpu"]
    r = cifake(
        "fit", "--config", DEMO, *trainer_cfg, "--data.root", str(cifake_root), "--data.val_size", "60",
        "--data.batch_size", "16", "--trainer.max_epochs", "2", *QUIET, "--name", "gpu", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs" / "gpu" / "version_0"
    assert _val_acc(run / "metrics.csv") > 0.75
    scores = json.loads((run / "explain" / "epoch_001" / "scores.json").read_text())
    assert len(scores) == 8 and all(0.0 <= s["p_fake"] <= 1.0 for s in scores)


def test_grid_with_cuda_graphs_trains_every_topology(cifake_root, tmp_path):
    L.seed_everything(0)
    tops = ["conv16x1", "conv32x2-dense64x1"]
    dm = CIFAKEDataModule(root=str(cifake_root), val_size=60, batch_size=16, progress=False, decode_workers=1)
    grid = GridClassifier(topologies=tops, compile="reduce-overhead" if DEVICE == "cuda" else False)
    trainer = L.Trainer(
        accelerator=ACCEL, devices=1, precision="bf16-mixed", max_epochs=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(grid, dm)
    for name in tops:
        assert trainer.callback_metrics[f"{name}/val/acc"] > 0.75, name
