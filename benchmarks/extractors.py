"""The paper's 12 feature extractors (filters x conv layers, one dense layer of 64) next to its numbers.

Bird & Lotfi (2024) report one validation accuracy per extractor on CIFAKE (seed 004's table,
tracking/figures.PAPER_EXTRACTORS). This trains the 12 in one GridClassifier run per seed (configs/grid.yaml:
same batches, each topology as if trained alone) and reports, per topology, last-epoch validation accuracy
(mean ± sd over seeds) beside the paper's, and with --ood each topology's checkpoint tested on the
OOD data: false-positive rate of the real sources at the validation threshold and AUROC of the unseen
fake sources (mean and worst). The paper's numbers are on CIFAKE; ours on the data given.

    python -m benchmarks.extractors --root data/genset-v2 --seeds 0 1 2 --train-size 10000 --epochs 3 \\
        --ood configs/data/ood_genset_v2.yaml
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from ._common import (
    best_checkpoint,
    cifake,
    latest_version,
    markdown_table,
    mean_sd,
    ood_row,
    record,
    seed_columns,
    test_ood,
)

REPO = Path(__file__).resolve().parents[1]


def _last_val_acc(run: Path) -> float:
    """Validation accuracy of the last epoch (the grid keeps each topology's last checkpoint)."""
    with open(run / "metrics.csv") as f:
        return [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")][-1]


def main() -> None:
    from cifake_lightning.models.bird_lotfi import paper_topologies, parse_topology
    from cifake_lightning.tracking.figures import PAPER_EXTRACTORS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--train-size", default=None)
    ap.add_argument("--precision", default="32-true")
    ap.add_argument(
        "--ood", default=None, help="also test every topology's best checkpoint on this data config"
    )
    ap.add_argument("--work", default="/tmp/cifake-extractors")
    ap.add_argument("--data-label", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    root = str(Path(args.root).resolve())
    tops = paper_topologies()[:12]
    results: dict[str, list[dict]] = {t: [] for t in tops}
    for seed in args.seeds:
        name = f"grid-s{seed}"
        if not any((work / "runs").glob(f"{name}-{tops[0]}/version_*/checkpoints")):
            cifake(
                "fit", "--config", str(REPO / "configs" / "grid.yaml"), "--name", name,
                f"--model.init_args.topologies=[{','.join(tops)}]", f"--model.init_args.seed={seed}",
                f"--seed_everything={seed}", f"--data.root={root}", f"--data.val_size={args.val_size}",
                f"--data.batch_size={args.batch_size}", f"--trainer.max_epochs={args.epochs}",
                f"--trainer.precision={args.precision}", "--trainer.enable_progress_bar=false",
                "--trainer.enable_model_summary=false", "--tracking.wandb=false",
                "--early_stopping.patience=null", "--model.init_args.optimizer.init_args.lr=0.002",
                *([f"--data.init_args.train_size={args.train_size}"] if args.train_size else []),
                cwd=work,
            )  # fmt: skip
        for t in tops:
            run = latest_version(work / "runs" / f"{name}-{t}")
            r = {"val_acc": _last_val_acc(run)}
            if args.ood:
                r.update(ood_row(test_ood(best_checkpoint(run), f"{name}-{t}", args.ood, root, work)))
            results[t].append(r)
            print(seed, t, r.get("val_acc"), r.get("mean_auroc"), flush=True)
    rows = []
    for t in tops:
        p, rs = parse_topology(t), results[t]
        row = {
            "topology": t,
            "paper val acc % (CIFAKE)": PAPER_EXTRACTORS[(p["filters"], p["conv_layers"])],
            "ours val acc % (last epoch)": mean_sd([100 * r["val_acc"] for r in rs], 2),
        }
        if args.ood:
            rules = {r.get("threshold_rule") for r in rs}
            at = "@0.5 (no validation scores in the checkpoint)" if rules == {"0.5"} else "@thr"
            row.update(seed_columns(rs, fpr_at=at))
        rows.append(row)
    record(
        "extractors",
        f"the paper's 12 extractors, data: {args.data_label or root}",
        markdown_table(rows, list(dict.fromkeys(k for r in rows for k in r))),
        notes=f"one GridClassifier run per seed ({args.seeds}), {args.epochs} epochs, batch {args.batch_size}, "
        f"Adam 2e-3, {args.precision}, train subset {args.train_size or 'all'}, val {args.val_size}; last epoch "
        "(the grid's checkpoint); FPR at the threshold each checkpoint carries (the column says which: grid "
        "checkpoints made before they kept validation scores are tested at 0.5); work dir " + str(work),
    )


if __name__ == "__main__":
    main()
