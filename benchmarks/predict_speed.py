"""`cifake predict` on a folder of JPEGs: images/s end to end (decode included) and from the cache.

    python -m benchmarks.predict_speed --ckpt runs/baseline/version_0/checkpoints/last.ckpt --images data/genset-v1/test
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _predict(ckpt: str, images: str, cache: str, cwd: Path) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "cifake_lightning", "predict", "--ckpt", ckpt, "--data", "cifake_lightning.data.PredictFolder",
           "--data.root", images, "--data.cache_dir", cache, "--data.eval_batch_size", "4096", "--data.progress", "false",
           "--trainer.enable_progress_bar", "false", "--tracking.wandb", "false"]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={"WANDB_MODE": "disabled", **__import__("os").environ})
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return time.perf_counter() - t, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--images", required=True)
    args = ap.parse_args()
    from ._common import markdown_table, record

    ckpt = str(Path(args.ckpt).resolve())
    images = str(Path(args.images).resolve())
    n = sum(1 for p in Path(images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    work = Path(tempfile.mkdtemp(prefix="predictbench-"))
    cache = str(work / "cache")
    cold, _ = _predict(ckpt, images, cache, work)
    warm, _ = _predict(ckpt, images, cache, work)
    # the model-only part, in-process: cached tensors -> probabilities
    import torch

    from cifake_lightning.data import PredictFolder
    from cifake_lightning.models.checkpoint import load_classifier

    model = load_classifier(ckpt)
    dm = PredictFolder(root=images, cache_dir=cache, progress=False)
    dm.setup("predict")
    x = dm.splits["predict"].images
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(x), 4096):
            model(x[s : s + 4096].float() / 255)
    model_s = time.perf_counter() - t
    shutil.rmtree(work, ignore_errors=True)
    rows = [
        {"what": "cifake predict, first run (process start + decode + cache + predict + CSV)", "seconds": cold, "images/s": n / cold},
        {"what": "cifake predict, cache warm (process start + read cache + predict + CSV)", "seconds": warm, "images/s": n / warm},
        {"what": "model forward over the cached tensor (in process)", "seconds": model_s, "images/s": n / model_s},
    ]
    record("predict_speed", f"cifake predict on {n:,} JPEGs ({Path(images).name})", markdown_table(rows),
           notes=f"checkpoint {Path(args.ckpt).name}; batch 4096; the CLI rows include ~5 s of Python/Lightning start-up")


if __name__ == "__main__":
    main()
