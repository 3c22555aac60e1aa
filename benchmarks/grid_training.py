"""The paper's grid: N separate `cifake fit` runs vs one GridClassifier run on the same batches.

Both train the same topologies for the same epochs with the same seed and data; the script reports wall
time of each way and, per topology, the final validation accuracy of both (they should agree: same
initialisation, same batches, Adam on the summed loss — see training/grid.py).

    python -m benchmarks.grid_training --root data/genset-v1 --topologies extractors --epochs 2
    python -m benchmarks.grid_training --root /data/cifake --topologies all --epochs 10 \
        --precision bf16-mixed --grid-compile reduce-overhead --grid-only        # the GPU question
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

from ._common import cifake, markdown_table, record

REPO = Path(__file__).resolve().parents[1]


def _final_val_acc(run: Path) -> float:
    with open(run / "metrics.csv") as f:
        vals = [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
    return vals[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--topologies", default="extractors", help="extractors (12), all (36) or a comma list")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--val-size", default="2000")
    ap.add_argument(
        "--grid-compile", default="false", help="GridClassifier compile: false, true, reduce-overhead"
    )
    ap.add_argument("--grid-only", action="store_true", help="time the grid run alone (no separate runs)")
    args = ap.parse_args()
    from cifake_lightning.models.bird_lotfi import paper_topologies

    tops = paper_topologies()
    tops = (
        tops[:12]
        if args.topologies == "extractors"
        else tops
        if args.topologies == "all"
        else args.topologies.split(",")
    )
    work = Path(tempfile.mkdtemp(prefix="gridbench-"))
    root = str(Path(args.root).resolve())
    common = [
        f"--data.root={root}",
        f"--data.val_size={args.val_size}",
        f"--data.batch_size={args.batch_size}",
        f"--trainer.max_epochs={args.epochs}",
        f"--trainer.precision={args.precision}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--tracking.wandb=false",
        "--early_stopping.patience=null",
        "--model.init_args.optimizer.init_args.lr=0.002",
    ]
    if args.cache_dir:
        common.append(f"--data.cache_dir={args.cache_dir}")
    t = time.perf_counter()
    for name in [] if args.grid_only else tops:
        cifake(
            "fit",
            "--config",
            str(REPO / "configs" / "baseline_fast.yaml"),
            "--name",
            f"sep-{name}",
            f"--model.init_args.backbone.init_args.topology={name}",
            *common,
            cwd=work,
        )
    separate_s = time.perf_counter() - t
    t = time.perf_counter()
    cifake(
        "fit",
        "--config",
        str(REPO / "configs" / "grid.yaml"),
        "--name",
        "grid",
        f"--model.init_args.topologies=[{','.join(tops)}]",
        f"--model.init_args.compile={args.grid_compile}",
        *common,
        cwd=work,
    )
    grid_s = time.perf_counter() - t
    rows = []
    for name in tops:
        b = _final_val_acc(work / "runs" / f"grid-{name}" / "version_0")
        if args.grid_only:
            rows.append({"topology": name, "val acc, in the grid": b})
            continue
        a = _final_val_acc(work / "runs" / f"sep-{name}" / "version_0")
        rows.append(
            {"topology": name, "val acc, separate run": a, "val acc, in the grid": b, "difference": b - a}
        )
    summary = [
        {"way": f"one GridClassifier run (configs/grid.yaml, compile {args.grid_compile})", "wall s": grid_s}
    ]
    if not args.grid_only:
        summary = [
            {"way": f"{len(tops)} separate `cifake fit` processes", "wall s": separate_s},
            *summary,
            {"way": "speed-up", "wall s": separate_s / grid_s},
        ]
    record(
        "grid_training",
        f"{len(tops)} topologies x {args.epochs} epochs: separate runs vs one grid run",
        markdown_table(summary) + "\n\n" + markdown_table(rows),
        notes=f"data {root}, batch {args.batch_size}, precision {args.precision}, lr 0.002, seed 0; work dir {work}",
    )


if __name__ == "__main__":
    main()
