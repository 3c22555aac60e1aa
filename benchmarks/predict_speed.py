"""`cifake predict` on a folder of JPEGs: decoding, the predict loop, and the whole command.

Runs the installed `cifake` console script (as a user would), first with an empty cache, then warm at
the data module's default eval batch and at each `--batches` size, all in one run.

python -m benchmarks.predict_speed --ckpt runs/baseline/version_0/checkpoints/last.ckpt --images DIR
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _predict(ckpt: str, images: str, cache: str, cwd: Path, batch: int | None) -> tuple[float, float]:
    cmd = [
        str(Path(sys.executable).parent / "cifake"),
        "predict",
        "--ckpt",
        ckpt,
        "--data",
        "cifake_lightning.data.PredictFolder",
        "--data.root",
        images,
        "--data.cache_dir",
        cache,
        *(["--data.eval_batch_size", str(batch)] if batch else []),
        "--data.progress",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--tracking.wandb",
        "false",
    ]
    t = time.perf_counter()
    r = subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"}
    )
    wall = time.perf_counter() - t
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    loop = float(re.search(r"in ([0-9.]+)s \(", r.stdout).group(1))
    return wall, loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument(
        "--batches", type=int, nargs="*", default=[256, 512, 2048], help="extra warm eval batches"
    )
    args = ap.parse_args()
    from ._common import markdown_table, record

    ckpt = str(Path(args.ckpt).resolve())
    images = str(Path(args.images).resolve())
    work = Path(tempfile.mkdtemp(prefix="predictbench-"))
    cache = work / "cache"
    cold_wall, cold_loop = _predict(ckpt, images, str(cache), work, None)
    manifest = json.loads(next(cache.rglob("*.manifest.json")).read_text())
    n, decode_s = manifest["n"], manifest["build_seconds"]
    warm_wall, warm_loop = _predict(ckpt, images, str(cache), work, None)
    loops = {b: _predict(ckpt, images, str(cache), work, b)[1] for b in args.batches}
    shutil.rmtree(work, ignore_errors=True)
    rows = [
        {
            "step": "decode JPEGs into the cache (first run only, parallel workers)",
            "seconds": decode_s,
            "images/s": n / decode_s,
        },
        {
            "step": "predict loop at the default eval batch (128): cached tensors -> P(fake) -> CSV",
            "seconds": warm_loop,
            "images/s": n / warm_loop,
        },
        *(
            {"step": f"predict loop at eval batch {b}", "seconds": s, "images/s": n / s}
            for b, s in loops.items()
        ),
        {
            "step": "whole command, first run (start-up + decode + predict)",
            "seconds": cold_wall,
            "images/s": n / cold_wall,
        },
        {
            "step": "whole command, cache warm (start-up + read cache + predict)",
            "seconds": warm_wall,
            "images/s": n / warm_wall,
        },
    ]
    record(
        "predict_speed",
        f"cifake predict on {n:,} JPEGs",
        markdown_table(rows),
        notes=f"checkpoint {Path(args.ckpt).parent.parent.parent.name}/{Path(args.ckpt).name}; "
        f"folder {args.images}; the `cifake` console script; start-up (Python, torch, Lightning) is ~5 s "
        "of each whole-command row",
    )


if __name__ == "__main__":
    main()
