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
