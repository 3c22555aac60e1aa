"""Reliability and safety: interrupted runs, reproducibility, untrusted files, odd paths, full disks."""

import csv
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.run import QUIET, cifake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from cifake_lightning.data.archive import extract_archive
from cifake_lightning.data.image_io import decode_image_bytes
from cifake_lightning.errors import CheckpointError, DataError, ImageDecodeError, OutputError
from cifake_lightning.models.checkpoint import read_checkpoint

REPO = Path(__file__).resolve().parents[1]
DEMO = str(REPO / "configs" / "demo.yaml")


def _val_rows(path: Path) -> list[tuple]:
    with open(path) as f:
        return [(r["epoch"], r["val/acc"], r["val/loss"]) for r in csv.DictReader(f) if r.get("val/acc")]


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted_run(cifake_root, tmp_path):
    common = [
        "fit",
        "--config",
        DEMO,
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "60",
        "--data.batch_size",
        "32",
        "--trainer.max_epochs",
        "3",
        "--trainer.deterministic",
        "true",
        *QUIET,
        "--data.augment.pad_crop",
        "2",
    ]  # random augmentation, so a replayed epoch must redraw it identically
    r = cifake(*common, "--name", "straight", "--trainer.callbacks", "[]", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    killer = '[{"class_path": "helpers.killer.KillDuringEpoch", "init_args": {"epoch": 2, "batch": 3}}]'
    r = cifake(*common, "--name", "killed", "--trainer.callbacks", killer, cwd=tmp_path)
    assert r.returncode == -9
    last = tmp_path / "runs" / "killed" / "version_0" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["epoch"] == 1
    r = cifake(*common, "--name", "killed", "--trainer.callbacks", "[]", "--ckpt_path", "last", cwd=tmp_path)
    assert r.returncode == 0 and "resuming killed" in r.stderr, r.stderr[-2000:]
    straight = _val_rows(tmp_path / "runs" / "straight" / "version_0" / "metrics.csv")
    resumed = _val_rows(tmp_path / "runs" / "killed" / "version_0" / "metrics.csv")
    assert len(straight) == 3 and resumed == straight  # earlier epochs kept, final metrics identical
    a = read_checkpoint(tmp_path / "runs" / "straight" / "version_0" / "checkpoints" / "last.ckpt")[
        "state_dict"
    ]
    b = read_checkpoint(last)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_config_and_seed_give_same_metrics_and_provenance(cifake_root, tmp_path, monkeypatch):
    from cifake_lightning.cli import main

    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        "--config",
        DEMO,
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "60",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "6",
        *QUIET,
        "--trainer.callbacks",
        "[]",
        "--name",
        "repro",
    ]
    main(args)
    main(args)
    runs = tmp_path / "runs" / "repro"
    assert _val_rows(runs / "version_0" / "metrics.csv") == _val_rows(runs / "version_1" / "metrics.csv")
    info = json.loads((runs / "version_0" / "run_info_fit.json").read_text())
    assert {"git_commit", "versions", "machine", "data", "params", "fit_seconds"} <= set(info)
    assert info["versions"]["torch"] and len(info["data"]["train"]["manifest_hash"]) == 32
    cfg = (runs / "version_0" / "config.yaml").read_text()
    assert "seed_everything: 0" in cfg and "conv32x2-dense64x1" in cfg


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cifake-pwned",))


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not Path("/tmp/cifake-pwned").exists()


