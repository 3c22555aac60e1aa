"""ImageClassifier: the one LightningModule for binary real (0) / fake (1) classification.

It wraps any backbone ``nn.Module`` that maps normalised (B, 3, H, W) images to (B,) or (B, 1) logits,
trains it with BCE-with-logits, and tracks accuracy, precision, recall, F1, AUROC and the confusion
matrix per split with torchmetrics ("fake" is the positive class). Inputs are float [0, 1] images;
normalisation is its first layer. Optimiser and scheduler come from the config (LightningCLI's
dependency injection), so `--model.optimizer.init_args.lr 3e-4` or a fused AdamW need no code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from lightning import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryConfusionMatrix,
    BinaryF1Score,
    BinaryPrecision,
    BinaryRecall,
)

from ..distributed import gather_uneven
from ..errors import ConfigError
from ..models.calibration import IDENTITY, check_method, check_rule, fit
from ..models.compiling import check_compile_mode, compile_in_place, mark_step
from ..models.detector import Detector

EVAL_SPLITS = ("val", "test")


def _metrics(prefix: str) -> MetricCollection:
    return MetricCollection(
        {
            "acc": BinaryAccuracy(),
            "precision": BinaryPrecision(),
            "recall": BinaryRecall(),
            "f1": BinaryF1Score(),
            "auroc": BinaryAUROC(),
        },
        prefix=prefix,
    )


def final_linear(backbone: nn.Module) -> nn.Linear:
    """The backbone's last one-unit linear layer (its logit), whose input is the feature vector."""
    heads = [m for m in backbone.modules() if isinstance(m, nn.Linear) and m.out_features == 1]
    if not heads:
        raise ConfigError(
            "model.real_compact",
            f"{type(backbone).__name__} has no final nn.Linear(..., 1) to take features from",
        )
    return heads[-1]


def _cli_instantiated() -> bool:
    """True while LightningCLI builds this module (it then saves the config dicts as hparams)."""
    try:
        return _given_hyperparameters.get() is not None
    except ImportError:  # pragma: no cover - private API moved
        return False


