"""Start-up time of the commands a user types first (goals: --help and --version under 1.5 s (issue 20);
`models` under 3 s: it imports torch and the model files but not Lightning (issue 25, step 4, which
dropped the generated name index); `predict` of one image under 5 s end to end, on the 2-core machine).

Each command runs N times in a fresh process (median wall time reported, as a user waits for it). The
checkpoint for `predict` is --ckpt, or one made by a one-epoch `cifake fit` of configs/demo.yaml on a
small synthetic data set in a temporary folder.

    python -m benchmarks.startup
    python -m benchmarks.startup --ckpt runs/baseline/version_0/checkpoints/best-epoch07.ckpt --repeat 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import markdown_table, record

REPO = Path(__file__).resolve().parents[1]
GOALS = {"--version": 1.5, "--help": 1.5, "models": 3.0, "predict 1 image": 5.0}


def _time(cmd: list[str], cwd: Path, repeat: int) -> list[float]:
    out = []
    env = {**os.environ, "WANDB_MODE": "disabled"}
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        out.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", default=None)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="startup-"))
    cifake = [sys.executable, "-m", "cifake_lightning"]
    ckpt = args.ckpt
    if ckpt is None:
        subprocess.run([*cifake, "data", "synth", "--root", str(work / "d"), "--n-train", "100", "--n-test", "20"],
                       cwd=work, check=True, capture_output=True)  # fmt: skip
        subprocess.run(
            [*cifake, "fit", "--config", str(REPO / "configs/demo.yaml"), "--data.root", str(work / "d"),
             "--data.cache_dir", str(work / "c"), "--trainer.max_epochs", "1", "--trainer.callbacks", "[]",
             "--tracking.wandb", "false", "--trainer.enable_progress_bar", "false"],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        ckpt = str(work / "runs/demo/version_0/checkpoints/last.ckpt")
    image = next((work / "d" / "test" / "REAL").iterdir()) if args.ckpt is None else None
    if image is None:
        from PIL import Image

        image = work / "one.png"
        Image.new("RGB", (32, 32), (90, 120, 30)).save(image)
    commands = {
        "--version": [*cifake, "--version"],
        "--help": [*cifake, "--help"],
        "models": [*cifake, "models"],
        "predict 1 image": [*cifake, "predict", "--ckpt", ckpt, str(image), "--out", str(work / "p.csv")],
        "fit --help (Lightning CLI, for reference)": [*cifake, "fit", "--help"],
        "python -c 'import torch' (the floor of any command that needs torch)": [
            sys.executable,
            "-c",
            "import torch",
        ],
    }
    rows = []
    for name, cmd in commands.items():
        t = _time(cmd, work, args.repeat)
        goal = GOALS.get(name)
        rows.append(
            {
                "command": name if name.startswith("python") else f"cifake {name}",
                "median s": statistics.median(t),
                "min s": min(t),
                "max s": max(t),
                "goal s": goal if goal else "",
                "met": ("yes" if statistics.median(t) < goal else "NO") if goal else "",
            }
        )
        print(rows[-1], flush=True)
    record(
        "startup",
        f"start-up time, {args.repeat} fresh processes per command",
        markdown_table(rows),
        notes=f"checkpoint {'given' if args.ckpt else 'of a 1-epoch demo fit'}; wall time incl. interpreter start",
    )


if __name__ == "__main__":
    main()
