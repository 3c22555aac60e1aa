"""data/zoo.py: the zoo of small training generators (VAE, pixel-shuffle GAN, PixelCNN)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifake_lightning.data import zoo
from cifake_lightning.data.split import DecodedSplit
from cifake_lightning.data.zoo import PixelCNN, ZooGenerator, add_zoo_fakes, train_and_sample
from cifake_lightning.errors import ConfigError


def _split(n_real=24, n_fake=8):
    g = torch.Generator().manual_seed(0)
    small = torch.rand(n_real + n_fake, 3, 8, 8, generator=g)
    images = (F.interpolate(small, size=32, mode="bilinear", align_corners=False) * 255).to(torch.uint8)
    labels = torch.tensor([0] * n_real + [1] * n_fake)
    return DecodedSplit(
        images, labels, labels.clone(), torch.arange(n_real + n_fake) % 10,
        [f"x/{i}.jpg" for i in range(n_real + n_fake)], [f"h{i}" for i in range(n_real + n_fake)],
        ["REAL", "FAKE"],
    )  # fmt: skip


@pytest.mark.parametrize("family", ["vae", "gan", "pixelcnn"])
def test_every_family_trains_on_the_reals_and_samples_uint8_images(family):
    reals = _split().images[:24]
    fakes = train_and_sample(reals, ZooGenerator(family, samples=5, steps=3, batch_size=4, width=8))
    assert fakes.shape == (5, 3, 32, 32) and fakes.dtype == torch.uint8
    assert fakes.float().std() > 0  # not a constant image


def test_pixelcnn_predicts_each_pixel_from_the_pixels_before_it_only():
    """Raster-order causality: the prediction at (i, j) has zero gradient with respect to that pixel and
    every later one, and a non-zero one with respect to its left neighbour."""
    torch.manual_seed(0)
    net = PixelCNN(width=8)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    mean, _ = net(x)
    mean[0, :, 10, 12].sum().backward()
    order = torch.arange(32 * 32).view(32, 32)
    later = order >= order[10, 12]
    grad = x.grad[0].abs().sum(0)
    assert float(grad[later].max()) == 0.0
    assert float(grad[10, 11]) > 0


def test_pixelcnn_band_sampling_sees_what_the_whole_image_shows():
    """Sampling computes row i on a band of `reach` rows above it: the same prediction as the full image."""
    torch.manual_seed(0)
    net = PixelCNN(width=8)
    x = torch.rand(2, 3, 32, 32)
    full, _ = net(x)
    i = 20
    band, _ = net(x[:, :, i - net.reach : i + 1])
    assert torch.allclose(band[:, :, -1], full[:, :, i], atol=1e-5)


def test_zoo_fakes_join_as_their_own_source_and_the_cache_is_reused_not_retrained(tmp_path, monkeypatch):
    train = _split()
    cfg = ZooGenerator("vae", samples=6, steps=2, batch_size=4, width=8, jpeg_quality=None)
    out = add_zoo_fakes(train, cfg, tmp_path)
    assert len(out) == len(train) + 6 and out.source_names[-1] == "zoo/vae"
    assert out.labels[len(train) :].eq(1).all() and out.content_class[len(train) :].eq(-1).all()
    assert len(list(tmp_path.glob("zoo-vae-*.pt"))) == 1
    monkeypatch.setattr(zoo, "train_and_sample", lambda *a: pytest.fail("retrained instead of cached"))
    assert torch.equal(add_zoo_fakes(train, cfg, tmp_path).images, out.images)
    other = ZooGenerator("vae", samples=6, steps=2, batch_size=4, width=8, jpeg_quality=None, seed=1)
    with pytest.raises(pytest.fail.Exception, match="retrained"):  # other options: a new generator
        add_zoo_fakes(train, other, tmp_path)


def test_zoo_options_are_checked(cifake_root):
    from cifake_lightning.data import CIFAKEDataModule

    with pytest.raises(ConfigError, match="data.zoo"):
        ZooGenerator("vae", samples=0)
    with pytest.raises(ConfigError, match="jpeg_quality"):
        ZooGenerator("gan", jpeg_quality=0)
    with pytest.raises(ConfigError, match="each family at most once"):
        CIFAKEDataModule(root=str(cifake_root), zoo=[ZooGenerator("vae")] * 2)
    with pytest.raises(ConfigError, match="32x32"):
        train_and_sample(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), ZooGenerator("vae"))


def test_a_fit_with_the_zoo_trains_on_its_fakes(cifake_root, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule

    dm = CIFAKEDataModule(root=str(cifake_root), cache_dir=str(tmp_path), val_size=40, progress=False,
                          zoo=[ZooGenerator("gan", samples=7, steps=2, batch_size=4, width=8)])  # fmt: skip
    dm.setup("fit")
    assert dm.manifest("train").source_names[-1] == "zoo/gan"
    assert int((dm.decoded("train").source == 2).sum()) == 7
