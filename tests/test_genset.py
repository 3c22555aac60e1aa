"""On genset-v1 (real photographs vs trained generators; skipped when ../shared/datasets is absent):
the baseline learns the in-distribution GAN, and the OOD report shows the unseen generators as harder."""

import json
from pathlib import Path

import pytest
from helpers.run import QUIET

from cifake_lightning.evaluate.table import latest_results

pytestmark = pytest.mark.data
REPO = Path(__file__).resolve().parents[1]


def test_baseline_on_genset_in_distribution_vs_unseen_generators(genset_root, tmp_path, monkeypatch):
    from cifake_lightning.cli import main

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
