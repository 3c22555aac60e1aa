"""Reseed the global RNGs at the start of every training epoch from (seed, epoch, rank).

Lightning does not store RNG states in checkpoints, so a run resumed from `last.ckpt` would draw
different augmentations and dropout masks than the uninterrupted run. Reseeding per epoch makes
epoch k identical whether or not the process restarted before it (tests/callbacks/test_checkpoint.py kills a
run with SIGKILL mid-epoch and checks the resumed run ends with identical weights).

The base seed is read once, when fitting starts, and the RNGs are seeded directly: Lightning's
`seed_everything` would also overwrite PL_GLOBAL_SEED, and a second epoch would then derive its seed
from the first epoch's instead of from the run's seed — a chain a resumed process cannot replay.
"""

from __future__ import annotations

import os
import random

import lightning as L
import numpy as np
import torch


class EpochSeed(L.Callback):
    """Args: seed: base seed (default: the run's `seed_everything`, read from PL_GLOBAL_SEED at fit start)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._base: int | None = seed

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.seed is None:
            self._base = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        base = self._base if self._base is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        seed = (base * 1_000_003 + trainer.current_epoch * 7919 + trainer.global_rank) % (2**32)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)  # also seeds every CUDA device
