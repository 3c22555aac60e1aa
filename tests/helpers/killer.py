"""Test helper: a callback that signals its own process in the middle of a chosen epoch (default kill -9)."""

import os
import signal

import lightning as L


class KillDuringEpoch(L.Callback):
    def __init__(self, epoch: int = 1, batch: int = 2, sig: int = int(signal.SIGKILL)) -> None:
        self.epoch, self.batch, self.sig = epoch, batch, sig

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), self.sig)
