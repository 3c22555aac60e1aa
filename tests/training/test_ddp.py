"""DDP on CPU (gloo, 2 processes): disjoint shards covering each epoch, equal steps, synced test metrics."""

import json

import pytest
from helpers.run import DEMO, REPO, cifake


@pytest.mark.slow
def test_two_process_ddp_fit_and_test(cifake_root, tmp_path):
    record = '[{"class_path": "helpers.record_indices.RecordIndices", "init_args": {"out": "indices"}}]'
    common = [
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "60",
        "--data.batch_size",
        "32",
        "--data.progress",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--tracking.wandb",
        "false",
    ]
    r = cifake(
        "fit",
        "--config",
        DEMO,
        *common,
        "--trainer",
        str(REPO / "configs" / "trainer" / "cpu_ddp.yaml"),
        "--trainer.max_epochs",
        "2",
        "--trainer.callbacks",
        record,
        "--name",
        "ddp",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / "indices" / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert ranks[0]["world"] == 2 and ranks[0]["pid"] != ranks[1]["pid"]
    n_train = ranks[0]["n_train"]
    orders = []
    for epoch in ("0", "1"):
        a, b = ranks[0]["seen"][epoch], ranks[1]["seen"][epoch]
        assert not set(a) & set(b)  # disjoint shares
        assert len(set(a) | set(b)) >= n_train - 1  # together they cover the epoch (minus < world)
        assert ranks[0]["steps"][epoch] == ranks[1]["steps"][epoch]  # equal step counts
        orders.append(a)
    assert orders[0] != orders[1]  # reshuffled per epoch

    ckpt = tmp_path / "runs" / "ddp" / "version_0" / "checkpoints" / "last.ckpt"
    test_args = [
        "--ckpt",
        str(ckpt),
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "0",
        "--data.eval_batch_size",
        "48",
        "--data.progress",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--tracking.wandb",
        "false",
    ]
    from cifake_lightning.evaluate.table import latest_results

    def scored(r):  # one checkpoint on one data set: both runs write the same result folder, in turn
        assert r.returncode == 0, r.stderr[-2000:]
        out = latest_results(tmp_path / "results", ckpt)
        return json.loads((out / "metrics.json").read_text())["metrics"], json.loads(
            (out / "report.json").read_text()
        )

    single, rep1 = scored(cifake("test", *test_args, "--name", "single", cwd=tmp_path))
    multi, rep2 = scored(
        cifake(
            "test",
            *test_args,
            "--trainer",
            str(REPO / "configs" / "trainer" / "cpu_ddp.yaml"),
            "--name",
            "multi",
            cwd=tmp_path,
        )
    )
    for k in ("test/acc", "test/auroc", "test/f1", "test/loss"):
        assert abs(single[k] - multi[k]) < 1e-5, (k, single[k], multi[k])
    assert rep1["sources"][-1]["n"] == rep2["sources"][-1]["n"] == 100  # every test image counted once
