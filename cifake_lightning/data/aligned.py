"""Aligned, self-made fakes and extra fake sources for training (generalisation options, off by default).

Aligned fakes (Rajan et al., "Aligned Datasets Improve Detection of Latent Diffusion-Generated
Images", ICLR 2025; B-Free, Guillaro et al., CVPR 2025; DRCT, Chen et al., ICML 2024): fakes made from
the training reals themselves, so that a real image and its fake share content and differ only in a
generator's trace. Two kinds:

* ``ae``: a small convolutional autoencoder (models.autoencoder.ConvAutoencoder; `latent` channels at
  8x8, i.e. f=4 as a latent-diffusion VAE's pixel path) is trained on the training reals for `steps`
  steps, and its reconstructions of those reals become fakes. NOTE: on genset-v2 this makes
  ood/ae_f4_recon_test a *seen* kind (an autoencoder trained on CIFAR-10 made training fakes); report
  it as seen.
* ``denoise``: a small noise-conditional denoiser (DnCNN-style residual CNN, Zhang et al., TIP 2017) is
  trained on the training reals for `steps` steps; each chosen real is noised with Gaussian noise of
  a standard deviation drawn from `sigmas` and denoised. The fake is the network's estimate of the
  clean image, which is what a pixel-space diffusion model's last steps output (SDEdit, Meng et al.,
  ICLR 2022; DRCT, Chen et al., ICML 2024 and B-Free, Guillaro et al., CVPR 2025 reconstruct reals
  through a diffusion model for the same reason): a diffusion trace on real content. NOTE: a denoiser
  trained on CIFAR-10 makes diffusion a *seen* kind; report diffusion sources as seen.
* ``resample``: no learned generator. Each real is reduced by 2 (block mean) and enlarged back with
  nearest, bilinear or bicubic interpolation (chosen per image): the upsampling trace every
  generator's last layers leave (AutoGAN, Zhang et al., WIFS 2019, simulates GAN artefacts the same
  way). No generator of any kind is trained, so no test source becomes seen.

The fakes are rounded to uint8 and re-encoded as JPEG at `jpeg_quality` like the data set's images
(genset-v2 and CIFAKE are quality-75 JPEGs), so that compression cannot tell them from the reals.
They are generated once per (training reals, options) and cached next to the decode caches; they join
the training split only (validation and test keep the data set's own images). Their content class is
the real image's.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, check_choice
from ..models.autoencoder import ConvAutoencoder
from ..utils import write_atomic
from .split import DecodedSplit

log = logging.getLogger(__name__)


@dataclass
class AlignedFakes:
    """Options of the aligned fakes added to the training split (see module docstring).

    Attributes:
        kind: ae (reconstructions by an autoencoder trained on the training reals), denoise (noised and
            denoised by a denoiser trained on them) or resample.
        share: fraction of the training reals that get an aligned fake (seeded choice).
        steps, batch_size, lr: training of the autoencoder or denoiser (kinds ae and denoise).
        latent: autoencoder latent channels (kind ae).
        sigmas: noise standard deviations (pixels in [0, 1]) the denoiser learns and the fakes are made
            at, one drawn per image (kind denoise).
        jpeg_quality: re-encode the fakes as JPEG at this quality (None: keep the raw uint8 output).
        seed: seeds the choice of reals, the autoencoder's training and the resample modes.
    """

    kind: Literal["ae", "denoise", "resample"] = "ae"
    share: float = 1.0
    steps: int = 800
    batch_size: int = 128
    lr: float = 2e-3
    latent: int = 4
    sigmas: tuple[float, ...] = (0.02, 0.05, 0.1)
    jpeg_quality: int | None = 75
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("data.aligned_fakes.kind", self.kind, ("ae", "denoise", "resample"))
        self.sigmas = tuple(float(x) for x in self.sigmas)
        if not self.sigmas or not all(0.0 < x < 1.0 for x in self.sigmas):
            raise ConfigError("data.aligned_fakes.sigmas", f"need values in (0, 1), got {list(self.sigmas)}")
        if not 0.0 < self.share <= 1.0:
            raise ConfigError("data.aligned_fakes.share", f"must be in (0, 1], got {self.share}")
        if self.steps < 1 or self.batch_size < 1 or self.latent < 1:
            raise ConfigError("data.aligned_fakes", "steps, batch_size and latent must be >= 1")
        if self.jpeg_quality is not None and not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(
                "data.aligned_fakes.jpeg_quality", f"must be in 1..100, got {self.jpeg_quality}"
            )

    @property
    def source_name(self) -> str:
        return f"aligned/{self.kind}"


def jpeg_roundtrip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the same images after a JPEG encode/decode at `quality` (PIL, 4:2:0)."""
    out = np.empty_like(images.permute(0, 2, 3, 1).numpy())
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out[i] = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def _fit_on_reals(net: torch.nn.Module, reals: torch.Tensor, cfg: AlignedFakes, loss_of, what: str):
    """Train `net` with Adam for cfg.steps steps on random batches of uint8 reals; `loss_of(net, x, g)`
    gives the loss of a float [0, 1] batch (g: the seeded generator, for any noise it draws). Eval mode."""
    g = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    for step in range(cfg.steps):
        x = reals[torch.randint(len(reals), (cfg.batch_size,), generator=g)].float().div(255)
        loss = loss_of(net, x, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 200 == 0 or step == cfg.steps - 1:
            log.info(
                "aligned fakes: %s step %d/%d loss %.5f", what, step + 1, cfg.steps, float(loss.detach())
            )
    return net.eval()


def train_autoencoder(reals: torch.Tensor, cfg: AlignedFakes) -> torch.nn.Module:
    """Train a ConvAutoencoder on uint8 reals (MSE + 0.5 L1, Adam) for cfg.steps steps; eval mode."""

    def loss_of(ae, x, g):
        y = ae(x)
        return F.mse_loss(y, x) + 0.5 * F.l1_loss(y, x)

    torch.manual_seed(cfg.seed)
    return _fit_on_reals(ConvAutoencoder(latent=cfg.latent), reals, cfg, loss_of, "autoencoder")


class Denoiser(torch.nn.Module):
    """Noise-conditional residual denoiser: (noisy image, its noise std) -> estimate of the clean image.

    A DnCNN-style stack (conv, then `depth - 2` conv + GroupNorm + ReLU, then conv) predicts the noise
    from the noisy image and a constant plane holding sigma; the estimate is the noisy image minus it."""

    def __init__(self, width: int = 32, depth: int = 5) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = [torch.nn.Conv2d(4, width, 3, padding=1), torch.nn.ReLU()]
        for _ in range(depth - 2):
            layers += [
                torch.nn.Conv2d(width, width, 3, padding=1),
                torch.nn.GroupNorm(8, width),
                torch.nn.ReLU(),
            ]
        layers.append(torch.nn.Conv2d(width, 3, 3, padding=1))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        plane = sigma.view(-1, 1, 1, 1).expand(-1, 1, *noisy.shape[-2:]).to(noisy.dtype)
        return noisy - self.net(torch.cat([noisy, plane], 1))


def _noised(
    x: torch.Tensor, sigmas: tuple[float, ...], g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    sigma = torch.tensor(sigmas)[torch.randint(len(sigmas), (len(x),), generator=g)]
    return x + sigma.view(-1, 1, 1, 1) * torch.randn(x.shape, generator=g), sigma


def train_denoiser(reals: torch.Tensor, cfg: AlignedFakes) -> Denoiser:
    """Train a Denoiser on uint8 reals at the noise levels cfg.sigmas (MSE to the clean image, Adam)."""

    def loss_of(net, x, g):
        noisy, sigma = _noised(x, cfg.sigmas, g)
        return F.mse_loss(net(noisy, sigma), x)

    torch.manual_seed(cfg.seed)
    return _fit_on_reals(Denoiser(), reals, cfg, loss_of, "denoiser")


def make_fakes(reals: torch.Tensor, cfg: AlignedFakes) -> torch.Tensor:
    """uint8 reals (N, 3, H, W) -> uint8 aligned fakes of the same shape, content and order."""
    if cfg.kind == "denoise":
        with torch.inference_mode(False), torch.enable_grad():
            net = train_denoiser(reals, cfg)
        g = torch.Generator().manual_seed(cfg.seed + 1)
        parts = []
        with torch.no_grad():
            for i in range(0, len(reals), 1024):
                noisy, sigma = _noised(reals[i : i + 1024].float().div(255), cfg.sigmas, g)
                parts.append(_to_uint8(net(noisy, sigma)))
        fakes = torch.cat(parts)
    elif cfg.kind == "ae":
        with torch.inference_mode(False), torch.enable_grad():
            ae = train_autoencoder(reals, cfg)
        with torch.no_grad():
            parts = [_to_uint8(ae(reals[i : i + 1024].float().div(255))) for i in range(0, len(reals), 1024)]
        fakes = torch.cat(parts)
    else:
        g = torch.Generator().manual_seed(cfg.seed + 1)
        modes = torch.randint(3, (len(reals),), generator=g)
        x = reals.float().div(255)
        small = F.avg_pool2d(x, 2)
        fakes = torch.empty_like(reals)
        size = reals.shape[-2:]
        for m, mode in enumerate(("nearest", "bilinear", "bicubic")):
            sel = modes == m
            if sel.any():
                kw = {} if mode == "nearest" else {"align_corners": False}
                fakes[sel] = _to_uint8(F.interpolate(small[sel], size=size, mode=mode, **kw))
    if cfg.jpeg_quality is not None:
        fakes = jpeg_roundtrip(fakes, cfg.jpeg_quality)
    return fakes


def _key(train: DecodedSplit, chosen: torch.Tensor, cfg) -> str:
    """Cache key of self-made fakes: the options of `cfg` (a dataclass) and the hashes of the rows used."""
    h = hashlib.blake2b(digest_size=10)
    h.update(repr(sorted(asdict(cfg).items())).encode())
    for i in chosen.tolist():
        h.update(train.hashes[i].encode())
    return h.hexdigest()


def _cached_images(path: Path | None, shape: tuple, make, what: str) -> torch.Tensor:
    """uint8 images of `shape` from the cache file `path` when it holds them, else `make()` (then cached).
    A damaged or mismatched cache is rebuilt; a cache that cannot be written only costs a rebuild later."""
    if path is not None and path.is_file():
        try:
            images = torch.load(path, map_location="cpu", weights_only=True)
            if tuple(images.shape) == tuple(shape) and images.dtype == torch.uint8:
                return images
        except Exception as e:  # a damaged cache is rebuilt
            log.warning("%s cache %s unreadable (%s): rebuilding", what, path, e)
    images = make()
    if path is not None:
        try:
            buf = io.BytesIO()
            torch.save(images, buf)
            write_atomic(path, buf.getvalue())
        except OSError as e:
            log.warning("could not cache %s at %s (%s); they will be made again", what, path, e)
    return images


def add_aligned_fakes(train: DecodedSplit, cfg: AlignedFakes, cache_dir: Path | None) -> DecodedSplit:
    """The training split with one aligned fake appended per chosen real (cached by content + options)."""
    real = torch.nonzero(train.labels == 0, as_tuple=False).flatten()
    if len(real) == 0:
        raise ConfigError("data.aligned_fakes", "the training split holds no real images to make fakes from")
    g = torch.Generator().manual_seed(cfg.seed)
    n = max(1, round(cfg.share * len(real)))
    chosen = real[torch.randperm(len(real), generator=g)[:n]].sort().values
    key = _key(train, chosen, cfg)
    path = Path(cache_dir) / f"aligned-{cfg.kind}-{key}.pt" if cache_dir is not None else None

    def make() -> torch.Tensor:
        log.info("aligned fakes: making %d %s fakes from training reals", n, cfg.kind)
        return make_fakes(train.images[chosen], cfg)

    fakes = _cached_images(path, (n, *train.images.shape[1:]), make, "aligned fakes")
    return append_fakes(train, fakes, cfg.source_name, chosen)


def append_fakes(
    split: DecodedSplit,
    fakes: torch.Tensor,
    source_name: str,
    like: torch.Tensor | None = None,
    files: list[str] | None = None,
    hashes: list[str] | None = None,
    label: int = 1,
) -> DecodedSplit:
    """`split` with uint8 `fakes` appended as rows of label `label` (1 = fake) of a new source `source_name`.

    `like` gives, per fake, the row of `split` it was made from (its content class and file name are
    kept, the file name prefixed by the source); otherwise `files`/`hashes` name the new rows.
    """
    names = list(split.source_names)
    if source_name in names:
        raise ConfigError("data", f"fake source {source_name!r} is already in the training split")
    names.append(source_name)
    k = len(fakes)
    if like is not None:
        cc = split.content_class[like]
        files = [f"{source_name}/{Path(split.files[i]).name}" for i in like.tolist()]
        hashes = [f"{source_name}:{split.hashes[i]}" for i in like.tolist()]
    else:
        cc = torch.full((k,), -1, dtype=torch.long)
        files = files or [f"{source_name}/{i}" for i in range(k)]
        hashes = hashes or [f"{source_name}:{i}" for i in range(k)]
    return DecodedSplit(
        torch.cat([split.images, fakes]),
        torch.cat([split.labels, torch.full((k,), label, dtype=torch.long)]),
        torch.cat([split.source, torch.full((k,), len(names) - 1, dtype=torch.long)]),
        torch.cat([split.content_class, cc]),
        [*split.files, *files],
        [*split.hashes, *hashes],
        names,
        list(split.skipped),
        split.fingerprint + f"+{source_name}",
        split.cache_path,
    )


def add_real_mosaics(
    train: DecodedSplit,
    share: float,
    seed: int = 0,
    jpeg_quality: int | None = 75,
    cache_dir: Path | None = None,
) -> DecodedSplit:
    """The training split with extra *real* images: 2x2 mosaics of four training reals, area-downsampled
    to the original size (and JPEG re-encoded like the data set).

    A real class made only of CIFAR-10's own resampling is narrow: photographs reduced from larger
    images by another pipeline (genset-v2's ood/real_photos) look foreign to it and are called fake.
    Mosaics are real content reduced by 2 with a block mean, i.e. downsampling (which real photographs
    go through) without upsampling (which generators do); they use training reals only.
    """
    if not 0.0 < share <= 4.0:
        raise ConfigError("data.real_mosaics", f"must be in (0, 4], got {share}")
    real = torch.nonzero(train.labels == 0, as_tuple=False).flatten()
    n = max(1, round(share * len(real)))
    g = torch.Generator().manual_seed(seed + 7)
    pick = real[torch.randint(len(real), (n, 4), generator=g)]
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{share}-{seed}-{jpeg_quality}".encode())
    for i in pick.flatten().tolist():
        h.update(train.hashes[i].encode())
    path = Path(cache_dir) / f"mosaics-{h.hexdigest()}.pt" if cache_dir is not None else None

    def make() -> torch.Tensor:
        parts = []
        for k in range(0, n, 2048):
            q = train.images[pick[k : k + 2048]].float()  # (b, 4, 3, H, W)
            top = torch.cat([q[:, 0], q[:, 1]], -1)
            bottom = torch.cat([q[:, 2], q[:, 3]], -1)
            parts.append(_to_uint8(F.avg_pool2d(torch.cat([top, bottom], -2), 2) / 255))
        images = torch.cat(parts)
        return jpeg_roundtrip(images, jpeg_quality) if jpeg_quality is not None else images

    images = _cached_images(path, (n, *train.images.shape[1:]), make, "real mosaics")
    files = [f"aligned/real_mosaic/{i}" for i in range(n)]
    return append_fakes(
        train, images, "aligned/real_mosaic", files=files, hashes=[f"mosaic:{i}" for i in range(n)], label=0
    )
