"""ISITCAP (seed 001): do augmentation and autoencoder preprocessing disperse feature importance and help
the Bird & Lotfi CNN generalise to unseen generators?

Trains the convolutional autoencoder, then the four paths (plain, standard augmentations, autoencoder,
both), tests each on the OOD data config and explains the same test images with Integrated Gradients and
occlusion; dispersion is the normalised entropy (higher = more spread) and Gini (lower = more spread)
of each map, averaged over images.

    python -m benchmarks.isitcap --root data/genset-v1
    python -m benchmarks.isitcap --root data/genset-v2 --ood configs/data/ood_genset_v2.yaml --seeds 0 1 2 \\
        --train-size 10000 --max-epochs 5
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
from pathlib import Path

from ._common import (
    cifake,
    fit_run,
    latest_version,
    markdown_table,
    mean_sd,
    ood_row,
    record,
    seed_columns,
    test_ood,
)

REPO = Path(__file__).resolve().parents[1]
PATHS = ["plain", "augment", "autoencoder", "autoencoder_augment"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--ood", default=str(REPO / "configs" / "data" / "ood_genset.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--train-size", default=None, help="train on a stratified subset of this many images")
    ap.add_argument("--ae-epochs", default="5")
    ap.add_argument("--max-epochs", default="30")
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--explain-n", default="64")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--data-label", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="isitcap-"))
    work.mkdir(parents=True, exist_ok=True)
    root = str(Path(args.root).resolve())
    data = [
        f"--data.root={root}",
        f"--data.val_size={args.val_size}",
        f"--trainer.precision={args.precision}",
        "--tracking.wandb=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    if args.train_size:
        data.append(f"--data.init_args.train_size={args.train_size}")
    if args.cache_dir:
        data.append(f"--data.cache_dir={args.cache_dir}")
    ae_runs = work / "runs" / "isitcap_autoencoder"
    if not any(ae_runs.glob("version_*/checkpoints/last.ckpt")):  # one autoencoder, shared by every seed
        cifake(
            "fit",
            "--config",
            str(REPO / "configs" / "isitcap" / "train_autoencoder.yaml"),
            f"--trainer.max_epochs={args.ae_epochs}",
            *data,
            cwd=work,
        )
    ae_run = latest_version(ae_runs)
    ae_ckpt = ae_run / "checkpoints" / "last.ckpt"
    with open(ae_run / "metrics.csv") as f:
        psnr = [float(r["val/psnr"]) for r in csv.DictReader(f) if r.get("val/psnr")][-1]
    per_path: dict[str, list[dict]] = {}
    for path in PATHS:
        extra = (
            [f"--model.init_args.preprocess.init_args.checkpoint={ae_ckpt}"] if "autoencoder" in path else []
        )
        for seed in args.seeds:
            name = f"isitcap-{path}-s{seed}"
            f = fit_run(
                str(REPO / "configs" / "isitcap" / f"{path}.yaml"),
                name,
                [f"--trainer.max_epochs={args.max_epochs}", f"--seed_everything={seed}", *data, *extra],
                work,
            )
            row = ood_row(test_ood(f["best"], name, args.ood, root, work, cache_dir=args.cache_dir))
            out = work / "explain" / name
            cifake(
                "explain", "--ckpt", str(f["best"]), "--n", args.explain_n, "--out", str(out),
                "--explain.methods", "[integrated_gradients, occlusion, grad_cam]", cwd=work,
            )  # fmt: skip
            summ = json.loads((out / "summary.json").read_text())["all"]
            row.update(epochs=f["epochs"], **{k: summ.get(k, math.nan) for k in EXPLAIN_KEYS})
            per_path.setdefault(path, []).append(row)
            print(path, seed, {k: v for k, v in row.items() if k != "folder"}, flush=True)
    rows = []
    for path, rs in per_path.items():
        line = {"path": path, "seeds": len(rs), "epochs": " ".join(str(r["epochs"]) for r in rs)}
        line["in-dist acc @0.5"] = mean_sd([r["in_acc@0.5"] for r in rs])
        line["real acc @thr"] = mean_sd([r["real_acc@thr"] for r in rs])
        line["fake acc @thr"] = mean_sd([r["fake_acc@thr"] for r in rs])
        line.update(seed_columns(rs, aurocs=True))
        for k in EXPLAIN_KEYS:
            line[EXPLAIN_KEYS[k]] = mean_sd([r[k] for r in rs])
        rows.append(line)
    record(
        "isitcap",
        f"autoencoder and augmentation paths, data: {args.data_label or root}",
        markdown_table(rows, list(dict.fromkeys(k for r in rows for k in r))),
        notes=f"autoencoder: {args.ae_epochs} epochs (one, shared by all seeds), val PSNR {psnr:.1f} dB; classifiers: "
        f"conv32x2-dense64x1, batch 32, early stopping (patience 3, max {args.max_epochs} epochs), {args.precision}, "
        f"best checkpoint; seeds {args.seeds}; train subset {args.train_size or 'all'}; tested on "
        f"{Path(args.ood).name} (thresholds @thr from validation, rule fpr:0.01; AUROC of a fake source vs test/REAL); "
        f"explanations on {args.explain_n} balanced test images (IG 32 steps); mean ± sd over seeds; work dir {work}",
    )


#: explanation summary key -> column
EXPLAIN_KEYS = {
    "integrated_gradients/entropy": "IG entropy",
    "integrated_gradients/gini": "IG Gini",
    "occlusion/entropy": "occlusion entropy",
    "grad_cam/entropy": "Grad-CAM entropy",
}


if __name__ == "__main__":
    main()
