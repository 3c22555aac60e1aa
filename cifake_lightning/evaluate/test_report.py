"""Write what `cifake test` measured to results/<name>/version_N/ (JSON first, so nothing is lost).

The callback runs on global rank zero after the test loop; the per-image predictions it reads were
gathered from every rank by ImageClassifier, so a DDP test writes the same files as a single-process one.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L

from ..utils import write_json

log = logging.getLogger(__name__)


class TestReport(L.Callback):
    """Save test metrics, the confusion matrix and per-image predictions of a test run.

    Args:
        results_dir: root of result folders (default ``results``); the run's subfolder mirrors runs/.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, results_dir: str = "results") -> None:
        self.results_dir = results_dir
        self.last_dir: Path | None = None

    def _out_dir(self, trainer) -> Path:
        logger = trainer.loggers[0] if trainer.loggers else None
        if logger is not None and getattr(logger, "name", None) and getattr(logger, "version", None) is not None:
            return Path(self.results_dir) / str(logger.name) / f"version_{logger.version}"
        return Path(self.results_dir) / "test"

    def on_test_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        out = self._out_dir(trainer)
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        summary = {
            "metrics": metrics,
            "confusion_matrix": getattr(pl_module, "confusion", {}).get("test"),
            "ckpt_path": trainer.ckpt_path,
        }
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "summary"):
            summary["data"] = {k: v for k, v in dm.summary().items() if k == "test" or k == "predict"}
        write_json(out / "metrics.json", summary)
        self.last_dir = out
        log.info("test results written to %s", out)
