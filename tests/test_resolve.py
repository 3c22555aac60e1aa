"""resolve.py: which checkpoint validate/test/predict score, and options that contradict it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.run import DEMO, cifake_test_args, run_main


# ------------------------------------------------------------------------------ 1. checkpoint not found
def test_test_without_a_findable_checkpoint_stops_instead_of_scoring_an_untrained_model(
    cifake_root, trained_run, capsys
):
    code, err = run_main(
        cifake_test_args(cifake_root, "--config", DEMO, "--ckpt_path", "last", "--name", "other"), capsys
    )
    assert code == 2 and "no last.ckpt" in err and "runs/other" in err
    code, err = run_main(cifake_test_args(cifake_root, "--config", DEMO), capsys)
    assert code == 2 and "needs a trained checkpoint" in err
    assert not Path("results").exists()  # no report of an untrained model was written


def test_ckpt_path_last_outside_fit_scores_the_runs_last_checkpoint(cifake_root, trained_run, capsys):
    from cifake_lightning.evaluate.table import latest_results

    code, err = run_main(
        cifake_test_args(cifake_root, "--config", DEMO, "--ckpt_path", "last", "--name", "demo"), capsys
    )
    assert code == 0, err
    by_name = json.loads((latest_results("results", trained_run) / "metrics.json").read_text())
    shutil.rmtree("results")
    code, err = run_main(cifake_test_args(cifake_root, "--ckpt", str(trained_run)), capsys)
    assert code == 0, err
    by_path = json.loads((latest_results("results", trained_run) / "metrics.json").read_text())
    assert by_name["metrics"]["test/auroc"] == by_path["metrics"]["test/auroc"]
    assert Path(by_name["ckpt_path"]).resolve() == trained_run.resolve()


# ------------------------------------------------------------------------------ 3. overrides vs checkpoint
def test_model_option_contradicting_the_checkpoint_is_refused(cifake_root, trained_run, capsys):
    code, err = run_main(
        cifake_test_args(cifake_root, "--ckpt", str(trained_run), "--model.init_args.normalize", "none"),
        capsys,
    )
    assert code == 2 and "model.init_args.normalize = 'none'" in err and "'cifar10'" in err
    assert "Traceback" not in err


def test_runtime_model_options_are_honoured(cifake_root, trained_run, capsys):
    code, err = run_main(
        cifake_test_args(cifake_root, "--ckpt", str(trained_run), "--model.init_args.channels_last", "false"),
        capsys,
    )
    assert code == 0, err
    # a test of a run's checkpoint logs beside it: runs/demo/version_0/test/ (no new version folder)
    cfg = (trained_run.parents[1] / "test" / "config.yaml").read_text()
    assert "channels_last: false" in cfg


def test_a_test_with_a_data_config_logs_beside_the_run_it_tests(cifake_root, trained_run, tmp_path, capsys):
    """`cifake test --ckpt RUN_CKPT --config configs/test/X.yaml`: the test is the checkpoint's run's
    (runs/demo/version_0/test/, W&B `demo/v0/test` in its group), not a new run named after X."""
    import yaml

    test_cfg = tmp_path / "ood_x.yaml"
    test_cfg.write_text(yaml.safe_dump({"data": {"class_path": "cifake_lightning.data.CIFAKEDataModule"}}))
    code, err = run_main(
        cifake_test_args(cifake_root, "--ckpt", str(trained_run), "--config", str(test_cfg)), capsys
    )
    assert code == 0, err
    assert (trained_run.parents[1] / "test" / "metrics.csv").is_file()
    assert not (tmp_path / "runs" / "ood_x").exists()
