"""callbacks/run_info.py: reproducible runs and their provenance."""

import json

from helpers.run import DEMO, QUIET, val_rows


def test_same_config_and_seed_give_same_metrics_and_provenance(cifake_root, tmp_path, monkeypatch):
    from cifake_lightning.console import main

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
    assert val_rows(runs / "version_0" / "metrics.csv") == val_rows(runs / "version_1" / "metrics.csv")
    info = json.loads((runs / "version_0" / "run_info_fit.json").read_text())
    assert {"git_commit", "versions", "machine", "data", "params", "fit_seconds"} <= set(info)
    assert info["versions"]["torch"] and len(info["data"]["train"]["manifest_hash"]) == 32
    cfg = (runs / "version_0" / "config.yaml").read_text()
    assert "seed_everything: 0" in cfg and "conv32x2-dense64x1" in cfg
