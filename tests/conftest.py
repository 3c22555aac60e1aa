"""Shared fixtures: tiny synthetic datasets in the real layouts, and an isolated environment.

Every test runs with W&B disabled (tests that check W&B logging switch it to offline themselves),
caches and runs in temporary folders, and no network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Lightning's log handler keeps the stderr it finds when first imported: imported here, before any test
# captures stderr, so that a closed capture stream cannot fail a later test's log call
import lightning  # noqa: F401
import pytest
from helpers.run import QUIET

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
N_TRAIN, N_TEST = 300, 50  # synthetic images per label in the session fixture


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available() or os.environ.get("CIFAKE_TEST_DEVICE") == "cpu":
        return  # CIFAKE_TEST_DEVICE=cpu: run the GPU tests' code on the CPU (see tests/test_gpu.py)
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CIFAKE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    monkeypatch.setenv("CIFAKE_DATA", str(tmp_path_factory.getbasetemp() / "data-home"))


@pytest.fixture(scope="session")
def cifake_root(tmp_path_factory) -> Path:
    """A read-only-by-convention synthetic CIFAKE tree: N_TRAIN train / N_TEST test images per label."""
    from cifake_lightning.data.synth import write_synthetic_cifake

    root = tmp_path_factory.mktemp("synth") / "cifake"
    write_synthetic_cifake(root, n_train=N_TRAIN, n_test=N_TEST, seed=0)
    return root


@pytest.fixture
def cifake_copy(cifake_root, tmp_path) -> Path:
    """A private copy of the synthetic tree, for tests that damage or change files."""
    dst = tmp_path / "cifake"
    shutil.copytree(cifake_root, dst)
    return dst


@pytest.fixture(scope="session")
def genset_root(tmp_path_factory) -> Path:
    """genset-v1 extracted once per session; skips when ../shared/datasets is absent."""
    tar = SHARED_DATASETS / "genset-v1.tar"
    if not tar.is_file():
        pytest.skip(f"genset-v1 not available ({tar} is absent)")
    from cifake_lightning.data.archive import extract_archive

    dst = tmp_path_factory.mktemp("genset")
    extract_archive(tar, dst)
    return dst


@pytest.fixture(scope="session")
def demo_ckpt(cifake_root, tmp_path_factory) -> Path:
    """A checkpoint written by a real (short) `cifake fit` of configs/demo.yaml on the synthetic tree."""
    from cifake_lightning.console import main

    work = tmp_path_factory.mktemp("demo-run")
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(
            [
                "fit",
                "--config",
                str(REPO / "configs" / "demo.yaml"),
                "--data.root",
                str(cifake_root),
                "--data.val_size",
                "40",
                "--trainer.max_epochs",
                "1",
                "--trainer.limit_train_batches",
                "4",
                *QUIET,
                "--trainer.callbacks",
                "[]",
            ]
        )
    finally:
        os.chdir(cwd)
    return work / "runs" / "demo" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture
def trained_run(demo_ckpt, tmp_path, monkeypatch) -> Path:
    """tmp_path/runs/demo/version_0/checkpoints/last.ckpt (a trained demo run), cwd = tmp_path."""
    dst = tmp_path / "runs" / "demo" / "version_0" / "checkpoints"
    dst.mkdir(parents=True)
    shutil.copy(demo_ckpt, dst / "last.ckpt")
    monkeypatch.chdir(tmp_path)
    return dst / "last.ckpt"


@pytest.fixture
def finished_run(cifake_root, tmp_path, monkeypatch) -> Path:
    """A one-epoch demo run A fitted in tmp_path (cwd): its version_0 folder."""
    from helpers.run import fit_demo

    monkeypatch.chdir(tmp_path)
    fit_demo(cifake_root, "--trainer.max_epochs", "1", "--name", "A")
    return tmp_path / "runs" / "A" / "version_0"
