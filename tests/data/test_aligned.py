"""data/aligned.py: aligned fakes, extra fake sources and real mosaics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifake_lightning.data.aligned import (
    AlignedFakes,
    add_aligned_fakes,
    append_fakes,
    jpeg_roundtrip,
    make_fakes,
)
from cifake_lightning.data.split import DecodedSplit
from cifake_lightning.errors import ConfigError
from cifake_lightning.models import ArtifactResidual


def _split(n_real=24, n_fake=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth "photos" (an autoencoder can learn them in a few steps) with a content class each
    small = torch.rand(n_real + n_fake, 3, 8, 8, generator=g)
    images = (F.interpolate(small, size=32, mode="bilinear", align_corners=False) * 255).to(torch.uint8)
    labels = torch.tensor([0] * n_real + [1] * n_fake)
    return DecodedSplit(
        images,
        labels,
        labels.clone(),
        torch.arange(n_real + n_fake) % 10,
        [f"{'REAL' if y == 0 else 'FAKE'}/{i}.jpg" for i, y in enumerate(labels.tolist())],
        [f"h{i}" for i in range(n_real + n_fake)],
        ["REAL", "FAKE"],
    )


def test_aligned_ae_fakes_share_content_with_their_reals(tmp_path):
    train = _split()
    cfg = AlignedFakes(kind="ae", steps=150, batch_size=16, jpeg_quality=None, seed=0)
    out = add_aligned_fakes(train, cfg, tmp_path)
    n_real = int((train.labels == 0).sum())
    assert len(out) == len(train) + n_real
    new = slice(len(train), len(out))
    assert out.labels[new].eq(1).all() and out.source_names[-1] == "aligned/ae"
    assert out.source[new].eq(2).all()
    # content: each fake is close to ITS real (much closer than to another real)
    reals, fakes = train.images[:n_real].float(), out.images[new].float()
    own = (fakes - reals).abs().mean(dim=(1, 2, 3))
    other = (fakes - reals.roll(1, 0)).abs().mean(dim=(1, 2, 3))
    assert (own < other).float().mean() >= 0.9
    assert torch.equal(out.content_class[new], train.content_class[:n_real])
    assert out.files[len(train)] == "aligned/ae/0.jpg"
    # cached: the second call loads instead of training again
    (cache,) = tmp_path.glob("aligned-ae-*.pt")
    before = cache.stat().st_mtime_ns
    again = add_aligned_fakes(train, cfg, tmp_path)
    assert torch.equal(again.images, out.images) and cache.stat().st_mtime_ns == before


def test_resample_fakes_carry_upsampling_traces_and_the_data_sets_jpeg():
    reals = _split(n_real=12, n_fake=0).images
    cfg = AlignedFakes(kind="resample", jpeg_quality=None)
    fakes = make_fakes(reals, cfg)
    assert fakes.shape == reals.shape and fakes.dtype == torch.uint8
    npr = ArtifactResidual("haar", scale=1.0)
    # the block means are kept (content), the detail inside blocks changes
    assert (F.avg_pool2d(fakes.float(), 2) - F.avg_pool2d(reals.float(), 2)).abs().mean() < 6
    assert npr(fakes.float() / 255).abs().mean() != npr(reals.float() / 255).abs().mean()
    jpeg = make_fakes(reals, AlignedFakes(kind="resample", jpeg_quality=75))
    assert torch.equal(jpeg, jpeg_roundtrip(fakes, 75))


def test_denoised_fakes_share_content_with_their_reals_and_are_cached(tmp_path, monkeypatch):
    """kind denoise: each fake is its real noised and denoised by a denoiser trained on the reals: much
    closer to its own real than to another, closer to it than the noisy input was (the denoiser learned
    something), and a second call loads the cache instead of training again."""
    from cifake_lightning.data import aligned

    train = _split(n_real=32, n_fake=4)
    cfg = AlignedFakes(kind="denoise", steps=120, batch_size=16, sigmas=(0.1,), jpeg_quality=None, seed=0)
    out = add_aligned_fakes(train, cfg, tmp_path)
    n_real = 32
    reals, fakes = train.images[:n_real].float(), out.images[len(train) :].float()
    own = (fakes - reals).abs().mean(dim=(1, 2, 3))
    assert out.source_names[-1] == "aligned/denoise" and out.labels[len(train) :].eq(1).all()
    assert (own < (fakes - reals.roll(1, 0)).abs().mean(dim=(1, 2, 3))).all()
    assert float(own.mean()) < 0.1 * 255 * 0.8  # the noisy input is ~0.08 * 255 away on average
    assert torch.equal(out.content_class[len(train) :], train.content_class[:n_real])
    monkeypatch.setattr(aligned, "train_denoiser", lambda *a: pytest.fail("retrained instead of cached"))
    assert torch.equal(add_aligned_fakes(train, cfg, tmp_path).images, out.images)


def test_two_kinds_of_aligned_fakes_are_two_sources(cifake_root, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule

    dm = CIFAKEDataModule(root=str(cifake_root), cache_dir=str(tmp_path), val_size=0, progress=False,
                          aligned_fakes=[AlignedFakes(kind="resample", share=0.1),
                                         AlignedFakes(kind="denoise", share=0.1, steps=5)])  # fmt: skip
    dm.setup("fit")
    names = dm.manifest("train").source_names
    assert {"aligned/resample", "aligned/denoise"} <= set(names)
    with pytest.raises(ConfigError, match="each kind at most once"):
        CIFAKEDataModule(root=str(cifake_root), aligned_fakes=[AlignedFakes(kind="ae")] * 2)


def test_aligned_fake_options_are_checked():
    with pytest.raises(ConfigError, match="aligned_fakes.kind"):
        AlignedFakes(kind="gan")
    with pytest.raises(ConfigError, match="aligned_fakes.share"):
        AlignedFakes(share=0)
    with pytest.raises(ConfigError, match="aligned_fakes.sigmas"):
        AlignedFakes(kind="denoise", sigmas=(0.0,))
    with pytest.raises(ConfigError, match="jpeg_quality"):
        AlignedFakes(jpeg_quality=101)
    train = _split()
    with pytest.raises(ConfigError, match="already"):
        append_fakes(train, train.images[:2], "FAKE")


def test_extra_fakes_and_aligned_fakes_join_the_training_split_only(cifake_root, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule
    from cifake_lightning.errors import DataError

    extra = cifake_root / "test" / "FAKE"  # any folder of fakes
    dm = CIFAKEDataModule(
        root=str(cifake_root), val_size=40, progress=False, cache_dir=str(tmp_path),
        extra_fakes=[str(extra)], aligned_fakes=[AlignedFakes(kind="resample", share=0.5)],
    )  # fmt: skip
    dm.setup("fit")
    plain = CIFAKEDataModule(root=str(cifake_root), val_size=40, progress=False, cache_dir=str(tmp_path))
    plain.setup("fit")
    train, base = dm.decoded("train"), plain.decoded("train")
    n_extra = len(list(extra.iterdir()))
    n_aligned = round(0.5 * int((base.labels == 0).sum()))
    assert len(train) == len(base) + n_extra + n_aligned
    assert train.source_names == ["REAL", "FAKE", str(extra), "aligned/resample"]
    assert dm.manifest("val").content_hash == plain.manifest("val").content_hash
    assert dm.manifest("test").content_hash == plain.manifest("test").content_hash
    test_only = CIFAKEDataModule(
        root=str(cifake_root), val_size=40, progress=False, cache_dir=str(tmp_path),
        aligned_fakes=[AlignedFakes(kind="ae", steps=5)],
    )  # fmt: skip
    test_only.setup("test")  # scoring never makes training fakes
    assert not list(tmp_path.glob("aligned-ae-*.pt"))
    bad = CIFAKEDataModule(root=str(cifake_root), val_size=40, progress=False, extra_fakes=["nope"])
    with pytest.raises(DataError, match="nope"):
        bad.setup("fit")


def test_real_mosaics_are_real_downsampled_training_content():
    from cifake_lightning.data.aligned import add_real_mosaics

    train = _split(n_real=10, n_fake=4)
    out = add_real_mosaics(train, share=0.5, jpeg_quality=None)
    new = slice(len(train), len(out))
    assert len(out) == len(train) + 5 and out.labels[new].eq(0).all()
    assert out.source_names[-1] == "aligned/real_mosaic"
    reals = train.images[train.labels == 0].float()
    m = out.images[new][0].float()
    # each quarter of a mosaic is a training real reduced by 2 (block mean)
    quarter = m[:, :16, :16]
    halves = F.avg_pool2d(reals, 2)
    assert min(float((quarter - h).abs().max()) for h in halves) <= 1.0
    with pytest.raises(ConfigError, match="real_mosaics"):
        add_real_mosaics(train, share=0)
