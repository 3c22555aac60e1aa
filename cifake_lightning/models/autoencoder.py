"""Convolutional autoencoder preprocessing (seed 001, ISITCAP; after Stanciu & Ionescu 2023).

The autoencoder is trained to reconstruct CIFAKE images (`AutoencoderModule`, configs/isitcap/
train_autoencoder.yaml). `AutoencoderFilter` then passes every image through the frozen autoencoder
before the classifier (ImageClassifier's `preprocess`), removing what the bottleneck cannot carry —
mostly fine high-frequency detail, which is where generator traces live. ISITCAP asks whether that
spreads the classifier's feature importance and helps it generalise to unseen generators.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError
from .checkpoint import read_checkpoint
from .registry import register_model


class ConvAutoencoder(nn.Module):
    """32x32x3 -> (latent x 8 x 8) -> 32x32x3 in [0, 1]; two stride-2 conv stages each way."""

    def __init__(self, widths: tuple[int, int] = (32, 64), latent: int = 16) -> None:
        super().__init__()
        w1, w2 = widths
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w1, 3, 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w1, w2, 3, 2, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(w2, latent, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent, w2, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w2, w1, 4, 2, 1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(w1, 3, 4, 2, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def load_autoencoder(path: str | Path) -> ConvAutoencoder:
    """The autoencoder weights from an AutoencoderModule checkpoint (weights_only load)."""
    ckpt = read_checkpoint(path)
    state = {
        k.removeprefix("autoencoder."): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("autoencoder.")
    }
    if not state:
        raise CheckpointError(
            "holds no autoencoder weights (train one with configs/isitcap/train_autoencoder.yaml)", path
        )
    widths = (state["encoder.0.weight"].shape[0], state["encoder.2.weight"].shape[0])
    ae = ConvAutoencoder(widths=widths, latent=state["encoder.4.weight"].shape[0])
    ae.load_state_dict(state)
    return ae


class AutoencoderFilter(nn.Module):
    """Frozen autoencoder applied to [0, 1] images before the classifier.

    Args:
        checkpoint: AutoencoderModule checkpoint to load (required for real runs; None = untrained, tests only).
        train_only: use it only while training (as an augmentation), not at test time.
        p: probability per image of passing through the autoencoder during training.
    """

    def __init__(self, checkpoint: str | None = None, train_only: bool = False, p: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError("model.preprocess.p", f"must be in [0, 1], got {p}")
        self.autoencoder = load_autoencoder(checkpoint) if checkpoint else ConvAutoencoder()
        self.autoencoder.requires_grad_(False)
        self.train_only, self.p = train_only, p

    def train(self, mode: bool = True):
        super().train(mode)
        self.autoencoder.eval()  # frozen: never update its statistics
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x if self.train_only else self.autoencoder(x)
        if self.p >= 1.0:
            return self.autoencoder(x)
        keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.p
        return torch.where(keep, x, self.autoencoder(x))


register_model("conv_autoencoder")(ConvAutoencoder)
