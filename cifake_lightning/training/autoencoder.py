"""AutoencoderModule: trains the ISITCAP autoencoder (models/autoencoder.py) on [0, 1] images."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from ..models.autoencoder import ConvAutoencoder
from .classifier import _cli_instantiated


class AutoencoderModule(L.LightningModule):
    """Trains a ConvAutoencoder on [0, 1] images (labels unused); logs reconstruction MSE and PSNR."""

    def __init__(self, autoencoder: nn.Module | None = None, lr: float = 1e-3) -> None:
        super().__init__()
        self.save_hyperparameters() if _cli_instantiated() else self.save_hyperparameters(
            ignore=["autoencoder"]
        )
        self.autoencoder = autoencoder if autoencoder is not None else ConvAutoencoder()
        self.lr = lr

    def forward(self, x):
        return self.autoencoder(x)

    def _step(self, batch, split: str):
        x = batch["image"]
        mse = F.mse_loss(self(x).float(), x.float())
        self.log(
            f"{split}/loss",
            mse,
            prog_bar=True,
            on_step=split == "train",
            on_epoch=True,
            batch_size=x.shape[0],
        )
        self.log(
            f"{split}/psnr",
            10 * torch.log10(1.0 / mse.clamp_min(1e-10)),
            on_epoch=True,
            batch_size=x.shape[0],
        )
        return mse

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")  # checked by callbacks.FiniteGuard

    def test_step(self, batch, batch_idx):
        return self._step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)
