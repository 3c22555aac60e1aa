"""ExplainCallback: explanation maps of a fixed probe set, logged while training runs.

Every `every_n_epochs` validation epochs, global rank zero explains the probe set (balanced real/fake,
chosen once by seed) and logs: one W&B image per probe image (the image and each method's overlay,
captioned with the true label and P(fake)), the band-ablation curve as a W&B line chart, and summary
statistics; PNG/JSON copies go to ``<log_dir>/explain/epoch_NNN/`` for runs without W&B.

It must not change what is trained: it runs under `torch.random.fork_rng` (no RNG draws leak), in
float32 with autocast off whatever the trainer's precision, with the model in eval mode (restored
afterwards), and takes gradients only with respect to inputs (parameter .grad stays untouched).
tests/explain/test_explain.py checks that a run with the callback ends with bit-identical weights.
"""

from __future__ import annotations

import logging
import time

import lightning as L
import torch

from ..errors import ConfigError
from ..utils import run_dir
from .probe import ProbeSet, choose_probe
from .render import render_grid
from .report import ExplainSettings, explain, write_outputs

log = logging.getLogger(__name__)


class ExplainCallback(L.Callback):
    """Log explanation maps of a fixed probe set during training.

    Args:
        every_n_epochs: explain after every n-th validation epoch (0 disables).
        n_images: probe set size (half real, half fake).
        split: where the probe comes from: val (default) or test.
        seed: seed of the probe choice.
        settings: methods and their parameters (see ExplainSettings).
        save_png: also write PNG/JSON under the run's log dir.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        n_images: int = 8,
        split: str = "val",
        seed: int = 0,
        settings: ExplainSettings | None = None,
        save_png: bool = True,
    ) -> None:
        if every_n_epochs < 0 or n_images < 2:
            raise ConfigError("ExplainCallback", "every_n_epochs must be >= 0 and n_images >= 2")
        self.every_n_epochs, self.n_images, self.split, self.seed = every_n_epochs, n_images, split, seed
        self.settings = settings or ExplainSettings(ig_steps=16)
        self.save_png = save_png
        self.probe: ProbeSet | None = None
        self.seconds: list[float] = []

    def _probe(self, trainer) -> ProbeSet | None:
        if self.probe is None:
            dm = trainer.datamodule
            names = dm.split_names if dm is not None and hasattr(dm, "manifest") else []
            if self.split not in names:  # never fall back to test images while training
                log.warning(
                    "ExplainCallback: the data module has no %r split (has %s; validation off?), so no "
                    "explanations are logged; set split: test to probe test images instead",
                    self.split,
                    names,
                )
                self.every_n_epochs = 0
                return None
            self.probe = choose_probe(
                dm.manifest(self.split), dm.images(self.split), self.n_images, self.seed
            )
        return self.probe

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or not self.every_n_epochs or not trainer.is_global_zero:
            return
        if (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        probe = self._probe(trainer)
        if probe is None:
            return
        t0 = time.perf_counter()
        devices = [pl_module.device] if pl_module.device.type == "cuda" else []
        model = getattr(pl_module, "detector", pl_module)  # the Detector, as `cifake explain` loads it
        if model is not pl_module:
            model.calibration = pl_module.calibration  # fitted on the latest validation scores
        with torch.random.fork_rng(devices=devices):
            ex = explain(
                model, probe.float_images(pl_module.device), probe.labels, probe.files, self.settings
            )
        seconds = time.perf_counter() - t0
        self.seconds.append(seconds)
        self._log(trainer, ex, seconds)

    def _log(self, trainer, ex, seconds: float) -> None:
        epoch = trainer.current_epoch
        summary = ex.summary()
        scalars = {"explain/seconds": seconds}
        for k, v in summary.get("all", {}).items():
            if isinstance(v, float):
                scalars[f"explain/{k}"] = v
        for lg in trainer.loggers:
            lg.log_metrics(scalars, step=trainer.global_step)
        folder = run_dir(trainer)
        if self.save_png and folder is not None:
            write_outputs(ex, folder / "explain" / f"epoch_{epoch:03d}", self.settings, f"epoch {epoch}")
        wandb_loggers = [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]
        if not wandb_loggers:
            return
        import wandb  # seconds to import: only when a W&B logger is attached

        rows = [
            render_grid(
                ex.images[i : i + 1],
                {k: v[i : i + 1] for k, v in ex.maps.items() if isinstance(v, torch.Tensor) and v.dim() == 3},
                [c],
                self.settings.methods,
            )
            for i, c in enumerate(ex.captions())
        ]
        payload = {
            "explain/maps": [wandb.Image(r, caption=c) for r, c in zip(rows, ex.captions())],
            "epoch": epoch,
            "trainer/global_step": trainer.global_step,
        }
        if "band_drop" in ex.maps:
            mean = ex.maps["band_drop"].mean(0).tolist()
            table = wandb.Table(
                data=[[i, n, d] for i, (n, d) in enumerate(zip(ex.maps["band_names"], mean))],
                columns=["band", "radius", "drop_p_fake"],
            )
            payload["explain/band_ablation"] = wandb.plot.line(
                table, "band", "drop_p_fake", title=f"band ablation, epoch {epoch}"
            )
        for lg in wandb_loggers:  # no step=: WandbLogger keeps W&B's own step and logs trainer/global_step
            lg.experiment.log(payload)
