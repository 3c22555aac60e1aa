"""How much does each Keras-vs-PyTorch default move the Bird & Lotfi CNN's accuracy? (seed 000)

The paper trained in Keras; reproductions use PyTorch. Three defaults differ: weight init
(Glorot-uniform + zero bias vs PyTorch's Kaiming-uniform(a=sqrt 5) + uniform bias), Adam's epsilon
(1e-7 vs 1e-8) and input scaling (Keras examples: [0, 1]; ours: CIFAR-10 mean/std). Each variant
changes one default of configs/baseline.yaml (plus "keras", all three) and is trained with several
seeds under the paper's procedure (batch 32, Adam 1e-3, early stopping on val loss, best checkpoint).

    python -m benchmarks.framework_differences --root /path/to/cifake-or-genset --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from ._common import fit_and_test, fit_run, markdown_table, mean_sd, ood_row, record, seed_columns, test_ood

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "pytorch (baseline.yaml)": [],
    "keras init": ["--model.backbone.init", "keras"],
    "no normalisation ([0,1])": ["--model.normalize", "none"],
    "Adam eps 1e-7": ["--model.optimizer.init_args.eps", "1e-7"],
    "keras (all three)": [
        "--model.backbone.init",
        "keras",
        "--model.normalize",
        "none",
        "--model.optimizer.init_args.eps",
        "1e-7",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="dataset in the CIFAKE layout")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--train-size", default=None, help="train on a stratified subset of this many images")
    ap.add_argument("--max-epochs", default="30")
    ap.add_argument("--precision", default="32-true", help="the paper trained in fp32 (Keras default)")
    ap.add_argument(
        "--ood", default=None, help="test on this OOD data config instead (e.g. ood_genset_v2.yaml)"
    )
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--data-label", default=None, help="how to name the data in the results table")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="fwdiff-"))
    work.mkdir(parents=True, exist_ok=True)
    root = str(Path(args.root).resolve())
    rows = []
    for variant, extra in VARIANTS.items():
        per_seed = []
        for seed in args.seeds:
            overrides = [
                "--data.root", root, "--data.val_size", args.val_size, "--seed_everything", str(seed),
                "--trainer.max_epochs", args.max_epochs, "--trainer.precision", args.precision,
                "--trainer.callbacks=[]", "--tracking.wandb=false", *extra,
            ]  # fmt: skip
            if args.train_size:
                overrides += ["--data.init_args.train_size", args.train_size]
            if args.cache_dir:
                overrides += ["--data.cache_dir", args.cache_dir]
            name = "fw-" + "".join(c if c.isalnum() else "_" for c in variant)[:30] + f"-s{seed}"
            config = str(REPO / "configs" / "baseline.yaml")
            if args.ood:
                f = fit_run(config, name, overrides, work)
                m = ood_row(test_ood(f["best"], name, args.ood, root, work, cache_dir=args.cache_dir))
                m.update(acc=m["in_acc@0.5"], auroc=m["auroc:test/FAKE"], epochs=f["epochs"])
            else:
                m = fit_and_test(config, name, overrides, work)
            per_seed.append(m)
            print(f"{variant:28s} seed {seed}: acc {m['acc']:.4f} auroc {m['auroc']:.4f} epochs {m['epochs']}",
                  flush=True)  # fmt: skip
        accs = [m["acc"] for m in per_seed]
        row = {
            "variant": variant,
            "test acc mean": statistics.mean(accs),
            "test acc std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "AUROC mean": statistics.mean(m["auroc"] for m in per_seed),
            "epochs (early stop)": " ".join(str(m["epochs"]) for m in per_seed),
            "per-seed acc": " ".join(f"{a:.4f}" for a in accs),
        }
        if args.ood:
            row["real acc @thr"] = mean_sd([m["real_acc@thr"] for m in per_seed])
            row.update(seed_columns(per_seed))
        rows.append(row)
    base = rows[0]["test acc mean"]
    for r in rows:
        r["delta vs pytorch (pp)"] = f"{100 * (r['test acc mean'] - base):+.2f}"
    first = ["variant", "test acc mean", "test acc std", "delta vs pytorch (pp)", "AUROC mean"]
    columns = first + [k for k in rows[0] if k not in first]
    record(
        "framework_differences",
        f"Keras vs PyTorch defaults, data: {args.data_label or args.root}",
        markdown_table(rows, columns),
        notes=(
            f"seeds {args.seeds}; val {args.val_size}; train subset {args.train_size or 'all'}; "
            f"precision {args.precision}; max epochs {args.max_epochs}; best-val checkpoint tested"
            + (
                f" on {Path(args.ood).name} (test acc = in-distribution test at 0.5; thresholds @thr from "
                "validation, rule fpr:0.01)"
                if args.ood
                else ""
            )  # fmt: skip
            + f"; work dir {work}"
        ),
    )


if __name__ == "__main__":
    main()
