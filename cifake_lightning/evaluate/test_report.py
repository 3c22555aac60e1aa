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
        robustness: also score the test set under JPEG re-compression, blur and rescaling (slower).
        gallery_size: how many of the most confident false positives/negatives to show.
        ece_bins: bins of the expected calibration error.
        reference_real, reference_fake: rank one-class sources against this source of the other class
            only (e.g. the in-distribution test folders) instead of all images of that class.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        results_dir: str = "results",
        robustness: bool = False,
        gallery_size: int = 16,
        ece_bins: int = 15,
        reference_real: str | None = None,
        reference_fake: str | None = None,
    ) -> None:
        self.results_dir = results_dir
        self.robustness = robustness
        self.gallery_size = gallery_size
        self.ece_bins = ece_bins
        self.reference_real, self.reference_fake = reference_real, reference_fake
        self.last_dir: Path | None = None

    def _out_dir(self, trainer) -> Path:
        logger = trainer.loggers[0] if trainer.loggers else None
        if (
            logger is not None
            and getattr(logger, "name", None)
            and getattr(logger, "version", None) is not None
        ):
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
        preds = getattr(pl_module, "test_predictions", None)
        if preds and "prob" in preds:
            from .ood_report import write_source_report

            write_source_report(
                out,
                preds,
                dm,
                pl_module,
                trainer,
                robustness=self.robustness,
                gallery_size=self.gallery_size,
                ece_bins=self.ece_bins,
                reference_real=self.reference_real,
                reference_fake=self.reference_fake,
            )
        log.info("test results written to %s", out)
