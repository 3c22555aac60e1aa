"""Train each model family and test it in distribution and on unseen generators (one results table).

For every family: `cifake fit` with its config (overrides: data root, epoch cap), then `cifake test` of the
best checkpoint on an OOD data config whose sources include the in-distribution test folders, so one
report gives both: in-distribution accuracy/F1/AUROC (test/REAL + test/FAKE) and per-source results for
unseen generators and unseen real photos. Appends the table to benchmarks/results/model_zoo.md.

    python -m benchmarks.model_zoo --root data/genset-v1 --ood configs/data/ood_genset.yaml
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

from cifake_lightning.evaluate.table import latest_results

from ._common import best_checkpoint, cifake, latest_version, markdown_table, record

REPO = Path(__file__).resolve().parents[1]

#: family -> (config, extra overrides, epoch cap on CPU or None for the config's own early stopping)
FAMILIES = {
    "baseline": ("baseline.yaml", [], None),
    "lightweight": ("lightweight.yaml", [], None),
    "lightweight_hoc": ("lightweight_hoc.yaml", [], None),
    "attention_cnn": ("attention_cnn.yaml", ["--trainer.callbacks=[]"], 15),
    "dualstream_small": ("dualstream_small.yaml", ["--trainer.callbacks=[]"], 10),
    "dualstream": ("dualstream.yaml", ["--trainer.callbacks=[]"], 3),
    "resnet18": ("resnet18.yaml", ["--model.init_args.backbone.init_args.pretrained=false"], 3),
    "vgg11_bn": (
        "resnet18.yaml",
        ["--model.backbone=vgg11_bn", "--model.init_args.backbone.init_args.pretrained=false"],
        3,
    ),
    "vit_tiny": (
        "resnet18.yaml",
        [
            "--model.backbone=vit_tiny",
            "--model.optimizer.init_args.lr=5e-4",
            "--model.init_args.backbone.init_args.pretrained=false",
        ],
        3,
    ),
}


def _f1(rows: list[dict]) -> float:
    tp = sum(1 for r in rows if r["label"] == "fake" and float(r["p_fake"]) >= 0.5)
    fp = sum(1 for r in rows if r["label"] == "real" and float(r["p_fake"]) >= 0.5)
    fn = sum(1 for r in rows if r["label"] == "fake" and float(r["p_fake"]) < 0.5)
    return 2 * tp / max(1, 2 * tp + fp + fn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--ood", default=str(REPO / "configs" / "data" / "ood_genset.yaml"))
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--reference-real", default="test/REAL")
    ap.add_argument("--reference-fake", default="test/FAKE")
    ap.add_argument("--no-cap", action="store_true", help="ignore the CPU epoch caps (use on a GPU)")
    ap.add_argument(
        "--extra", nargs="*", default=[], help="overrides for every fit, e.g. --trainer.precision=bf16-mixed"
    )
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--data-label", default=None)
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="zoo-"))
    work.mkdir(parents=True, exist_ok=True)
    root = str(Path(args.root).resolve())
    rows = []
    for fam in args.families:
        config, extra, cap = FAMILIES[fam]
        over = [f"--data.root={root}", f"--data.val_size={args.val_size}", *extra, *args.extra]
        if args.cache_dir:
            over.append(f"--data.cache_dir={args.cache_dir}")
        if cap and not args.no_cap:
            over.append(f"--trainer.max_epochs={cap}")
            if "scheduler" in (REPO / "configs" / config).read_text():
                over.append(f"--model.init_args.scheduler.init_args.T_max={cap}")
        t = time.perf_counter()
        cifake(
            "fit",
            "--config",
            str(REPO / "configs" / config),
            "--name",
            fam,
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--tracking.wandb=false",
            *over,
            cwd=work,
        )
        fit_s = time.perf_counter() - t
        run = latest_version(work / "runs" / fam)
        ckpt = best_checkpoint(run)
        info = json.loads((run / "run_info_fit.json").read_text())
        test_over = [f"--data.root={root}"] + (
            [f"--data.cache_dir={args.cache_dir}"] if args.cache_dir else []
        )
        cifake(
            "test",
            "--ckpt",
            str(ckpt),
            "--data",
            args.ood,
            *test_over,
            "--name",
            f"{fam}-ood",
            f"--report.reference_real={args.reference_real}",
            f"--report.reference_fake={args.reference_fake}",
            "--trainer.enable_progress_bar=false",
            "--tracking.wandb=false",
            cwd=work,
        )
        res = latest_results(work / "results", ckpt)
        report = {r["source"]: r for r in json.loads((res / "report.json").read_text())["sources"]}
        with open(res / "predictions.csv") as f:
            preds = [
                r for r in csv.DictReader(f) if r["source"] in (args.reference_real, args.reference_fake)
            ]
        acc_in = sum((float(r["p_fake"]) >= 0.5) == (r["label"] == "fake") for r in preds) / len(preds)
        row = {
            "model": fam,
            "params": info.get("params"),
            "epochs": info.get("epochs_completed"),
            "fit min": fit_s / 60,
            "test acc": acc_in,
            "test F1": _f1(preds),
            "test AUROC": report[args.reference_fake]["auroc"],
        }
        for src, r in report.items():
            if src in (args.reference_real, args.reference_fake, "all"):
                continue
            row[f"{src} acc"] = r["accuracy"]
            row[f"{src} AUROC"] = r["auroc"]
        rows.append(row)
        print(row, flush=True)
    record(
        "model_zoo",
        f"model families, data: {args.data_label or root}",
        markdown_table(rows),
        notes=f"best-val-loss checkpoint; OOD AUROC of a fake source vs {args.reference_real}, of a real source vs "
        f"{args.reference_fake}; epoch caps on CPU: "
        + ", ".join(f"{k} {v[2]}" for k, v in FAMILIES.items() if v[2] and k in args.families)
        + ("" if not args.no_cap else " (ignored)")
        + f"; work dir {work}",
    )


if __name__ == "__main__":
    main()
