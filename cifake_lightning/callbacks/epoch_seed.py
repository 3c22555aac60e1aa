"""Reseed the global RNGs at the start of every training epoch from (seed, epoch).

Lightning does not store RNG states in checkpoints, so a run resumed from `last.ckpt` would draw
different augmentations and dropout masks than the uninterrupted run. Reseeding per epoch makes
epoch k identical whether or not the process restarted before it (tests/test_resume.py).
"""

from __future__ import annotations

import lightning as L


class EpochSeed(L.Callback):
    """Args: seed: base seed (default: the run's `seed_everything`, read from PL_GLOBAL_SEED)."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        import os

        from lightning.fabric.utilities.seed import seed_everything

        base = self.seed if self.seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        seed = (base * 1_000_003 + trainer.current_epoch * 7919 + trainer.global_rank) % (2**32)
        seed_everything(seed, workers=True, verbose=False)
