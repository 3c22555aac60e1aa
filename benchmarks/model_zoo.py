"""Train each model family and test it in distribution and on unseen generators (one results table).

For every family: `cifake fit` with its config (overrides: data root, epoch cap), then `cifake test` of the
best checkpoint on an OOD data config whose sources include the in-distribution test folders, so one
report gives both: in-distribution accuracy (test/REAL + test/FAKE; at 0.5, and real/fake accuracy at
the validation threshold), false-positive rate of every real source at that threshold, AUROC of every
fake source against the test reals, and mean/worst over the unseen ones. Appends the table to
benchmarks/results/model_zoo.md.

    python -m benchmarks.model_zoo --root data/genset-v1 --ood configs/data/ood_genset.yaml
    python -m benchmarks.model_zoo --root data/genset-v2 --ood configs/data/ood_genset_v2.yaml \\
        --train-size 10000 --cap-scale 0.5
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ._common import best_checkpoint, cifake, latest_version, markdown_table, ood_row, record, test_ood

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--ood", default=str(REPO / "configs" / "data" / "ood_genset.yaml"))
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--train-size", default=None, help="train on a stratified subset of this many images")
    ap.add_argument("--cap-scale", type=float, default=1.0, help="multiply the CPU epoch caps (e.g. 0.5)")
    ap.add_argument("--max-epochs", type=int, default=None, help="cap every family at this many epochs")
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
    rows, caps = [], {}
    for fam in args.families:
        config, extra, cap = FAMILIES[fam]
        over = [f"--data.root={root}", f"--data.val_size={args.val_size}", *extra, *args.extra]
        if args.train_size:
            over.append(f"--data.init_args.train_size={args.train_size}")
        if args.cache_dir:
            over.append(f"--data.cache_dir={args.cache_dir}")
        cap = None if (args.no_cap or not cap) else max(1, round(cap * args.cap_scale))
        if args.max_epochs:
            cap = min(cap or args.max_epochs, args.max_epochs)
        caps[fam] = cap
        if cap:
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
        row = ood_row(
            test_ood(ckpt, f"{fam}-ood", args.ood, root, work, cache_dir=args.cache_dir,
                     reference_real=args.reference_real, reference_fake=args.reference_fake),
            args.reference_real, args.reference_fake,
        )  # fmt: skip
        row = {
            "model": fam,
            "params": info.get("params"),
            "epochs": info.get("epochs_completed"),
            "fit min": fit_s / 60,
            "in-dist acc @0.5": row["in_acc@0.5"],
            "real acc @thr": row["real_acc@thr"],
            "fake acc @thr": row["fake_acc@thr"],
            **{f"FPR {k.split(':', 1)[1]} @thr": v for k, v in row.items()
               if k.startswith("fpr@thr:") and k != f"fpr@thr:{args.reference_real}"},
            **{f"AUROC {k.split(':', 1)[1]}": v for k, v in row.items() if k.startswith("auroc:")},
            "unseen mean AUROC": row["mean_auroc"],
            "unseen worst AUROC": row["worst_auroc"],
        }  # fmt: skip
        rows.append(row)
        print(row, flush=True)
    record(
        "model_zoo",
        f"model families, data: {args.data_label or root}",
        markdown_table(rows),
        notes=f"best-val-loss checkpoint; AUROC of a fake source vs {args.reference_real}; FPR of real sources and "
        f"real/fake accuracy at the validation threshold (rule fpr:0.01); train subset {args.train_size or 'all'}; "
        "epoch caps: "
        + (", ".join(f"{k} {c}" for k, c in caps.items() if c) or "none")
        + f"; work dir {work}",
    )


if __name__ == "__main__":
    main()
