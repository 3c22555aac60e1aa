"""ModelCheckpoint that keeps `last.ckpt` always and the best one when its metric exists.

Lightning's ModelCheckpoint raises when the monitored metric is never logged (e.g. `val_size: 0`
means no validation). Here that case degrades to saving `last.ckpt` only, with one warning.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn


class BestCheckpoint(ModelCheckpoint):
    """Best-by-`monitor` plus last checkpoint, in ``<run>/version_N/checkpoints``."""

    def __init__(
        self,
        monitor: str | None = "val/loss",
        mode: str = "min",
        save_last: bool = True,
        save_top_k: int = 1,
        filename: str = "best-epoch{epoch:02d}",
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            monitor=monitor,
            mode=mode,
            save_last=save_last,
            save_top_k=save_top_k,
            filename=filename,
            auto_insert_metric_name=False,
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_train_steps,
        )
        self._warned_missing = False

    def _save_topk_checkpoint(self, trainer, monitor_candidates) -> None:
        if self.monitor is not None and self.monitor not in monitor_candidates:
            if not self._warned_missing:
                rank_zero_warn(
                    f"checkpoint: metric {self.monitor!r} is not logged (no validation set?); keeping last.ckpt only"
                )
                self._warned_missing = True
            return
        super()._save_topk_checkpoint(trainer, monitor_candidates)
