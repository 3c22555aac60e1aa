"""On genset-v1 (real photographs vs trained generators; skipped when ../shared/datasets is absent):
the baseline learns the in-distribution GAN, and the OOD report shows the unseen generators as harder."""

import json
from pathlib import Path

import pytest
from helpers.run import QUIET, REPO

from cifake_lightning.evaluate.table import latest_results

pytestmark = pytest.mark.data


@pytest.mark.slow
def test_baseline_on_genset_in_distribution_vs_unseen_generators(genset_root, tmp_path, monkeypatch):
    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "baseline_fast.yaml"),
            "--data.root",
            str(genset_root),
            "--data.val_size",
            "2000",
            "--data.batch_size",
            "128",
            "--trainer.max_epochs",
            "3",
            *QUIET,
            "--name",
            "genset",
        ]
    )
    ckpt = tmp_path / "runs" / "genset" / "version_0" / "checkpoints" / "last.ckpt"
    ood = (
        (REPO / "configs" / "data" / "ood_genset.yaml")
        .read_text()
        .replace("data/genset-v1", str(genset_root))
    )
    (tmp_path / "ood.yaml").write_text(ood)
    main(
        [
            "test",
            "--ckpt",
            str(ckpt),
            "--data",
            str(tmp_path / "ood.yaml"),
            "--data.progress",
            "false",
            "--report.reference_real",
            "test/REAL",
            "--report.reference_fake",
            "test/FAKE",
            "--trainer.enable_progress_bar",
            "false",
            "--tracking.wandb",
            "false",
        ]
    )
    rows = {
        r["source"]: r
        for r in json.loads((latest_results(tmp_path / "results", ckpt) / "report.json").read_text())[
            "sources"
        ]
    }
    assert rows["test/FAKE"]["auroc"] > 0.9  # the in-distribution GAN is easy
    assert rows["test/FAKE"]["accuracy"] > 0.8 and rows["test/REAL"]["accuracy"] > 0.8
    unseen = min(rows["ood/vae"]["accuracy"], rows["ood/ddpm"]["accuracy"])
    assert unseen < rows["test/FAKE"]["accuracy"]  # unseen generators are harder, as the seeds report
    assert rows["all"]["n"] == 7000


def test_genset_v2_real_names_map_to_cifar10_classes_as_documented():
    """genset-v2's REAL half is CIFAR-10 named as in CIFAKE, the suffix being the true class. Without
    CIFAR-10's own label files (not reachable offline) the mapping is checked by what it implies: the
    parser must find exactly 5,000 train and 1,000 test images of each of the ten classes."""
    import collections
    import tarfile

    from conftest import SHARED_DATASETS

    from cifake_lightning.data.layout import cifake_content_class

    tar = SHARED_DATASETS / "genset-v2.tar.gz"
    if not tar.is_file():
        pytest.skip(f"genset-v2 not available ({tar} is absent)")
    counts = {"train": collections.Counter(), "test": collections.Counter()}
    with tarfile.open(tar) as t:
        for m in t:
            parts = Path(m.name).parts
            if m.isfile() and len(parts) >= 3 and parts[-2] == "REAL" and parts[-3] in counts:
                counts[parts[-3]][cifake_content_class(parts[-1])] += 1
    assert counts["train"] == {c: 5000 for c in range(10)}
    assert counts["test"] == {c: 1000 for c in range(10)}
