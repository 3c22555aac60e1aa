"""A zoo of small training generators: extra training fakes of several generator families (issue 29).

Community Forensics (Park & Owens, CVPR 2025) finds that the number and variety of the generators a
detector is trained on matters more than any one of them. genset-v2 trains on one generator (a DCGAN);
this module adds generators of other families, each trained here on the *training reals* of the run
(never on a test or OOD set) for a CPU-sized budget, and samples `samples` images from each:

* ``vae``: a convolutional variational autoencoder (Kingma & Welling, ICLR 2014) with a 64-d Gaussian
  latent and a transposed-convolution decoder; fakes are decodings of prior samples (blurry, the
  likelihood-model trace). NOTE: makes genset-v2's ood/vae_* a *seen* kind.
* ``gan``: a hinge-loss GAN (Miyato et al., ICLR 2018: spectral norm in the discriminator) whose
  generator upsamples by sub-pixel convolution (pixel shuffle, Shi et al., CVPR 2016), an upsampler
  neither genset-v2's DCGAN (transposed convolutions) nor its unseen upsample-conv GAN uses.
* ``pixelcnn``: an autoregressive PixelCNN (van den Oord et al., ICML 2016; masks A and B) predicting a
  discretised logistic per sub-pixel (Salimans et al., PixelCNN++, ICLR 2017) from the pixels above and
  to the left (the three channels of a pixel are sampled independently given that context, a
  simplification of PixelCNN's channel ordering); sampled pixel by pixel on a band of rows as tall as
  its receptive field, so sampling costs 1024 passes over a 7-row band.

Fakes are rounded to uint8, re-encoded as JPEG at `jpeg_quality` like the reals, and cached next to the
decode caches under a key of the options and the training reals' hashes: a second run with the same
reals and options loads them instead of training the generator again. They join the training split
only, as source ``zoo/<family>``, with no content class.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ..errors import ConfigError
from .aligned import _cached_images, _key, _to_uint8, append_fakes, jpeg_roundtrip
from .split import DecodedSplit

log = logging.getLogger(__name__)

LATENT = 64


@dataclass
class ZooGenerator:
    """One training generator of the zoo (see module docstring).

    Attributes:
        family: vae, gan or pixelcnn.
        samples: fakes to sample from it (added to the training split).
        steps, batch_size, lr: its training on the training reals (Adam).
        width: channels of its convolutions.
        jpeg_quality: re-encode the samples as JPEG at this quality (None: the raw uint8 output).
        seed: seeds its initialisation, training batches and sampling.
    """

    family: Literal["vae", "gan", "pixelcnn"]
    samples: int = 4000
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    width: int = 32
    jpeg_quality: int | None = 75
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.samples, self.steps, self.batch_size, self.width) < 1:
            raise ConfigError("data.zoo", "samples, steps, batch_size and width must be >= 1")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ConfigError("data.zoo.jpeg_quality", f"must be in 1..100, got {self.jpeg_quality}")

    @property
    def source_name(self) -> str:
        return f"zoo/{self.family}"


class VAE(nn.Module):
    """32x32x3 <-> 64-d Gaussian latent; decoder of two transposed convolutions from 8x8."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2)
        )
        self.to_stats = nn.Linear(2 * w * 64, 2 * LATENT)
        self.from_latent = nn.Linear(LATENT, 2 * w * 64)
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(w, 3, 4, 2, 1)
        )
        self.width = w

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.from_latent(z).view(-1, 2 * self.width, 8, 8)))

    def loss(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        mu, logvar = self.to_stats(self.encoder(x).flatten(1)).chunk(2, 1)
        z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
        recon = F.binary_cross_entropy(self.decode(z), x, reduction="sum") / len(x)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum() / len(x)
        return recon + kl

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        return self.decode(torch.randn(n, LATENT, generator=g))


class PixelShuffleGenerator(nn.Module):
    """64-d noise -> 4x4 -> three pixel-shuffle x2 stages -> 32x32x3 in [0, 1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = 4 * width
        self.fc = nn.Linear(LATENT, w * 16)
        stages: list[nn.Module] = []
        for _ in range(3):
            stages += [nn.BatchNorm2d(w), nn.ReLU(), nn.Conv2d(w, 2 * w, 3, padding=1), nn.PixelShuffle(2)]
            w //= 2
        self.body = nn.Sequential(*stages, nn.BatchNorm2d(w), nn.ReLU(), nn.Conv2d(w, 3, 3, padding=1))
        self.width = 4 * width

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(self.fc(z).view(-1, self.width, 4, 4)))

    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        return self(torch.randn(n, LATENT, generator=g))


def _discriminator(width: int) -> nn.Module:
    w = width
    return nn.Sequential(
        spectral_norm(nn.Conv2d(3, w, 4, 2, 1)),
        nn.LeakyReLU(0.1),
        spectral_norm(nn.Conv2d(w, 2 * w, 4, 2, 1)),
        nn.LeakyReLU(0.1),
        spectral_norm(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)),
        nn.LeakyReLU(0.1),
        nn.Flatten(),
        spectral_norm(nn.Linear(4 * w * 16, 1)),
    )


class MaskedConv2d(nn.Conv2d):
    """A convolution that sees only the pixels above and to the left (mask A) or also its own (B)."""

    def __init__(self, mask: Literal["A", "B"], c_in: int, c_out: int, k: int) -> None:
        super().__init__(c_in, c_out, k, padding=k // 2)
        m = torch.ones_like(self.weight)
        m[:, :, k // 2, k // 2 + (mask == "B") :] = 0
        m[:, :, k // 2 + 1 :] = 0
        self.register_buffer("mask", m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PixelCNN(nn.Module):
    """Masked-convolution PixelCNN with a discretised logistic (mean, log scale) per sub-pixel."""

    def __init__(self, width: int = 32, layers: int = 4) -> None:
        super().__init__()
        body: list[nn.Module] = [MaskedConv2d("A", 3, width, 5), nn.ReLU()]
        for _ in range(layers):
            body += [MaskedConv2d("B", width, width, 3), nn.ReLU()]
        self.body = nn.Sequential(*body, nn.Conv2d(width, 6, 1))
        self.reach = 2 + layers  # rows above a pixel that its prediction can see

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_scale = self.body(2 * x - 1).chunk(2, 1)
        return mean, log_scale.clamp(min=-7)

    def loss(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Negative log-likelihood (nats per sub-pixel) of uint8 levels in `x` (floats in [0, 1])."""
        mean, log_scale = self(x)
        y = 2 * x - 1
        inv = torch.exp(-log_scale)
        upper = torch.where(y > 0.999, torch.ones_like(y), torch.sigmoid(inv * (y + 1 / 255 - mean)))
        lower = torch.where(y < -0.999, torch.zeros_like(y), torch.sigmoid(inv * (y - 1 / 255 - mean)))
        return -torch.log((upper - lower).clamp(min=1e-12)).mean()

    @torch.no_grad()
    def sample(self, n: int, g: torch.Generator) -> torch.Tensor:
        x = torch.zeros(n, 3, 32, 32)
        for i in range(32):
            top = max(0, i - self.reach)
            for j in range(32):
                mean, log_scale = self(x[:, :, top : i + 1])
                mu, s = mean[:, :, i - top, j], log_scale[:, :, i - top, j].exp()
                u = torch.rand(mu.shape, generator=g).clamp(1e-5, 1 - 1e-5)
                y = (mu + s * (torch.log(u) - torch.log1p(-u))).clamp(-1, 1)
                x[:, :, i, j] = torch.round((y + 1) / 2 * 255) / 255
        return x


def _train(loss_of, params, reals: torch.Tensor, cfg: ZooGenerator, g: torch.Generator) -> None:
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.5, 0.999) if cfg.family == "gan" else (0.9, 0.999))
    for step in range(cfg.steps):
        x = reals[torch.randint(len(reals), (cfg.batch_size,), generator=g)].float().div(255)
        loss = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == cfg.steps - 1:
            log.info("zoo %s: step %d/%d loss %.4f", cfg.family, step + 1, cfg.steps, float(loss.detach()))


