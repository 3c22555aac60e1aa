"""Write `cifake predict` outputs: the predictions table as CSV (one row per image).

Why not Lightning's BasePredictionWriter: it hands each rank only its own share, and keeps every batch
in the predict loop; the table has to be gathered from all ranks anyway, and TableCollector already does
that for test and predict alike, so the writer extends it and writes the gathered table on rank zero.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError
from ..utils import write_atomic
from .collect import TableCollector
from .table import results_folder


class PredictionWriter(TableCollector):
    """Write results/<checkpoint>/<data>/predictions.csv on rank zero after `cifake predict`.

    Args:
        results_dir: root of result folders.
        threshold: calibrated P(fake) at or above which an image is called fake; default: the threshold
            chosen on validation data when the checkpoint was fitted (0.5 for a checkpoint without one).
    """

    def __init__(self, results_dir: str = "results", threshold: float | None = None) -> None:
        super().__init__()
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ConfigError("predictions.threshold", f"must be in [0, 1], got {threshold}")
        self.results_dir, self.threshold = results_dir, threshold
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        super().on_predict_epoch_start(trainer, pl_module)
        self._t0 = time.perf_counter()

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        super().on_predict_epoch_end(trainer, pl_module)
        table = self.tables.get("predict")
        if table is None or not trainer.is_global_zero:
            return
        folder = results_folder(self.results_dir, table, {"threshold": self.threshold})
        self.path = write_atomic(folder / "predictions.csv", table.to_csv(threshold=self.threshold))
        if self.threshold is None:
            n_fake, thr = (
                int(table.decision.sum()),
                f"{table.threshold:.4g} ({table.calibration.rule} on validation)",
            )
        else:
            n_fake, thr = int((table.prob >= self.threshold).sum()), f"{self.threshold:g}"
        seconds = time.perf_counter() - self._t0
        print(
            f"predicted {len(table)} images ({n_fake} fake at P(fake) >= {thr}) in {seconds:.2f}s "
            f"({len(table) / max(seconds, 1e-9):,.0f} images/s, decoding excluded) -> {self.path}",
            file=sys.stderr,
        )
