"""Train many Bird & Lotfi topologies in one process on the same batches (the paper's 36-run grid).

Every topology gets exactly the initialisation a separate `cifake fit` with the same seed would give it
(the RNG is reseeded before each one is built), sees the same batches in the same order, and is
optimised by one Adam over all parameters on the *sum* of the per-topology losses. Adam's update of a
parameter depends only on that parameter's gradient, and the gradient of the summed loss with respect
to one model's parameters is that model's own gradient, so each topology follows the same trajectory
as when trained alone (tests/training/test_grid.py checks this). What is saved per topology — metrics.csv,
config.yaml, a checkpoint `cifake test` loads, a W&B run — has the same form as a separate run's.
The data pipeline runs once per step instead of 36 times, which is where the time goes for models
this small; on a GPU add bf16-mixed and channels-last (ImageClassifier's defaults) and torch.compile.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection

from ..distributed import gather_uneven
from ..errors import ConfigError
from ..models.bird_lotfi import BirdLotfiCNN, paper_topologies
from ..models.compiling import check_compile_mode, compile_in_place, mark_step
from ..models.normalize import Normalize
from .classifier import _metrics


class GridClassifier(L.LightningModule):
    """Several BirdLotfiCNN topologies trained side by side.

    Args:
        topologies: names such as conv32x2-dense64x1 (default: the paper's 36).
        seed: initialisation seed of every topology, as `seed_everything` would give a single run
            (default: the run's own `seed_everything`).
        normalize: input normalisation preset (shared).
        init: "torch" or "keras" weight initialisation.
        optimizer: optimiser factory applied to all parameters (default Adam, lr 1e-3).
        channels_last: channels-last memory format (faster on GPUs and oneDNN CPUs).
        compile: torch.compile each topology ("default", "reduce-overhead" = CUDA graphs, or false).
    """

    def __init__(
        self,
        topologies: list[str] | None = None,
        seed: int | None = None,
        normalize: str = "cifar10",
        init: str = "torch",
        optimizer: OptimizerCallable = torch.optim.Adam,
        channels_last: bool = True,
        compile: bool | str = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["optimizer"])
        self.topologies = list(topologies or paper_topologies())
        if len(set(self.topologies)) != len(self.topologies):
            raise ConfigError("model.topologies", "lists a topology twice")
        self.normalize = Normalize(normalize)
        models = {}
        state = torch.random.get_rng_state()
        seed = torch.initial_seed() if seed is None else seed
        for name in self.topologies:
            torch.manual_seed(seed)
            models[name] = BirdLotfiCNN(topology=name, init=init)
        torch.random.set_rng_state(state)
        self.models = nn.ModuleDict({self._key(n): m for n, m in models.items()})
        if channels_last:
            self.models.to(memory_format=torch.channels_last)
        self.optimizer_factory = optimizer
        self.channels_last, self.compile_mode = channels_last, check_compile_mode(compile)
        self.val_metrics = nn.ModuleDict({self._key(n): _metrics("val/") for n in self.topologies})
        self.test_metrics = nn.ModuleDict({self._key(n): _metrics("test/") for n in self.topologies})
        self._val_parts: dict[str, list[torch.Tensor]] = {}
        self.val_scores: dict[str, dict[str, torch.Tensor]] = {}  # topology -> last validation logits/labels

    @staticmethod
    def _key(name: str) -> str:
        return name.replace("-", "_")  # ModuleDict keys cannot hold every character a name may

    def configure_model(self) -> None:
        for m in self.models.values():
            compile_in_place(m, self.compile_mode)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mark_step(self.compile_mode)
        x = self.normalize(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return {name: self.models[self._key(name)](x).reshape(-1) for name in self.topologies}

    def training_step(self, batch, batch_idx):
        y = batch["label"].float()
        outs = self(batch["image"])
        losses = {n: F.binary_cross_entropy_with_logits(o.float(), y) for n, o in outs.items()}
        total = torch.stack(list(losses.values())).sum()
        n = y.shape[0]
        for name, loss in losses.items():
            self.log(f"{name}/train/loss_epoch", loss, on_step=False, on_epoch=True, batch_size=n)
        self.log("train/loss_sum", total, prog_bar=True, batch_size=n)
        return total

    def _eval(self, batch, split: str):
        y = batch["label"]
        outs = self(batch["image"])
        metrics = self.val_metrics if split == "val" else self.test_metrics
        n = y.shape[0]
        for name, o in outs.items():
            probs = torch.sigmoid(o.float())
            self.log(
                f"{name}/{split}/loss",
                F.binary_cross_entropy_with_logits(o.float(), y.float()),
                on_epoch=True,
                batch_size=n,
            )
            m: MetricCollection = metrics[self._key(name)]
            m.update(probs, y.long())
            if split == "val" and not self.trainer.sanity_checking:
                self._val_parts.setdefault(name, []).append(o.detach().float())
        if split == "val" and not self.trainer.sanity_checking:
            self._val_parts.setdefault("_label", []).append(y.detach().long())
        return outs  # checked for finite values by callbacks.FiniteGuard

    def _log_epoch(self, split: str) -> None:
        metrics = self.val_metrics if split == "val" else self.test_metrics
        accs = []
        for name in self.topologies:
            m = metrics[self._key(name)]
            values = m.compute()
            for k, v in values.items():
                self.log(f"{name}/{k}", v)
            accs.append(values[f"{split}/acc"])
            m.reset()
        self.log(f"{split}/acc_mean", torch.stack(accs).mean(), prog_bar=True)

    def validation_step(self, batch, batch_idx):
        return self._eval(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")
        parts, self._val_parts = self._val_parts, {}
        if self.trainer.sanity_checking or "_label" not in parts:
            return
        label = torch.cat(parts.pop("_label")).cpu()
        got = {name: torch.cat(v).cpu() for name, v in parts.items()}
        if self.trainer.world_size > 1:
            got = gather_uneven(self, {**got, "_label": label})
            label = got.pop("_label")
        # each topology's last validation logits, kept in its exported checkpoint (calibration and the
        # validation-chosen threshold, as a separate run's checkpoint has them)
        self.val_scores = {name: {"logit": z, "label": label} for name, z in got.items()}

    def test_step(self, batch, batch_idx):
        return self._eval(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        return self.optimizer_factory(self.parameters())
