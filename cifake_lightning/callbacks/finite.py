"""FiniteGuard: stop a run at the first non-finite loss or score, before it is logged or checkpointed.

A diverged model (e.g. `--model.optimizer.init_args.lr 1e9`) used to train on with NaN weights, save a
"best" checkpoint (val/loss inf) and log val/auroc 1.0: torchmetrics ranks all-NaN scores as a perfect
(or perfectly wrong) classifier depending on row order. This callback works for any LightningModule
of the project:

* training: each step's loss is folded into one flag on the model's device (no host sync per step);
  the flag is read once per epoch, when validation starts and when the training epoch ends, which
  both come before Lightning's checkpoint callbacks (it orders ModelCheckpoint last);
* validation, test and predict: every tensor a step returns (logits, per-topology logits) is checked
  when the step ends (one host sync per evaluation batch), so no epoch metric, table or checkpoint is
  ever computed from non-finite scores.

The run then stops with `NonFiniteError`: one line, exit status 2 through the CLI.
"""

from __future__ import annotations

import lightning as L
import torch

from ..errors import NonFiniteError


def _tensors(outputs):
    if isinstance(outputs, torch.Tensor):
        yield "output", outputs
    elif isinstance(outputs, dict):
        for k, v in outputs.items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                yield k, v


def check_finite(values: torch.Tensor, what: str) -> None:
    """Raise NonFiniteError naming `what` when `values` holds NaN or +-inf."""
    bad = ~torch.isfinite(values)
    if bool(bad.any()):
        n_nan = int(torch.isnan(values).sum())
        raise NonFiniteError(
            f"{what}: {int(bad.sum())} of {values.numel()} values are not finite ({n_nan} NaN); "
            "the model has diverged or its weights are broken, so no metric, threshold or checkpoint is "
            "made from them (lower --model.optimizer.init_args.lr or set --trainer.gradient_clip_val)"
        )


class FiniteGuard(L.Callback):
    """Stop at the first non-finite training loss or evaluation output (see module docstring)."""

    def __init__(self) -> None:
        self._bad: torch.Tensor | None = None
        self._epoch = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._bad, self._epoch = None, trainer.current_epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            bad = ~torch.isfinite(loss.detach()).all()
            self._bad = bad if self._bad is None else self._bad | bad

    def _check_training(self) -> None:
        if self._bad is not None and bool(self._bad):
            self._bad = None
            raise NonFiniteError(
                f"the training loss became NaN or infinite in epoch {self._epoch + 1}: training diverged "
                "(lower --model.optimizer.init_args.lr or set --trainer.gradient_clip_val); no checkpoint "
                "of this epoch was written"
            )

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._check_training()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check_training()

    def _check_outputs(self, trainer, outputs, stage: str) -> None:
        for name, t in _tensors(outputs):
            check_finite(t.detach(), f"{stage} {name} of {trainer.ckpt_path or 'the model being trained'}")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._check_outputs(trainer, outputs, "validation")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._check_outputs(trainer, outputs, "test")

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._check_outputs(trainer, outputs, "predict")
