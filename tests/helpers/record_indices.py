"""Test helper: each rank writes the sample indices it trained on, per epoch, to a JSON file."""

import json
import os
from pathlib import Path

import lightning as L


class RecordIndices(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = out
        self.seen: dict[int, list[int]] = {}
        self.steps: dict[int, int] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.setdefault(trainer.current_epoch, []).extend(batch["index"].tolist())
        self.steps[trainer.current_epoch] = self.steps.get(trainer.current_epoch, 0) + 1

    def on_train_end(self, trainer, pl_module):
        path = Path(self.out) / f"rank{trainer.global_rank}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "seen": self.seen,
                    "steps": self.steps,
                    "world": trainer.world_size,
                    "n_train": len(trainer.datamodule.manifest("train")),
                    "pid": os.getpid(),
                }
            )
        )
