from __future__ import annotations

import pytest
import torch
from helpers.run import QUIET, run_main

from cifake_lightning.data import AugmentConfig, CIFAKEDataModule
from cifake_lightning.errors import DataError


def _dm(root, **kw):
    kw.setdefault("val_size", 20)
    return CIFAKEDataModule(root=str(root), batch_size=16, progress=False, decode_workers=1, **kw)


def test_splits_sizes_and_determinism(cifake_root):
    a, b, c = _dm(cifake_root), _dm(cifake_root), _dm(cifake_root, seed=1)
    for d in (a, b, c):
        d.setup()
    assert len(a.decoded("train")) == 580 and len(a.decoded("val")) == 20 and len(a.decoded("test")) == 100
    assert a.decoded("val").files == b.decoded("val").files != c.decoded("val").files
    assert int(a.decoded("val").labels.sum()) == 10
    assert not set(a.decoded("val").files) & set(a.decoded("train").files)


def test_val_size_fraction_and_zero(cifake_root):
    d = _dm(cifake_root, val_size=0.25)
    d.setup()
    assert len(d.decoded("val")) == 150
    z = _dm(cifake_root, val_size=0)
    z.setup()
    assert "val" not in z.split_names and z.val_dataloader() == []


def test_val_size_too_large(cifake_root):
    from cifake_lightning.errors import ConfigError

    with pytest.raises(ConfigError, match="data.val_size"):
        _dm(cifake_root, val_size=600).setup()


def test_train_size_subset_is_stratified_seeded_and_leaves_val_and_test_whole(cifake_root):
    from cifake_lightning.errors import ConfigError

    full, a, b, c = (
        _dm(cifake_root),
        _dm(cifake_root, train_size=100),
        _dm(cifake_root, train_size=100),
        _dm(cifake_root, train_size=0.5, seed=1),
    )
    for d in (full, a, b, c):
        d.setup()
    tr = a.decoded("train")
    assert len(tr) == 100 and int(tr.labels.sum()) == 50  # stratified: half fake
    assert tr.files == b.decoded("train").files  # same seed, same subset
    assert set(tr.files) <= set(full.decoded("train").files)
    assert a.decoded("val").files == full.decoded("val").files and len(a.decoded("test")) == 100
    assert len(c.decoded("train")) == 290
    with pytest.raises(ConfigError, match="data.train_size"):
        _dm(cifake_root, train_size=1000).setup()
    with pytest.raises(ConfigError, match="data.train_size"):
        _dm(cifake_root, train_size=1.5)


def test_batches_are_uint8_then_float_after_transfer(cifake_root):
    d = _dm(cifake_root)
    d.setup()
    batch = next(iter(d.train_dataloader()))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (16, 3, 32, 32)
    out = d.on_after_batch_transfer(dict(batch), 0)
    assert out["image"].dtype == torch.float32 and 0 <= out["image"].min() and out["image"].max() <= 1
    vb = next(iter(d.val_dataloader()))
    assert set(vb) == {"image", "label", "index", "content_class"}  # the rest of a row lives in the manifest


def test_augmentation_changes_train_batches_only(cifake_root):
    class FakeTrainer:
        training = True

    d = _dm(cifake_root, augment=AugmentConfig(hflip=1.0))
    d.setup()
    batch = next(iter(d.train_dataloader()))
    plain = batch["image"].float() / 255
    d.trainer = FakeTrainer()  # on_after_batch_transfer asks the trainer whether it is training
    flipped = d.on_after_batch_transfer({"image": batch["image"].clone()}, 0)["image"]
    assert torch.allclose(flipped, plain.flip(-1))
    FakeTrainer.training = False
    untouched = d.on_after_batch_transfer({"image": batch["image"].clone()}, 0)["image"]
    assert torch.allclose(untouched, plain)


def test_augment_config_validates():
    with pytest.raises(ValueError, match="augment.blur"):
        AugmentConfig(blur=1.5)
    with pytest.raises(ValueError, match="jpeg_quality"):
        AugmentConfig(jpeg=0.5, jpeg_quality=(90, 10))


def test_every_augmentation_runs_batched():
    from cifake_lightning.data.augment import build_augmentation

    aug = build_augmentation(
        AugmentConfig(hflip=0.5, pad_crop=2, resized_crop=1.0, color_jitter=1.0, blur=1.0, jpeg=1.0)
    )
    x = torch.rand(8, 3, 32, 32)
    y = aug(x)
    assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1 and not torch.allclose(x, y)


def test_leakage_between_train_and_test_is_reported(cifake_copy):
    src = cifake_copy / "train" / "REAL" / "0001.jpg"
    (cifake_copy / "test" / "REAL" / "0999.jpg").write_bytes(src.read_bytes())
    with pytest.warns(UserWarning, match="1 file\\(s\\) appear in both train and test"):
        _dm(cifake_copy).setup()


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match="cifake data download"):
        _dm(tmp_path / "absent").setup()


def test_summary_has_manifest_hashes(cifake_root):
    s = _dm(cifake_root).summary()
    assert set(s) == {"train", "val", "test"} and len(s["test"]["manifest_hash"]) == 32


def test_content_class_check_against_cifar10_binary(cifake_root, tmp_path):
    """`cifake data classes`: match test/REAL images to a CIFAR-10 binary batch and compare classes."""
    import numpy as np

    from cifake_lightning.data.verify import check_content_classes

    dm = _dm(cifake_root, val_size=0)
    dm.setup()
    test = dm.decoded("test")
    real = test.labels == 0
    x = test.images[real].numpy().reshape(int(real.sum()), -1)
    y = test.content_class[real].numpy().astype(np.uint8)
    (tmp_path / "test_batch.bin").write_bytes(
        np.concatenate([y[:, None], x], axis=1).astype(np.uint8).tobytes()
    )
    assert check_content_classes(dm, tmp_path)["agreement"] == 1.0
    (tmp_path / "test_batch.bin").write_bytes(
        np.concatenate([((y + 1) % 10)[:, None], x], axis=1).astype(np.uint8).tobytes()
    )
    assert check_content_classes(dm, tmp_path)["agreement"] == 0.0


def test_test_needs_no_validation_split(cifake_root, trained_run, capsys):
    # the synthetic set has 600 training images, far fewer than the default val_size of 10,000
    code, err = run_main(
        ["test", "--ckpt", str(trained_run), "--data.root", str(cifake_root), *QUIET], capsys
    )
    assert code == 0, err
