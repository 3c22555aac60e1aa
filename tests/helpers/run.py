"""Test helper: run `python -m cifake_lightning ...` in a subprocess, as a user would."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: CLI flags that keep a test run quiet and offline (no progress bars, no W&B).
QUIET = ("--trainer.enable_progress_bar=false", "--data.progress=false", "--tracking.wandb=false")


def cifake(*args, cwd, timeout=900) -> subprocess.CompletedProcess:
    env = {
        # not the pytest process's W&B service: a child attached to it would find its runs still "in use"
        **{k: v for k, v in os.environ.items() if not k.startswith("WANDB_SERVICE")},
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]),
        "WANDB_MODE": "disabled",
    }
    return subprocess.run(
        [sys.executable, "-m", "cifake_lightning", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DEMO = str(REPO / "configs" / "demo.yaml")


def run_main(args, capsys) -> tuple[int, str]:
    """In-process `cifake ...`: (exit status, stderr)."""
    from cifake_lightning.console import main

    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


def fit_demo(root, *extra) -> None:
    """In-process `cifake fit` of configs/demo.yaml on `root`: 3 batches an epoch, 40 validation images."""
    from cifake_lightning.console import main

    main(["fit", "--config", DEMO, "--data.root", str(root), "--data.val_size", "40",
          "--trainer.limit_train_batches", "3", *QUIET, "--trainer.callbacks", "[]", *extra])  # fmt: skip


def cifake_test_args(root, *extra) -> list[str]:
    """`cifake test` of the synthetic tree; `extra` goes first, so a --config in it is overridden."""
    return ["test", *extra, "--data.root", str(root), "--data.val_size", "0", *QUIET]


def val_rows(path) -> list[tuple]:
    """(epoch, val/acc, val/loss) of each validation row of a metrics.csv."""
    import csv

    with open(path) as f:
        return [(r["epoch"], r["val/acc"], r["val/loss"]) for r in csv.DictReader(f) if r.get("val/acc")]
