"""TableCollector: turn the test/predict loops' per-image outputs into a PredictionTable.

The model's `test_step` / `predict_step` return ``{"index", "logit"}`` per batch; this callback keeps
them, gathers every DDP rank's share at the end of the loop (a collective: every rank runs it), and
builds the table against the data module's manifest of the split that was scored. It is the only
place where predictions are gathered; reports, prediction files and robustness passes read its tables.
"""

from __future__ import annotations

import lightning as L
import torch

from ..distributed import gather_uneven
from ..models.calibration import IDENTITY
from .table import PredictionTable


class TableCollector(L.Callback):
    """Collect test and predict outputs; `tables["test"]` / `tables["predict"]` hold the last of each."""

    def __init__(self) -> None:
        self.tables: dict[str, PredictionTable] = {}
        self._parts: list[dict[str, torch.Tensor]] = []

    # ------------------------------------------------------------------ shared
    def _start(self) -> None:
        self._parts = []

    def _keep(self, outputs) -> None:
        if isinstance(outputs, dict) and "logit" in outputs and "index" in outputs:
            self._parts.append({k: outputs[k].detach().cpu() for k in ("index", "logit")})

    def _finish(self, trainer, pl_module, stage: str) -> None:
        parts, self._parts = self._parts, []
        if parts:
            local = {k: torch.cat([p[k] for p in parts]) for k in ("index", "logit")}
        else:
            local = {"index": torch.zeros(0, dtype=torch.long), "logit": torch.zeros(0)}
        if trainer.world_size > 1:
            local = gather_uneven(pl_module, local)
        dm = trainer.datamodule
        if dm is None or not hasattr(dm, "manifest") or len(local["index"]) == 0:
            self.tables.pop(stage, None)
            return
        split = "test" if stage == "test" else dm.predict_split
        self.tables[stage] = PredictionTable(
            local["index"],
            local["logit"],
            dm.manifest(split),
            checkpoint=trainer.ckpt_path,
            calibration=getattr(pl_module, "calibration", None) or IDENTITY,
        )

    # ------------------------------------------------------------------ test loop
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._start()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep(outputs)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "test")

    # ------------------------------------------------------------------ predict loop
    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self._start()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep(outputs)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        self._finish(trainer, pl_module, "predict")