def test_tampered_cache_is_rebuilt_not_trusted(cifake_root, tmp_path):
    from cifake_lightning.data.cache import Source, load_or_build

    srcs = [
        Source("REAL", cifake_root / "test" / "REAL", 0),
        Source("FAKE", cifake_root / "test" / "FAKE", 1),
    ]
    first = load_or_build("test", srcs, cifake_root, tmp_path, progress=False, workers=1)
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:1000])  # a half-written / truncated cache
    again = load_or_build("test", srcs, cifake_root, tmp_path, progress=False, workers=1)
    assert torch.equal(again.images, first.images)


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_path_traversal_is_refused(tmp_path, kind):
    bad = tmp_path / f"evil.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("../escaped.txt", "x")
    else:
        with tarfile.open(bad, "w") as tf:
            info = tarfile.TarInfo("../../escaped.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="outside"):
        extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_safe_archive_extracts(tmp_path):
    good = tmp_path / "ok.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("train/REAL/0001.jpg", b"x")
    assert (
        extract_archive(good, tmp_path / "out") == 1
        and (tmp_path / "out" / "train" / "REAL" / "0001.jpg").is_file()
    )


def test_non_ascii_and_space_paths(cifake_root, tmp_path):
    import shutil

    from cifake_lightning.data import CIFAKEDataModule

    root = tmp_path / "données réelles" / "my CIFAKE copy"
    shutil.copytree(cifake_root, root)
    shutil.copy(root / "train" / "REAL" / "0001.jpg", root / "train" / "REAL" / "photo été (3).jpg")
    dm = CIFAKEDataModule(root=str(root), val_size=0, cache_dir=str(tmp_path / "cache é"), progress=False)
    dm.setup()
    assert "train/REAL/photo été (3).jpg" in dm.decoded("train").files


def test_unwritable_output_dir_is_named_before_training(cifake_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = cifake(
        "fit",
        "--config",
        DEMO,
        "--data.root",
        str(cifake_root),
        "--tracking.save_dir",
        str(blocker / "runs"),
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "tracking.save_dir" in r.stderr and "Traceback" not in r.stderr


def test_full_disk_leaves_previous_results_intact(tmp_path, monkeypatch):
    from cifake_lightning import utils

    target = tmp_path / "metrics.json"
    utils.write_json(target, {"acc": 0.9})

    real_replace = os.replace

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(utils.os, "replace", full)
    with pytest.raises(OutputError, match="No space"):
        utils.write_json(target, {"acc": 0.1})
    monkeypatch.setattr(utils.os, "replace", real_replace)
    assert json.loads(target.read_text()) == {"acc": 0.9} and not list(tmp_path.glob(".*.tmp"))


MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "I;16", "1", "F"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=2048))
def test_random_bytes_decode_or_raise_project_error(data):
    try:
        arr = decode_image_bytes(data, "fuzz.jpg", resize="area")
    except ImageDecodeError:
        return
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 300),
    h=st.integers(1, 300),
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(["PNG", "JPEG", "TIFF", "BMP", "WEBP", "GIF"]),
    strict=st.booleans(),
    cut=st.one_of(st.none(), st.floats(0.05, 0.95)),
)
def test_random_images_decode_or_raise_project_error(w, h, mode, fmt, strict, cut):
    rng = np.random.default_rng(w * 1000 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(
        mode if mode not in ("I;16", "F") else "L"
    )
    if mode in ("I;16", "F"):
        img = img.convert("I" if mode == "I;16" else "F")
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt)
    except (OSError, ValueError, KeyError):
        return  # this format cannot store this mode; nothing to test
    data = buf.getvalue()
    if cut is not None:
        data = data[: int(len(data) * cut)]
    try:
        arr = decode_image_bytes(data, "x", resize=None if strict else "area")
    except ImageDecodeError:
        return
    assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8


@pytest.mark.slow
def test_checkpoint_of_another_model_is_a_clear_error(cifake_root, demo_ckpt, tmp_path):
    ckpt = torch.load(demo_ckpt, weights_only=True)
    ckpt["hyper_parameters"]["backbone"]["init_args"]["topology"] = "conv64x3"  # weights no longer fit
    bad = tmp_path / "mismatch.ckpt"
    torch.save(ckpt, bad)
    r = cifake(
        "test",
        "--ckpt",
        str(bad),
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "0",
        "--tracking.wandb",
        "false",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "mismatch.ckpt" in r.stderr and "does not fit" in r.stderr, r.stderr[-1500:]
