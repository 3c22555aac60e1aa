"""evaluate/predict_writer.py: `cifake predict --data` output files."""

from __future__ import annotations

import errno
from pathlib import Path

from helpers.run import QUIET, run_main


def test_full_results_dir_on_predict_is_one_line_and_keeps_earlier_results(
    cifake_root, trained_run, monkeypatch, capsys
):
    from cifake_lightning import utils

    earlier = Path("results/demo/version_0/last/predict-0123456789/predictions.csv")
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier\n")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(utils.os, "replace", full)
    args = ["predict", "--ckpt", str(trained_run), "--data", "cifake_lightning.data.PredictFolder"]
    code, err = run_main([*args, "--data.root", str(cifake_root / "test"), *QUIET], capsys)
    assert code == 2 and "No space left on device" in err and "Traceback" not in err, err
    assert earlier.read_text() == "earlier\n"