def train_and_sample(reals: torch.Tensor, cfg: ZooGenerator) -> torch.Tensor:
    """Train the generator `cfg.family` on uint8 reals (N, 3, 32, 32); return `cfg.samples` uint8 fakes."""
    if tuple(reals.shape[1:]) != (3, 32, 32):
        raise ConfigError("data.zoo", f"the zoo's generators make 32x32 images; got {tuple(reals.shape[1:])}")
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    with torch.inference_mode(False), torch.enable_grad():
        if cfg.family in ("vae", "pixelcnn"):  # likelihood models: their own loss
            net = (VAE if cfg.family == "vae" else PixelCNN)(cfg.width)
            _train(lambda x: net.loss(x, g), net.parameters(), reals, cfg, g)
        else:
            net, disc = PixelShuffleGenerator(cfg.width), _discriminator(cfg.width)
            opt_d = torch.optim.Adam(disc.parameters(), lr=2 * cfg.lr, betas=(0.5, 0.999))  # TTUR

            def loss_of(x: torch.Tensor) -> torch.Tensor:
                fake = net(torch.randn(len(x), LATENT, generator=g))
                d_loss = F.relu(1 - disc(2 * x - 1)).mean() + F.relu(1 + disc(2 * fake.detach() - 1)).mean()
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                return -disc(2 * fake - 1).mean()

            _train(loss_of, net.parameters(), reals, cfg, g)
    net.eval()
    with torch.no_grad():
        fakes = _to_uint8(
            torch.cat([net.sample(min(1024, cfg.samples - i), g) for i in range(0, cfg.samples, 1024)])
        )
    return jpeg_roundtrip(fakes, cfg.jpeg_quality) if cfg.jpeg_quality is not None else fakes


def add_zoo_fakes(train: DecodedSplit, cfg: ZooGenerator, cache_dir: Path | None) -> DecodedSplit:
    """The training split with `cfg.samples` fakes of the generator `cfg` appended (cached by the
    training reals' hashes and the options, so a second run reuses them)."""
    real = torch.nonzero(train.labels == 0, as_tuple=False).flatten()
    if len(real) == 0:
        raise ConfigError("data.zoo", "the training split holds no real images to train a generator on")
    key = _key(train, real, cfg)
    path = Path(cache_dir) / f"zoo-{cfg.family}-{key}.pt" if cache_dir is not None else None

    def make() -> torch.Tensor:
        log.info(
            "zoo: training a %s on %d training reals, then sampling %d fakes",
            cfg.family,
            len(real),
            cfg.samples,
        )
        return train_and_sample(train.images[real], cfg)

    fakes = _cached_images(path, (cfg.samples, *train.images.shape[1:]), make, f"zoo {cfg.family} fakes")
    name = cfg.source_name
    return append_fakes(
        train,
        fakes,
        name,
        files=[f"{name}/{i}" for i in range(cfg.samples)],
        hashes=[f"{name}:{key}:{i}" for i in range(cfg.samples)],
    )
