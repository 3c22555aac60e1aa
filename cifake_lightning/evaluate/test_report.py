"""Write what `cifake test` measured to results/<run>/version_N/<checkpoint>/<data>/ (JSON first).

The folder is keyed by the checkpoint scored and the content hash of the data it was scored on, so
testing the best and the last checkpoint of a run, or one checkpoint on two data sets, keeps every
result. The per-image predictions come from the TableCollector this callback extends (gathered from
every DDP rank), so a DDP test writes the same files as a single-process one.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml

from ..errors import ConfigError
from ..utils import write_json
from .collect import TableCollector
from .ood_report import write_source_report
from .robustness import PERTURBATIONS, perturbed_logits
from .table import PredictionTable, checkpoint_key, file_digest, results_folder

log = logging.getLogger(__name__)


class TestReport(TableCollector):
    """Save test metrics, the confusion matrix and per-image predictions of a test run.

    Args:
        results_dir: root of result folders (default ``results``).
        robustness: also score the test set under JPEG re-compression, blur and rescaling; each
            perturbation is one more pass of the model over the perturbed test images (`run_robustness`).
        gallery_size: how many of the most confident false positives/negatives to show.
        ece_bins: bins of the expected calibration error and of the reliability diagram.
        reference_real, reference_fake: rank one-class sources against this source of the other class
            only (e.g. the in-distribution test folders) instead of all images of that class.
        seen: fake sources made by a generator of a kind that made training fakes (default: the
            reference_fake, plus, if the model trained on fakes, those of the run's own data and the test
            sources that are folders it trained on with `data.extra_fakes`: `trained_sources`). Every
            other fake source is unseen and enters the generalisation summary
            (mean and worst AUROC/AP, TPR at 1%/5% FPR against the OOD reals).
        ood_real: real sources the model has never seen the like of (default: every real source but
            the reference_real), e.g. ood/real_photos.
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
        seen: list[str] | None = None,
        ood_real: list[str] | None = None,
    ) -> None:
        super().__init__()
        if ece_bins < 2:
            raise ConfigError("report.ece_bins", f"must be >= 2, got {ece_bins}")
        self.results_dir = results_dir
        self.robustness = robustness
        self.gallery_size = gallery_size
        self.ece_bins = ece_bins
        self.reference_real, self.reference_fake = reference_real, reference_fake
        self.seen, self.ood_real = seen, ood_real
        self.last_dir: Path | None = None
        self.report: dict | None = None
        self._metrics: dict = {}

    def on_test_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        self._metrics = {
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")},
            "confusion_matrix": getattr(pl_module, "confusion", {}).get("test"),
            "ckpt_path": trainer.ckpt_path,
        }
        self.write(trainer)

    def write(self, trainer, robustness: dict[str, PredictionTable] | None = None) -> Path | None:
        """(Re)write the report of the last test table, with robustness tables when given."""
        table = self.tables.get("test")
        dm = trainer.datamodule
        if table is None:  # collect_predictions off, or a module without manifests: metrics only
            ckpt = trainer.ckpt_path
            digest = file_digest(ckpt)[:8] if ckpt and Path(ckpt).is_file() else "none"
            out = Path(self.results_dir) / checkpoint_key(ckpt) / f"metrics-only-{digest}"
            write_json(out / "metrics.json", self._metrics)
            self.last_dir = out
            return out
        out = results_folder(self.results_dir, table, self.options())
        write_json(out / "metrics.json", {**self._metrics, "data": table.manifest.describe()})

        self.report = write_source_report(
            out,
            table,
            images=dm.images(table.manifest.split) if hasattr(dm, "images") else None,
            robustness=robustness,
            gallery_size=self.gallery_size,
            ece_bins=self.ece_bins,
            reference_real=self.reference_real,
            reference_fake=self.reference_fake,
            loggers=trainer.loggers,
            seen=self.seen
            if self.seen is not None
            else trained_sources(
                trainer.ckpt_path,
                table.manifest,
                self.reference_fake,
                trains_on_fakes=getattr(trainer.lightning_module, "trains_on_fakes", True),
            ),
            ood_real=self.ood_real,
        )
        self.last_dir = out
        print(f"cifake: test results written to {out}/", file=sys.stderr)
        return out

    def options(self) -> dict:
        """What besides checkpoint, data and calibration changes this report (part of its folder's key)."""
        return {
            "robustness": self.robustness,
            "gallery_size": self.gallery_size,
            "ece_bins": self.ece_bins,
            "reference": [self.reference_real, self.reference_fake],
            "seen": self.seen,
            "ood_real": self.ood_real,
        }

    def run_robustness(self, trainer, model) -> dict[str, PredictionTable]:
        """Score the test split once per perturbation and rewrite the report (rank zero only).

        The perturbation is applied here, on the consumer side, to the batches fed to the model: the
        data module only serves the clean images it decoded (evaluate/robustness.py)."""
        clean = self.tables.get("test")
        if clean is None or not trainer.is_global_zero:
            return {}
        images = trainer.datamodule.images(clean.manifest.split)[clean.index]
        tables = {}
        for i, name in enumerate(PERTURBATIONS, 1):
            print(f"cifake: robustness pass {i}/{len(PERTURBATIONS)}: {name}", file=sys.stderr)
            logit = perturbed_logits(model, images, PERTURBATIONS[name], trainer.datamodule.eval_batch_size)
            tables[name] = PredictionTable(
                clean.index, logit, clean.manifest, clean.checkpoint, name, clean.calibration
            )
        self.write(trainer, robustness=tables)
        return tables


def trained_sources(
    ckpt_path, manifest, reference_fake: str | None, trains_on_fakes: bool = True
) -> list[str] | None:
    """The default `seen`: the reference fake, plus, when the checkpoint's model trained on fakes, every
    fake source of the run's own data set (the data module class and root of its config.yaml beside
    checkpoints/: its test split's FAKE is the kind it trained on) and every test source that is a folder
    the run trained on as extra fakes (e.g. the other sources of a leave-one-source-out sweep); None (the
    report's own default, the reference fake alone) when none of them is in the test data."""
    config = Path(ckpt_path).parents[1] / "config.yaml" if ckpt_path else None
    if not trains_on_fakes or config is None or not config.is_file():
        return None
    try:
        data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    except (OSError, yaml.YAMLError):
        return None
    init = data.get("init_args") or {}
    root = Path(str(init.get("root") or "."))
    test_root = Path(str(manifest.root))
    own = str(data.get("class_path", "")).rsplit(".", 1)[-1] == manifest.data
    if own and root.resolve() == test_root.resolve():
        fake = {int(s) for s in manifest.source[manifest.labels == 1].tolist()}
        matched = [n for i, n in enumerate(manifest.source_names) if i in fake]
    else:
        trained = {
            (Path(e) if Path(e).is_absolute() else root / e).resolve() for e in init.get("extra_fakes") or []
        }
        matched = [s for s in manifest.source_names if (test_root / s).resolve() in trained]
    if not matched:
        return None
    return [reference_fake, *(m for m in matched if m != reference_fake)] if reference_fake else matched