class ImageClassifier(LightningModule):
    """Binary real/fake classifier around any backbone.

    Args:
        backbone: nn.Module returning one logit per image (e.g. BirdLotfiCNN, DualStreamDetector).
        normalize: input normalisation preset: none | half | cifar10 | imagenet.
        optimizer: optimiser factory (default Adam, lr 1e-3 as in the paper).
        scheduler: optional LR scheduler factory; ReduceLROnPlateau monitors val/loss.
        channels_last: channels-last memory format for weights and inputs (faster convolutions on GPUs with
            bf16/fp16 and on CPUs with oneDNN; see benchmarks/results/memory_format.md).
        compile: torch.compile the backbone in place: true/"default", "reduce-overhead" (CUDA graphs)
            or "max-autotune"; checkpoints stay interchangeable with uncompiled runs.
        collect_predictions: return per-image logits from test_step for the predictions table (reports,
            galleries); off saves nothing measurable and leaves `cifake test` with metrics only.
        preprocess: optional module applied to [0, 1] images before normalisation (e.g. the ISITCAP
            AutoencoderFilter); attributions include it, as they should.
        calibration: how P(fake) is calibrated on the validation logits kept with each checkpoint:
            temperature | platt | none (models/calibration.py). Used by test, predict and explain.
        threshold: the operating threshold, chosen on the same validation logits: fpr:<x> (at most a
            share x of validation reals called fake), youden, or a fixed P(fake) in (0, 1). Reports
            give accuracies at this threshold beside the fixed 0.5.
        real_compact: weight of a loss that keeps the real class tight (0 = off). UnivFD (Ojha et al.,
            CVPR 2023) found that a detector's "real" class becomes the sink for fakes it has never seen,
            because only the fake side is modelled; in the spirit of Deep SVDD (Ruff et al., ICML 2018)
            this adds, in training, ``real_compact * mean(1 - cos(f(x), c))`` over the reals of each
            batch, where f(x) is the input of the backbone's final one-unit linear layer and c the
            running (EMA 0.9) direction of the reals' features. Cosine keeps it scale-free (no collapse
            by shrinking features); fakes are left free. Measured in benchmarks/results/generalisation.md.
    """

    trains_on_fakes = True  # test reports count the fakes of the run's own data as a seen kind

    def __init__(
        self,
        backbone: nn.Module,
        normalize: str = "cifar10",
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        channels_last: bool = True,
        compile: bool | str = False,
        collect_predictions: bool = True,
        preprocess: nn.Module | None = None,
        calibration: str = "temperature",
        threshold: str | float = "fpr:0.01",
        real_compact: float = 0.0,
    ) -> None:
        super().__init__()
        if not real_compact >= 0:
            raise ConfigError("model.real_compact", f"must be >= 0 (0 = off), got {real_compact}")

        self.calibration_method = check_method(calibration)
        self.threshold_rule = check_rule(threshold)
        if _cli_instantiated():
            self.save_hyperparameters()
        else:  # plain Python use: modules are not serialisable config; the caller passes them again
            self.save_hyperparameters(ignore=["backbone", "optimizer", "scheduler", "preprocess"])
        self.detector = Detector(backbone, normalize, preprocess, channels_last)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.channels_last = channels_last
        self.compile_backbone = check_compile_mode(compile)
        self.collect_predictions = collect_predictions
        self.train_acc = BinaryAccuracy()
        self.val_metrics = _metrics("val/")
        self.test_metrics = _metrics("test/")
        self.val_confusion = BinaryConfusionMatrix()
        self.test_confusion = BinaryConfusionMatrix()
        self.confusion: dict[str, list[list[int]]] = {}
        self.val_scores: dict[str, torch.Tensor] | None = None  # last validation epoch's logits/labels
        self._val_parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._calibration = None
        self.real_compact = float(real_compact)
        self._features: torch.Tensor | None = None
        if self.real_compact > 0:
            head = final_linear(self.backbone)
            head.register_forward_pre_hook(self._keep_features)
            self.register_buffer("real_centre", torch.zeros(head.in_features), persistent=False)

    def _keep_features(self, module, args) -> None:
        self._features = args[0] if self.training else None

    # ------------------------------------------------------------------ model
    def configure_model(self) -> None:
        compile_in_place(self.backbone, self.compile_backbone)

    @property
    def backbone(self) -> nn.Module:
        return self.detector.backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float images in [0, 1] -> (B,) logits (positive = fake): the Detector's."""
        return self.detector(x)

    # ------------------------------------------------------------------ steps
    def _loss(self, batch):
        x, y = batch["image"], batch["label"].float()
        mark_step(self.compile_backbone)
        logits = self(x).float()
        loss = F.binary_cross_entropy_with_logits(logits, y)
        if self.real_compact > 0 and self.training and self._features is not None:
            loss = loss + self.real_compact * self._compactness(self._features.flatten(1).float(), y)
        return loss, logits, y

    def _compactness(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """mean(1 - cos(z_real, c)) with c the running direction of the reals' features (real_compact)."""
        real = F.normalize(z[y == 0], dim=1)
        if real.shape[0] == 0:
            return z.sum() * 0.0
        with torch.no_grad():
            batch = real.mean(0)
            c = batch if not bool(self.real_centre.any()) else 0.9 * self.real_centre + 0.1 * batch
            self.real_centre.copy_(F.normalize(c, dim=0))
        term = (1 - real @ self.real_centre).mean()
        self.log("train/real_compact", term.detach(), on_step=False, on_epoch=True, batch_size=real.shape[0])
        return term

    def training_step(self, batch, batch_idx):
        loss, logits, y = self._loss(batch)
        self.train_acc(torch.sigmoid(logits.detach()), y.long())
        n = y.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n, sync_dist=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def _eval_loss(self, batch) -> tuple[torch.Tensor | None, int, torch.Tensor, torch.Tensor]:
        """(loss or None, images the loss is over, logits, labels) of an evaluation batch."""
        loss, logits, y = self._loss(batch)
        return loss, y.shape[0], logits, y

    def _eval_step(self, batch, split: str):
        loss, n_loss, logits, y = self._eval_loss(batch)
        probs = torch.sigmoid(logits)
        metrics = self.val_metrics if split == "val" else self.test_metrics
        confusion = self.val_confusion if split == "val" else self.test_confusion
        metrics.update(probs, y.long())
        confusion.update(probs, y.long())
        if loss is not None and n_loss:
            self.log(
                f"{split}/loss",
                loss,
                on_step=False,
                on_epoch=True,
                prog_bar=split == "val",
                batch_size=n_loss,
                sync_dist=True,
            )
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=y.shape[0])
        return logits

    def validation_step(self, batch, batch_idx):
        logits = self._eval_step(batch, "val")
        if not self.trainer.sanity_checking:
            self._val_parts.append(
                (logits.detach().float(), batch["label"].detach().long())
            )  # stays on device
        return logits  # checked for finite values by callbacks.FiniteGuard

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """Metrics as in validation; returns {"index", "logit"} per image for the predictions table."""
        logits = self._eval_step(batch, "test")
        if self.collect_predictions:
            return {"index": batch["index"], "logit": logits.detach()}
        return None

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """{"index", "logit"} per image; evaluate.collect.TableCollector turns them into a table."""
        return {"index": batch["index"], "logit": self(batch["image"]).float()}

    # ------------------------------------------------------------------ epoch ends
    def _store_confusion(self, split: str) -> None:
        cm = (self.val_confusion if split == "val" else self.test_confusion).compute()
        self.confusion[split] = cm.tolist()
        for (i, j), name in zip(((0, 0), (0, 1), (1, 0), (1, 1)), ("tn", "fp", "fn", "tp")):
            # already summed over ranks by torchmetrics; sync_dist averages identical values (and keeps DDP quiet)
            self.log(f"{split}/{name}", cm[i, j].float(), sync_dist=True)
        (self.val_confusion if split == "val" else self.test_confusion).reset()

    def on_validation_epoch_start(self) -> None:
        self._val_parts = []

    def on_validation_epoch_end(self) -> None:
        self._store_confusion("val")
        if self.trainer.sanity_checking or not self._val_parts:
            return
        logit = torch.cat([p[0] for p in self._val_parts]).cpu()  # one device-to-host copy per epoch
        label = torch.cat([p[1] for p in self._val_parts]).cpu()
        self._val_parts = []
        if self.trainer.world_size > 1:
            got = gather_uneven(self, {"logit": logit, "label": label})
            logit, label = got["logit"], got["label"]
        self.val_scores = {"logit": logit, "label": label}
        self._calibration = None  # refitted from these scores when first asked for

    # ------------------------------------------------------------------ calibration
    @property
    def calibration(self):
        """Calibration + validation-chosen threshold of the current weights (models/calibration.py),
        fitted on the last validation epoch's logits (kept in every checkpoint); identity without them."""
        if self._calibration is None:
            s = self.val_scores
            self._calibration = (
                fit(s["logit"], s["label"], self.calibration_method, self.threshold_rule) if s else IDENTITY
            )
            self.detector.calibration = self._calibration
        return self._calibration

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.val_scores is not None:
            checkpoint["cifake_val_scores"] = {k: v.clone() for k, v in self.val_scores.items()}
            checkpoint["cifake_calibration"] = self.calibration.to_dict()  # for readers without torch code

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        scores = checkpoint.get("cifake_val_scores")
        if isinstance(scores, dict) and {"logit", "label"} <= set(scores):
            self.val_scores = {"logit": scores["logit"].float(), "label": scores["label"].long()}
        else:
            self.val_scores = None
        self._calibration = None

    def on_test_epoch_end(self) -> None:
        self._store_confusion("test")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        try:  # torch validates lr, betas, eps, ... only here, at the start of fit
            optimizer = self.optimizer_factory(self.parameters())
        except (ValueError, TypeError) as e:
            raise ConfigError("model.optimizer", str(e)) from e
        for group in optimizer.param_groups:  # torch accepts lr=0, which silently trains nothing
            lr = group.get("lr")
            if isinstance(lr, int | float) and lr <= 0:
                raise ConfigError("model.optimizer", f"learning rate must be > 0, got {lr}")
        if self.scheduler_factory is None:
            return optimizer
        try:
            scheduler = self.scheduler_factory(optimizer)
        except (ValueError, TypeError) as e:
            raise ConfigError("model.scheduler", str(e)) from e
        config = {"scheduler": scheduler}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}
